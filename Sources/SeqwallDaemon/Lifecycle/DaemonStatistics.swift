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
        var metrics = DaemonMetrics()
        metrics.queues = QueueWorker.metrics(of: daemon.workers)
        let reloads = daemon.status.reloads
        metrics.reloadsSucceeded = reloads.succeeded
        metrics.reloadsFailed = reloads.failed
        metrics.lastReloadSucceeded = reloads.lastSucceeded
        metrics.stateFile = daemon.status.stateFileHealth
        metrics.uptimeSeconds = daemon.status.uptimeSeconds
        metrics.version = BuildVersion.version
        metrics.commit = BuildVersion.commit
        metrics.pickupGraceEnds = pickupGrace()?.ends ?? 0
        metrics.tables = daemon.tableSummaries()
        metrics.sync = daemon.sync?.status
        metrics.overload = daemon.withReloadLock { daemon.overloadFigures }
        return metrics.text
    }

    /// The `stats` reply's record.
    func statistics() -> StatsRecord {
        let status = daemon.status
        var record = StatsRecord(queues: QueueWorker.metrics(of: daemon.workers))
        record.uptime_seconds = status.uptimeSeconds
        record.last_reload = status.lastReload
        record.rule_drops = daemon.ruleDrops()
        record.state_file = status.stateFileHealth
        record.warnings = status.currentWarnings
        record.version = BuildVersion.version
        record.commit = BuildVersion.commit
        let tables = daemon.tableSummaries()
        if !tables.isEmpty { record.tables = tables }
        record.sync = daemon.sync?.status
        let figures = daemon.withReloadLock { daemon.overloadFigures }
        if record.overload != nil || figures != StatsRecord.Overload() {
            var overload = figures
            overload.sources = record.overload?.sources ?? 0
            overload.lost += record.overload?.lost ?? 0
            record.overload = overload
        }
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
