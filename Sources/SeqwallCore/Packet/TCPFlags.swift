/// TCP header flag bits (RFC 9293 3.1).
public struct TCPFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)
    public static let ece = TCPFlags(rawValue: 0x40)
    public static let cwr = TCPFlags(rawValue: 0x80)

    /// The only combinations a valid segment can carry once PSH, ECE and CWR are set aside
    /// (the kernel's tcp_valid_flags): SYN, SYN|ACK, RST, RST|ACK, FIN|ACK, ACK, and SYN, FIN|ACK,
    /// ACK with URG.
    public var isValidCombination: Bool {
        let significant = rawValue & ~(TCPFlags.psh.rawValue | TCPFlags.ece.rawValue | TCPFlags.cwr.rawValue)
        switch significant {
        case 0x02, 0x22,    // SYN, SYN|URG
             0x12,          // SYN|ACK
             0x04, 0x14,    // RST, RST|ACK
             0x11, 0x31,    // FIN|ACK, FIN|ACK|URG
             0x10, 0x30:    // ACK, ACK|URG
            return true
        default:
            return false
        }
    }

    /// "SYN,ACK" style text for logs and replay output.
    public var names: String {
        let all: [(TCPFlags, String)] = [(.fin, "FIN"), (.syn, "SYN"), (.rst, "RST"), (.psh, "PSH"),
                                         (.ack, "ACK"), (.urg, "URG"), (.ece, "ECE"), (.cwr, "CWR")]
        let set = all.filter { contains($0.0) }.map(\.1)
        return set.isEmpty ? "NONE" : set.joined(separator: ",")
    }
}
