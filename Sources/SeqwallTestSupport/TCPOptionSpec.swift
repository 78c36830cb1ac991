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
        var bytes: [UInt8] = []
        append(to: &bytes)
        return bytes
    }

    /// Appends the option's bytes to `packet` without an array of its own (the benchmarks
    /// build a million packets a pass).
    func append(to packet: inout [UInt8]) {
        switch self {
        case .endOfList: packet.append(0)
        case .noOperation: packet.append(1)
        case .mss(let mss):
            packet.append(2); packet.append(4)
            packet.append(bigEndian: mss)
        case .windowScale(let shift):
            packet.append(3); packet.append(3); packet.append(shift)
        case .sackPermitted:
            packet.append(4); packet.append(2)
        case .sack(let blocks):
            packet.append(5); packet.append(UInt8(2 + 8 * blocks.count))
            for (left, right) in blocks {
                packet.append(bigEndian: left)
                packet.append(bigEndian: right)
            }
        case .timestamps(let value, let echo):
            packet.append(8); packet.append(10)
            packet.append(bigEndian: value)
            packet.append(bigEndian: echo)
        case .raw(let bytes): packet += bytes
        }
    }
}
