import Foundation
import Logging
import SeqwallTelemetry
import Synchronization

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
