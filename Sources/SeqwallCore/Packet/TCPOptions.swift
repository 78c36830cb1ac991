/// The TCP options the tracker uses (RFC 9293 3.2, RFC 7323, RFC 2018).
public struct TCPOptions: Sendable, Equatable {
    public var mss: UInt16 = 0
    /// The shift count as sent (not yet clamped), valid when `hasWindowScale`.
    public var windowScale: UInt8 = 0
    public var hasWindowScale = false
    public var sackPermitted = false
    public var hasTimestamps = false
    public var timestampValue: UInt32 = 0
    public var timestampEcho: UInt32 = 0
    /// The highest right edge of the SACK blocks, valid when `hasSACK`.
    public var sackRightEdge: UInt32 = 0
    public var hasSACK = false

    public init() {}
}
