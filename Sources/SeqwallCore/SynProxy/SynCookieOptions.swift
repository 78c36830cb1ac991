/// The client's SYN options a cookie carries through the handshake so that nothing is stored
/// for a SYN: the MSS as an index into a short table in the cookie's low bits, and, when the
/// client sent timestamps, window scale, SACK-permitted and ECN in the low six bits of the
/// SYN-ACK's timestamp value, which the client echoes (the kernel's cookie_init_timestamp and
/// cookie_timestamp_decode).
public struct SynCookieOptions: Sendable, Equatable {
    /// The MSS the cookie stands for: the largest table entry not above the client's.
    public var mss: UInt16
    /// The client's window shift, nil when it sent no window scale option.
    public var windowScale: UInt8?
    public var sackPermitted: Bool
    /// Whether the client asked for ECN (SYN with ECE and CWR, RFC 3168 6.1.1).
    public var ecn: Bool
    /// Whether the client sent timestamps: without them the other three are not carried.
    public var timestamps: Bool

    public init(mss: UInt16, windowScale: UInt8? = nil, sackPermitted: Bool = false, ecn: Bool = false,
                timestamps: Bool = false) {
        self.mss = mss
        self.windowScale = windowScale
        self.sackPermitted = sackPermitted
        self.ecn = ecn
        self.timestamps = timestamps
    }

    /// Bits of the timestamp value that carry options (the kernel's TSBITS).
    static let timestampBits: UInt32 = 6
    static let windowScaleMask: UInt32 = 0xF
    static let sackBit: UInt32 = 1 << 4
    static let ecnBit: UInt32 = 1 << 5
    /// The largest shift RFC 7323 2.3 allows; a larger one in an echo is forged.
    static let maximumWindowScale: UInt8 = 14

    /// The SYN-ACK's timestamp value: `clock` with its low six bits replaced by the options, and
    /// moved back one step when that would put it ahead of the clock, so the value never runs
    /// ahead of later ones from the same clock (cookie_init_timestamp).
    public func timestampValue(clock: UInt32) -> UInt32 {
        var bits = windowScale.map { UInt32(min($0, SynCookieOptions.maximumWindowScale)) }
            ?? SynCookieOptions.windowScaleMask
        if sackPermitted { bits |= SynCookieOptions.sackBit }
        if ecn { bits |= SynCookieOptions.ecnBit }
        var value = (clock >> SynCookieOptions.timestampBits) << SynCookieOptions.timestampBits | bits
        if value > clock { value &-= 1 << SynCookieOptions.timestampBits }
        return value
    }

    /// The options a client's ACK brings back: `mss` from the cookie; the rest from the echoed
    /// timestamp, when the ACK has one. Four bits hold the shift and 15 means none, so every
    /// echo decodes to a shift of at most 14 (RFC 7323 2.3), as cookie_timestamp_decode requires.
    public static func decode(mss: UInt16, timestampEcho: UInt32?) -> SynCookieOptions {
        guard let echo = timestampEcho else { return SynCookieOptions(mss: mss) }
        let shift = echo & windowScaleMask
        var options = SynCookieOptions(mss: mss, sackPermitted: echo & sackBit != 0, ecn: echo & ecnBit != 0,
                                       timestamps: true)
        if shift != windowScaleMask { options.windowScale = UInt8(min(shift, UInt32(maximumWindowScale))) }
        return options
    }
}
