/// Counters of a queue worker's adapter, beside the tracker's.
struct AdapterCounters {
    /// Receive overflows: the kernel dropped messages it could not queue to the socket.
    var enobufs: UInt64 = 0
    /// Messages from the kernel that were not well-formed packet messages.
    var malformedMessages: UInt64 = 0
    /// Batches of verdicts the kernel refused.
    var sendErrors: UInt64 = 0
    /// Answers to rejected packets: sent, held back by the rate limit, and not sent (no raw
    /// socket, or the kernel refused the send).
    var rejectAnswers: UInt64 = 0
    var rejectAnswersLimited: UInt64 = 0
    var rejectAnswersFailed: UInt64 = 0
    /// The SYN proxy's own segments (SynProxyOutbox) the raw sockets did not send (no raw
    /// socket, or the kernel refused the send), and those not sent because no route leads to
    /// their destination (EHOSTUNREACH, ENETUNREACH): a cookie SYN-ACK to a spoofed source,
    /// as a flood makes many of.
    var synProxySendFailures: UInt64 = 0
    var synProxyUnroutable: UInt64 = 0
}
