/// A proxied connection's SynProxyState in the state file and in the sync protocol
/// (docs/synproxy.md, Restart and failover): without its offsets seqwall could not translate
/// the connection's packets after a restart or on the other node, and both halves would reset
/// it. Little-endian, as the state file's records, 36 bytes:
///
///      0  u32 cookie             4  u32 client ISN
///      8  u16 client MSS        10  u8 client window scale (255: none)
///     11  u8 client options: bit 0 SACK-permitted, bit 1 ECN, bit 2 timestamps
///     12  u8 window scale advertised to the client (255: none)
///     13  u8 server window scale (255: none)
///     14  u16 client window     16  u32 client timestamp
///     20  u32 seqwall's timestamp toward the client
///     24  u32 sequence offset   28  u32 timestamp offset
///     32  u8 flags: bit 0 the server answered
///     33  3 reserved bytes, 0
extension StateSnapshot {
    public static let proxyStateLength = 36
    static let noScale: UInt8 = 255

    /// Appends one proxy state's `proxyStateLength` bytes.
    public static func appendProxyState(_ state: SynProxyState, to bytes: inout [UInt8]) {
        var writer = Encoder(continuing: bytes, monotonicNow: 0)
        bytes = []
        writer.putProxyState(state)
        bytes = writer.bytes
    }

    /// Reads one proxy state at `offset` (which must leave `proxyStateLength` bytes); nil when
    /// a field holds what no handshake could have made.
    public static func decodeProxyState(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> SynProxyState? {
        guard offset >= 0, bytes.count - offset >= proxyStateLength else { return nil }
        var reader = Reader(bytes: bytes, offset: offset)
        return reader.proxyState()
    }
}

extension StateSnapshot.Encoder {
    mutating func putProxyState(_ state: SynProxyState) {
        func scale(_ value: UInt8?) -> UInt8 { value ?? StateSnapshot.noScale }
        put32(state.cookie)
        put32(state.clientISN)
        put16(state.options.mss)
        put8(scale(state.options.windowScale))
        put8((state.options.sackPermitted ? 1 : 0) | (state.options.ecn ? 2 : 0) | (state.options.timestamps ? 4 : 0))
        put8(scale(state.advertisedWindowScale))
        put8(scale(state.serverWindowScale))
        put16(state.clientWindow)
        put32(state.clientTimestamp)
        put32(state.proxyTimestamp)
        put32(state.sequenceOffset)
        put32(state.timestampOffset)
        put8(state.serverAnswered ? 1 : 0)
        put8(0); put8(0); put8(0)
    }
}

extension StateSnapshot.Reader {
    mutating func proxyState() -> SynProxyState? {
        // RFC 7323 2.3: no shift above 14.
        func scale(_ value: UInt8) -> (ok: Bool, value: UInt8?) {
            value == StateSnapshot.noScale ? (true, nil) : (value <= 14, value)
        }
        let cookie = u32(), clientISN = u32(), mss = u16()
        let clientScale = scale(u8()), optionBits = u8(), advertised = scale(u8()), server = scale(u8())
        let clientWindow = u16(), clientTimestamp = u32(), proxyTimestamp = u32()
        let sequenceOffset = u32(), timestampOffset = u32(), flags = u8()
        offset += 3
        guard clientScale.ok, advertised.ok, server.ok, optionBits & ~7 == 0, flags & ~1 == 0 else { return nil }
        let options = SynCookieOptions(mss: mss, windowScale: clientScale.value, sackPermitted: optionBits & 1 != 0,
                                       ecn: optionBits & 2 != 0, timestamps: optionBits & 4 != 0)
        var state = SynProxyState(cookie: cookie, clientISN: clientISN, options: options,
                                  advertisedWindowScale: advertised.value, clientWindow: clientWindow,
                                  clientTimestamp: clientTimestamp, proxyTimestamp: proxyTimestamp)
        state.sequenceOffset = sequenceOffset
        state.timestampOffset = timestampOffset
        state.serverWindowScale = server.value
        state.serverAnswered = flags & 1 != 0
        return state
    }
}
