/// The protocols the tracker keeps connections for, as a small enum the packet path switches on.
public enum TrackedProtocol: UInt8, Sendable, CaseIterable {
    case tcp
    case udp
    /// ICMP (IPv4) echo.
    case icmp
    /// ICMPv6 echo.
    case icmp6

    public static let tcpNumber: UInt8 = 6
    public static let udpNumber: UInt8 = 17
    public static let icmpNumber: UInt8 = 1
    public static let icmp6Number: UInt8 = 58

    public init?(protocolNumber: UInt8) {
        switch protocolNumber {
        case TrackedProtocol.tcpNumber: self = .tcp
        case TrackedProtocol.udpNumber: self = .udp
        case TrackedProtocol.icmpNumber: self = .icmp
        case TrackedProtocol.icmp6Number: self = .icmp6
        default: return nil
        }
    }

    public var protocolNumber: UInt8 {
        switch self {
        case .tcp: TrackedProtocol.tcpNumber
        case .udp: TrackedProtocol.udpNumber
        case .icmp: TrackedProtocol.icmpNumber
        case .icmp6: TrackedProtocol.icmp6Number
        }
    }

    /// The name conntrack prints (`icmpv6` for ICMPv6) and rule files use (`icmp6`, as pf).
    public var conntrackName: String {
        switch self {
        case .tcp: "tcp"
        case .udp: "udp"
        case .icmp: "icmp"
        case .icmp6: "icmpv6"
        }
    }

    /// Whether flows of this protocol have ports (and so rules with `port` apply to them).
    public var hasPorts: Bool { self == .tcp || self == .udp }
}
