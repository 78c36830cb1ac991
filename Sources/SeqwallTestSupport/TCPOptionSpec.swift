import SeqwallCore

/// A TCP option as it goes on the wire (RFC 9293 3.2, RFC 7323, RFC 2018).
public enum TCPOptionSpec: Sendable {
    case endOfList
    case noOperation
    case mss(UInt16)
    case windowScale(UInt8)
    case sackPermitted
    /// (left edge, right edge) pairs.
    case sack([(UInt32, UInt32)])
    case timestamps(value: UInt32, echo: UInt32)
    /// Any bytes, for malformed options (kind, length and body as given).
    case raw([UInt8])

    public var bytes: [UInt8] {
        switch self {
        case .endOfList: return [0]
        case .noOperation: return [1]
        case .mss(let mss): return [2, 4] + mss.bigEndianBytes
        case .windowScale(let shift): return [3, 3, shift]
        case .sackPermitted: return [4, 2]
        case .sack(let blocks):
            return [5, UInt8(2 + 8 * blocks.count)] + blocks.flatMap { $0.0.bigEndianBytes + $0.1.bigEndianBytes }
        case .timestamps(let value, let echo): return [8, 10] + value.bigEndianBytes + echo.bigEndianBytes
        case .raw(let bytes): return bytes
        }
    }
}
