import SeqwallControl
import SeqwallCore
import SeqwallTelemetry
import SeqwallVersion

/// The daemon's figures, assembled for `stats` (StatsRecord) and for the metrics endpoint
/// (the Prometheus text): each worker's, asked through its mailbox, the kernel's per-queue
/// figures (KernelQueueStatistics), and the daemon's own (DaemonStatus).
final class DaemonStatistics: Sendable {
    private unowned let daemon: Daemon

    init(daemon: Daemon) {
        self.daemon = daemon
    }

    /// The metrics endpoint's text.
    func metricsText() -> String {
        let kernel = KernelQueueStatistics.read()
        var metrics = DaemonMetrics()
        metrics.queues = daemon.workers.map { worker in
            var queue = worker.mailbox.perform { $0.metrics() }
            queue.kernel = kernel[worker.queue]
            queue.failOpen = daemon.options.settings.failOpen
            queue.dropLogSuppressed = worker.dropLog.suppressed
            queue.dropLogLost = worker.dropLog.lost
            return queue
        }
        let reloads = daemon.status.reloads
        metrics.reloadsSucceeded = reloads.succeeded
        metrics.reloadsFailed = reloads.failed
        metrics.lastReloadSucceeded = reloads.lastSucceeded
        metrics.stateFile = daemon.status.stateFileHealth
        metrics.uptimeSeconds = daemon.status.uptimeSeconds
        metrics.version = BuildVersion.version
        metrics.commit = BuildVersion.commit
        metrics.pickupGraceEnds = pickupGrace()?.ends ?? 0
        return metrics.text
    }

    /// The `stats` reply's record.
    func statistics() -> StatsRecord {
        let kernel = KernelQueueStatistics.read()
        let inputs = daemon.workers.map { worker in
            worker.mailbox.perform { worker in
                StatsRecord.QueueInput(queue: worker.queue, counters: worker.tracker.counters,
                                       connections: worker.tracker.table.count,
                                       halfOpen: worker.tracker.halfOpenCount,
                                       limit: worker.tracker.table.limit,
                                       enobufs: worker.adapter.enobufs,
                                       malformedMessages: worker.adapter.malformedMessages,
                                       sendErrors: worker.adapter.sendErrors,
                                       rejectAnswers: worker.adapter.rejectAnswers,
                                       rejectAnswersLimited: worker.adapter.rejectAnswersLimited,
                                       rejectAnswersFailed: worker.adapter.rejectAnswersFailed,
                                       kernel: kernel[worker.queue],
                                       halfOpenLimit: worker.tracker.limiter.halfOpenLimit,
                                       sources: worker.tracker.limiter.sources.map {
                                           StatsRecord.Sources($0, now: SystemCall.monotonicNanoseconds())
                                       })
            }
        }
        let status = daemon.status
        var record = StatsRecord(queues: inputs)
        record.uptime_seconds = status.uptimeSeconds
        record.last_reload = status.lastReload
        record.rule_drops = daemon.ruleDrops()
        record.state_file = status.stateFileHealth
        record.warnings = status.currentWarnings
        record.version = BuildVersion.version
        record.commit = BuildVersion.commit
        if let grace = pickupGrace() {
            record.pickup?.grace_ends = grace.ends
            record.pickup?.grace_seconds_left = grace.secondsLeft
        }
        return record
    }

    /// The latest end of the workers' pickup grace periods, in seconds since 1970, and the
    /// seconds left of it; nil when no worker has one.
    private func pickupGrace() -> (ends: UInt64, secondsLeft: UInt64)? {
        let ends = daemon.workers.compactMap { worker in worker.mailbox.perform { $0.tracker.pickupGraceEnds } }.max()
        guard let ends else { return nil }
        let monotonicNow = SystemCall.monotonicNanoseconds()
        let wallNow = SystemCall.wallClockNanoseconds()
        let wallEnds = ends >= monotonicNow ? wallNow &+ (ends - monotonicNow)
                                            : wallNow &- min(wallNow, monotonicNow - ends)
        let left = ends > monotonicNow ? (ends - monotonicNow + 999_999_999) / 1_000_000_000 : 0
        return (wallEnds / 1_000_000_000, left)
    }
}
