import SeqwallCore

/// One queue's figures, as its worker reports them between two packet batches (so they agree
/// with each other): what `seqwall stats` sums into a StatsRecord and the metrics endpoint
/// shows per queue. Replay fills the tracker's part for a capture.
public struct QueueMetrics: Sendable {
    public var queue: UInt16
    public var counters: TrackerCounters
    /// Connections in the table, and the table's limit (this worker's share of `limit states`).
    public var connections: Int
    public var connectionLimit: Int
    public var halfOpen: Int
    /// This worker's share of `limit half-open`; nil when there is none.
    public var halfOpenLimit: Int?
    /// The per-source table; nil when no per-source limit is (or was) in force.
    public var sources: StatsRecord.Sources?
    /// Receive overflows (ENOBUFS): the kernel could not deliver packets.
    public var enobufs: UInt64
    /// Messages from the kernel that were not well-formed packet messages.
    public var malformedMessages: UInt64
    /// Batches of verdicts the kernel refused.
    public var sendErrors: UInt64
    /// Answers to rejected packets: sent, held back by the rate limit, not sent.
    public var rejectAnswers: UInt64
    public var rejectAnswersLimited: UInt64
    public var rejectAnswersFailed: UInt64
    /// The SYN proxy's own segments the raw sockets did not send: failures, and those with no
    /// route to their destination (cookie SYN-ACKs to spoofed sources).
    public var synProxySendFailures: UInt64 = 0
    public var synProxyUnroutable: UInt64 = 0
    /// The kernel's figures from /proc/net/netfilter/nfnetlink_queue; nil when it has none.
    public var kernel: StatsRecord.KernelQueue?
    /// `--fail-open`: the kernel then accepts what a full queue cannot hold, and counts nothing.
    public var failOpen = false
    /// Drop log lines left out by `sampled`, and lost to a full ring.
    public var dropLogSuppressed: UInt64 = 0
    public var dropLogLost: UInt64 = 0
    /// Time per packet from receive to verdict.
    public var processing = LatencyHistogram()

    public init(queue: UInt16, counters: TrackerCounters = TrackerCounters(), connections: Int = 0, halfOpen: Int = 0,
                connectionLimit: Int = 0, enobufs: UInt64 = 0, malformedMessages: UInt64 = 0, sendErrors: UInt64 = 0,
                rejectAnswers: UInt64 = 0, rejectAnswersLimited: UInt64 = 0, rejectAnswersFailed: UInt64 = 0,
                kernel: StatsRecord.KernelQueue? = nil, halfOpenLimit: Int? = nil, sources: StatsRecord.Sources? = nil) {
        self.queue = queue
        self.counters = counters
        self.connections = connections
        self.halfOpen = halfOpen
        self.connectionLimit = connectionLimit
        self.enobufs = enobufs
        self.malformedMessages = malformedMessages
        self.sendErrors = sendErrors
        self.rejectAnswers = rejectAnswers
        self.rejectAnswersLimited = rejectAnswersLimited
        self.rejectAnswersFailed = rejectAnswersFailed
        self.kernel = kernel
        self.halfOpenLimit = halfOpenLimit
        self.sources = sources
    }

    /// The tracker's part: its counters, table and limits as they stand at `now`.
    public init(queue: UInt16, tracker: ConnectionTracker, now: UInt64) {
        self.init(queue: queue, counters: tracker.counters, connections: tracker.connectionCount,
                  halfOpen: tracker.halfOpenCount, connectionLimit: tracker.connectionLimit,
                  halfOpenLimit: tracker.halfOpenLimit,
                  sources: tracker.sourceTableUsage(now: now))
    }
}
