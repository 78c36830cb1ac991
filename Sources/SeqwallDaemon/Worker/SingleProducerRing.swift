import SeqwallCore
import Synchronization

/// A bounded single-producer, single-consumer ring: a worker pushes without a lock, a system
/// call or an allocation; when the consumer is too slow and the ring is full, elements are
/// dropped and counted, so a slow consumer never slows the packet path. `Element` is a plain
/// value (no references: slots are overwritten, never deinitialized), copied in and out.
///
/// The two threads run on different cores: what each writes sits on a cache line of its own
/// (the consumer's `head`; the producer's `tail`, its last look at `head` and the lost count),
/// apart from the fields both only read, so that a push does not pull the line the consumer
/// just wrote, nor a drain the producer's. The producer reads `head` only when the ring looks
/// full by its last look (the classic cached-index SPSC queue); `drainRuns` publishes `head`
/// once per drain.
final class SingleProducerRing<Element>: @unchecked Sendable {
    let capacity: Int
    /// `capacity` is a power of two: a slot's index is a mask, not a division, on every push.
    private let mask: Int
    private let storage: UnsafeMutablePointer<Element>
    private let spacer0 = CacheLineSpacer()
    /// Next slot to read; written by the consumer only.
    private let head = Atomic<Int>(0)
    private let spacer1 = CacheLineSpacer()
    /// Next slot to write; written by the producer only.
    private let tail = Atomic<Int>(0)
    /// The producer's last look at `head` (the producer's own field): the ring has at least
    /// `capacity - (tail - headSeen)` free slots.
    private var headSeen = 0
    private let lostCount = Atomic<UInt64>(0)
    private let spacer2 = CacheLineSpacer()

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
        if write - headSeen >= capacity {
            headSeen = head.load(ordering: .acquiring)
            guard write - headSeen < capacity else {
                lostCount.add(1, ordering: .relaxed)
                return false
            }
        }
        (storage + (write & mask)).initialize(to: element)
        tail.store(write + 1, ordering: .releasing)
        return true
    }

    /// Producer side: elements lost before they reached the ring.
    func addLost(_ count: UInt64) {
        if count > 0 { lostCount.add(count, ordering: .relaxed) }
    }

    /// Consumer side: takes every waiting element, its slots freed one by one (for a `body`
    /// that may take long).
    func drain(_ body: (Element) -> Void) {
        var read = head.load(ordering: .relaxed)
        let end = tail.load(ordering: .acquiring)
        while read < end {
            body(storage[read & mask])
            read += 1
            head.store(read, ordering: .releasing)
        }
    }

    /// Consumer side: hands every waiting element to `body` where it lies, in at most two
    /// contiguous runs (the second from the storage's start), and frees their slots at once
    /// afterwards: the sync thread reads a worker's changes without copying them out first.
    func drainRuns(_ body: (UnsafeBufferPointer<Element>) -> Void) {
        let read = head.load(ordering: .relaxed)
        let end = tail.load(ordering: .acquiring)
        guard read < end else { return }
        let start = read & mask, count = end - read
        let first = min(count, capacity - start)
        body(UnsafeBufferPointer(start: storage + start, count: first))
        if count > first { body(UnsafeBufferPointer(start: storage, count: count - first)) }
        head.store(end, ordering: .releasing)
    }

    /// Consumer side: elements lost since the last call.
    func takeLost() -> UInt64 {
        lostCount.exchange(0, ordering: .relaxed)
    }
}

/// Events for one `conntrack watch` client from one worker.
typealias WatchQueue = SingleProducerRing<ConnectionEvent>
