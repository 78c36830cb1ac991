import Foundation
import Logging
import SeqwallTelemetry
import Synchronization

/// One worker's drop log: the records it hands over, and what it left out. The worker pushes
/// and counts without a lock or an allocation; the `DropLogWriter` thread formats and writes.
final class DropLogChannel: @unchecked Sendable {
    let queue: UInt16
    /// 4096 records (about 100 bytes each) per worker: a fifth of a second of a 20k/s flood
    /// logged in `full` before the writer, which drains every 50 ms, falls behind.
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
    fileprivate func collectLost() -> UInt64 {
        let new = ring.takeLost()
        if new > 0 { lostCount.add(new, ordering: .relaxed) }
        return new
    }
}

/// The thread that writes drop log lines, so the packet path never waits for stderr: it drains
/// every worker's ring each `pollInterval`, writes one line per record, and says what was left
/// out (rate limit) or lost (ring full) so that no drop goes missing unannounced. It also warns
/// when IP fragments reach a queue (a diversion without reassembly): at once, then at most
/// once a `DropLogSummary.fragmentWarningIntervalNanoseconds` with the count since.
final class DropLogWriter: @unchecked Sendable {
    static let pollInterval: useconds_t = 50_000

    private let channels: [DropLogChannel]
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    init(channels: [DropLogChannel], logger: Logger) {
        self.channels = channels
        self.logger = logger
    }

    func start() {
        startDaemonThread(named: "seqwall-droplog", signalling: finished) { [self] in run() }
    }

    /// Writes what is still waiting, the summaries included, and ends the thread. Call after the
    /// workers have stopped, so nothing comes after it.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        finished.wait()
    }

    private func run() {
        var reportedSuppressed = channels.map(\.suppressed)
        var reportedFragments = channels.map(\.fragments)
        var nextFragmentWarning: UInt64 = 0
        var nextSummary = SystemCall.monotonicNanoseconds() &+ DropLogSummary.intervalNanoseconds
        while true {
            let last = stopping.load(ordering: .relaxed)
            for channel in channels {
                channel.ring.drain { record in logger.info("\(record.line)") }
                let lost = channel.collectLost()
                if lost > 0 { logger.warning("\(DropLogSummary.lost(lost, queue: channel.queue))") }
            }
            let now = SystemCall.monotonicNanoseconds()
            if now >= nextFragmentWarning {
                var warned = false
                for (index, channel) in channels.enumerated() {
                    let fragments = channel.fragments
                    if fragments > reportedFragments[index] {
                        logger.warning("\(DropLogSummary.fragments(fragments - reportedFragments[index], queue: channel.queue))")
                        reportedFragments[index] = fragments
                        warned = true
                    }
                }
                if warned { nextFragmentWarning = now &+ DropLogSummary.fragmentWarningIntervalNanoseconds }
            }
            if now >= nextSummary || last {
                for (index, channel) in channels.enumerated() {
                    let suppressed = channel.suppressed
                    if suppressed > reportedSuppressed[index] {
                        logger.info("\(DropLogSummary.suppressed(suppressed - reportedSuppressed[index], queue: channel.queue))")
                        reportedSuppressed[index] = suppressed
                    }
                }
                nextSummary = now &+ DropLogSummary.intervalNanoseconds
            }
            if last { return }
            usleep(DropLogWriter.pollInterval)
        }
    }
}
