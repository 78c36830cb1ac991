import SeqwallCore
import Synchronization

/// A bounded single-producer, single-consumer ring: a worker pushes without a lock, a system
/// call or an allocation; when the consumer is too slow and the ring is full, elements are
/// dropped and counted, so a slow consumer never slows the packet path. `Element` is a plain
/// value (no references: slots are overwritten, never deinitialized), copied in and out.
final class SingleProducerRing<Element>: @unchecked Sendable {
    let capacity: Int
    /// `capacity` is a power of two: a slot's index is a mask, not a division, on every push.
    private let mask: Int
    private let storage: UnsafeMutablePointer<Element>
    /// Next slot to read; written by the consumer only.
    private let head = Atomic<Int>(0)
    /// Next slot to write; written by the producer only.
    private let tail = Atomic<Int>(0)
    private let lostCount = Atomic<UInt64>(0)

    /// `capacity` is rounded up to a power of two.
    init(capacity: Int = 16384) {
        let rounded = 1 << (Int.bitWidth - (max(1, capacity) - 1).leadingZeroBitCount)
        self.capacity = capacity <= 1 ? 1 : rounded
        mask = self.capacity - 1
        storage = .allocate(capacity: self.capacity)
    }

    deinit { storage.deallocate() }

    /// Producer side (the worker thread). False when the ring was full (the element counted
    /// as lost).
    @inline(__always) @discardableResult
    func push(_ element: Element) -> Bool {
        let write = tail.load(ordering: .relaxed)
        guard write - head.load(ordering: .acquiring) < capacity else {
            lostCount.add(1, ordering: .relaxed)
            return false
        }
        (storage + (write & mask)).initialize(to: element)
        tail.store(write + 1, ordering: .releasing)
        return true
    }

    /// Producer side: elements lost before they reached the ring.
    func addLost(_ count: UInt64) {
        if count > 0 { lostCount.add(count, ordering: .relaxed) }
    }

    /// Consumer side: takes every waiting element.
    func drain(_ body: (Element) -> Void) {
        var read = head.load(ordering: .relaxed)
        let end = tail.load(ordering: .acquiring)
        while read < end {
            body(storage[read & mask])
            read += 1
            head.store(read, ordering: .releasing)
        }
    }

    /// Consumer side: elements lost since the last call.
    func takeLost() -> UInt64 {
        lostCount.exchange(0, ordering: .relaxed)
    }
}

/// Events for one `conntrack watch` client from one worker.
typealias WatchQueue = SingleProducerRing<ConnectionEvent>
