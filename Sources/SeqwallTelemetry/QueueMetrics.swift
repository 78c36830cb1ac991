import SeqwallControl
import SeqwallCore

/// What one queue worker reports at a scrape: its counters as of the moment it ran the scrape's
/// job (between two packet batches, so they agree with each other).
public struct QueueMetrics: Sendable {
    public var queue: UInt16
    public var counters = TrackerCounters()
    /// Connections in the table, and the table's limit (this worker's share of `limit states`).
    public var connections = 0
    public var connectionLimit = 0
    public var halfOpen = 0
    /// This worker's share of `limit half-open`; nil when there is none.
    public var halfOpenLimit: Int?
    public var enobufs: UInt64 = 0
    public var malformedMessages: UInt64 = 0
    public var sendErrors: UInt64 = 0
    /// Answers to rejected packets: sent, held back by the rate limit, not sent.
    public var rejectAnswers: UInt64 = 0
    public var rejectAnswersLimited: UInt64 = 0
    public var rejectAnswersFailed: UInt64 = 0
    /// The kernel's figures from /proc/net/netfilter/nfnetlink_queue; nil when it has none.
    public var kernel: StatsRecord.KernelQueue?
    /// `--fail-open`: the kernel then accepts what a full queue cannot hold, and counts nothing.
    public var failOpen = false
    public var dropLogSuppressed: UInt64 = 0
    public var dropLogLost: UInt64 = 0
    public var processing = LatencyHistogram()

    public init(queue: UInt16) { self.queue = queue }
}
