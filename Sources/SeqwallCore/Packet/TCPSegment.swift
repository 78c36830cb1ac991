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
    /// ACK with URG. Inlined: a call for one comparison was half its cost on the packet path.
    @inline(__always)
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

/// One parsed TCP segment with its IP endpoints: a value, no references, ready for the tracker.
public struct TCPSegment: Sendable, Equatable {
    public var source: IPAddress
    public var destination: IPAddress
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequence: UInt32
    public var acknowledgment: UInt32
    public var flags: TCPFlags
    /// The raw (unscaled) window field.
    public var window: UInt16
    /// Bytes of TCP payload (from the IP length fields, not from what was captured).
    public var payloadLength: Int
    public var options: TCPOptions
    /// The packet's length on the wire, for byte counters.
    public var wireLength: Int

    public init(source: IPAddress, destination: IPAddress, sourcePort: UInt16, destinationPort: UInt16,
                sequence: UInt32, acknowledgment: UInt32, flags: TCPFlags, window: UInt16,
                payloadLength: Int = 0, options: TCPOptions = TCPOptions(), wireLength: Int = 0) {
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequence = sequence
        self.acknowledgment = acknowledgment
        self.flags = flags
        self.window = window
        self.payloadLength = payloadLength
        self.options = options
        self.wireLength = wireLength
    }

    /// An all-zero segment, for the parser to write into (PacketParser.parse(_:wireLength:tcp:)).
    init() {
        self.init(source: IPAddress(high: 0, low: 0), destination: IPAddress(high: 0, low: 0), sourcePort: 0,
                  destinationPort: 0, sequence: 0, acknowledgment: 0, flags: [], window: 0)
    }

    /// Sequence number just past this segment: SYN and FIN each take one (RFC 9293 3.4).
    public var end: UInt32 {
        var length = UInt32(truncatingIfNeeded: payloadLength)
        if flags.contains(.syn) { length &+= 1 }
        if flags.contains(.fin) { length &+= 1 }
        return sequence &+ length
    }
}
