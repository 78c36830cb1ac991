/// Counters of one tracker. Plain integers: a tracker belongs to one thread.
public struct TrackerCounters: Sendable, Equatable {
    public var seen: UInt64 = 0
    public var accepted: UInt64 = 0
    public var dropped: UInt64 = 0
    /// Indexed by DropReason.rawValue.
    public var drops = [UInt64](repeating: 0, count: DropReason.allCases.count)
    public var created: UInt64 = 0
    public var destroyed: UInt64 = 0
    /// Unreplied half-open connections evicted to admit a SYN at the half-open limit.
    public var halfOpenEvictions: UInt64 = 0
    /// Connections evicted to admit a new one into a full table (the kernel's early_drop).
    public var earlyDrops: UInt64 = 0
    /// Connections first seen mid-stream and adopted (`set pickup on`, or the grace period).
    public var pickedUp: UInt64 = 0
    /// Sources that went over a per-source connection limit with `overload`, handed on to be
    /// added to the table (a source may be counted again until the table blocks it).
    public var overloads: UInt64 = 0
    /// Overloads lost because the tracker's overload buffer was full.
    public var overloadsLost: UInt64 = 0
    /// The SYN proxy (docs/synproxy.md): cookie SYN-ACKs sent; clients' ACKs whose cookie was
    /// good, and those whose cookie was not (each also a `synproxy-bad-cookie` drop); proxied
    /// connections opened toward servers; handshakes a server refused (an RST to seqwall's
    /// SYN); segments of seqwall's own that did not fit the outbox and were not sent; SYNs
    /// passed to the server unproxied because it refused their port lately (ClosedPortMemory).
    public var synProxyCookiesSent: UInt64 = 0
    public var synProxyValidAcks: UInt64 = 0
    public var synProxyInvalidAcks: UInt64 = 0
    public var synProxyConnections: UInt64 = 0
    public var synProxyRefused: UInt64 = 0
    public var synProxySegmentsLost: UInt64 = 0
    public var synProxyClosedPortsPassed: UInt64 = 0

    public init() {}

    public subscript(reason: DropReason) -> UInt64 { drops[Int(reason.rawValue)] }

    public mutating func add(_ other: TrackerCounters) {
        seen += other.seen
        accepted += other.accepted
        dropped += other.dropped
        for index in drops.indices { drops[index] += other.drops[index] }
        created += other.created
        destroyed += other.destroyed
        halfOpenEvictions += other.halfOpenEvictions
        earlyDrops += other.earlyDrops
        pickedUp += other.pickedUp
        overloads += other.overloads
        overloadsLost += other.overloadsLost
        synProxyCookiesSent += other.synProxyCookiesSent
        synProxyValidAcks += other.synProxyValidAcks
        synProxyInvalidAcks += other.synProxyInvalidAcks
        synProxyConnections += other.synProxyConnections
        synProxyRefused += other.synProxyRefused
        synProxySegmentsLost += other.synProxySegmentsLost
        synProxyClosedPortsPassed += other.synProxyClosedPortsPassed
    }
}
