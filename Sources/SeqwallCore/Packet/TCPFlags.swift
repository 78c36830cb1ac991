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
    /// ACK with URG. Forced inline: the packet path that tests it is too large for the
    /// optimizer to inline it there.
    @inline(__always)
    public var isValidCombination: Bool {
        // One bit per valid combination: the significant bits fit in 6, so a 64-bit mask
        // holds them all and the test is a shift.
        let valid: UInt64 = 1 << 0x02 | 1 << 0x22 | 1 << 0x12 | 1 << 0x04 | 1 << 0x14 | 1 << 0x11 | 1 << 0x31
            | 1 << 0x10 | 1 << 0x30
        let significant = rawValue & ~(TCPFlags.psh.rawValue | TCPFlags.ece.rawValue | TCPFlags.cwr.rawValue)
        return valid >> UInt64(significant) & 1 != 0
    }

    /// "SYN,ACK" style text for logs and replay output.
    public var names: String {
        let all: [(TCPFlags, String)] = [(.fin, "FIN"), (.syn, "SYN"), (.rst, "RST"), (.psh, "PSH"),
                                         (.ack, "ACK"), (.urg, "URG"), (.ece, "ECE"), (.cwr, "CWR")]
        let set = all.filter { contains($0.0) }.map(\.1)
        return set.isEmpty ? "NONE" : set.joined(separator: ",")
    }
}
