import SeqwallTelemetry
import Synchronization

/// One worker's drop log: the records it hands over, and what it left out. The worker pushes
/// and counts without a lock or an allocation; the `DropLogWriter` thread formats and writes.
final class DropLogChannel: @unchecked Sendable {
    let queue: UInt16
    /// Room for a burst logged in `full` between two of the writer's drains
    /// (DropLogWriter.pollInterval); what does not fit is lost and counted, never waited for.
    let ring = SingleProducerRing<DropLogRecord>(capacity: 4096)
    /// Lines `sampled` left out; written by the worker only.
    private let suppressedCount = Atomic<UInt64>(0)
    /// Lines lost to a full ring, as the writer has collected them from the ring.
    private let lostCount = Atomic<UInt64>(0)
    /// IP fragments dropped, whatever `set drop-log` says (the writer warns about them).
    private let fragmentCount = Atomic<UInt64>(0)

    init(queue: UInt16) { self.queue = queue }

    var suppressed: UInt64 { suppressedCount.load(ordering: .relaxed) }
    var lost: UInt64 { lostCount.load(ordering: .relaxed) }
    var fragments: UInt64 { fragmentCount.load(ordering: .relaxed) }

    /// Worker side: one more line left out by the rate limit.
    @inline(__always)
    func suppress() {
        // One writer: a load and a store, no read-modify-write needed.
        suppressedCount.store(suppressedCount.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }

    /// Worker side: one more IP fragment dropped.
    @inline(__always)
    func countFragment() {
        fragmentCount.store(fragmentCount.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
    }

    /// Writer side: moves the ring's lost count into the total; returns how many were new.
    func collectLost() -> UInt64 {
        let new = ring.takeLost()
        if new > 0 { lostCount.add(new, ordering: .relaxed) }
        return new
    }
}
