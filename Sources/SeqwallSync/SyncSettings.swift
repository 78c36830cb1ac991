/// The sync protocol's timings and bounds (docs/sync-protocol.md, Reliability). Times in
/// nanoseconds.
public struct SyncSettings: Sendable {
    /// How long a connection's changes are gathered before its record goes (pfsync's
    /// defer-less update interval).
    public var coalesceInterval: UInt64 = 50_000_000
    /// Changes after which a connection's record goes at once (pfsync's maxupd).
    public var maximumChanges = 16
    /// An idle sender says it is alive (and acknowledges) this often.
    public var aliveInterval: UInt64 = 1_000_000_000
    /// A receiver acknowledges data at most this often: an acknowledgement only lets the
    /// sender drop what it holds for resending, and one per round would cost the sender as many
    /// datagrams to open as it sends.
    public var acknowledgeInterval: UInt64 = 100_000_000
    /// ... or as soon as this many data messages came, so that a sender pacing a bulk by the
    /// half of `resendCapacity` it may hold unacknowledged is never held up by the interval.
    public var acknowledgeMessages = 256
    /// A peer not heard for this long is down.
    public var peerTimeout: UInt64 = 3_000_000_000
    /// Data messages held for resend.
    public var resendCapacity = 4096
    /// A gap is asked for again this often while it lasts.
    public var nackInterval: UInt64 = 100_000_000
    /// A node not in sync asks its peer for a bulk this often.
    public var bulkRequestInterval: UInt64 = 2_000_000_000
    /// Messages whose sender's wall clock is further than this from ours are refused.
    public var maximumClockSkew: UInt64 = 60_000_000_000

    public init() {}
}
