import SeqwallCore
import Synchronization

/// Events for one `conntrack watch` client from one worker: a single-producer,
/// single-consumer ring. The worker pushes without a lock, a system call or an allocation; when
/// the watcher is too slow and the ring is full, events are dropped and counted, so a slow
/// watcher never slows the packet path.
final class WatchQueue: @unchecked Sendable {
    let capacity: Int
    private let storage: UnsafeMutablePointer<ConnectionEvent>
    /// Next slot to read; written by the consumer only.
    private let head = Atomic<Int>(0)
    /// Next slot to write; written by the producer only.
    private let tail = Atomic<Int>(0)
    private let lostCount = Atomic<UInt64>(0)

    init(capacity: Int = 16384) {
        self.capacity = capacity
        storage = .allocate(capacity: capacity)
    }

    deinit { storage.deallocate() }

    /// Producer side (the worker thread).
    @inline(__always)
    func push(_ event: ConnectionEvent) {
        let write = tail.load(ordering: .relaxed)
        guard write - head.load(ordering: .acquiring) < capacity else {
            lostCount.add(1, ordering: .relaxed)
            return
        }
        (storage + write % capacity).initialize(to: event)
        tail.store(write + 1, ordering: .releasing)
    }

    /// Producer side: events the tracker could not even record.
    func addLost(_ count: UInt64) {
        if count > 0 { lostCount.add(count, ordering: .relaxed) }
    }

    /// Consumer side (the watcher's thread): takes every waiting event.
    func drain(_ body: (ConnectionEvent) -> Void) {
        var read = head.load(ordering: .relaxed)
        let end = tail.load(ordering: .acquiring)
        while read < end {
            body(storage[read % capacity])
            read += 1
            head.store(read, ordering: .releasing)
        }
    }

    /// Consumer side: events lost since the last call.
    func takeLost() -> UInt64 {
        lostCount.exchange(0, ordering: .relaxed)
    }
}
