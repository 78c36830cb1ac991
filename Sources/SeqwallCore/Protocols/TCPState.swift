/// The kernel's TCP conntrack states, with its names, so conntrack users recognise them.
/// Raw values follow enum tcp_conntrack in include/uapi/linux/netfilter/nf_conntrack_tcp.h.
public enum TCPState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case none = 0
    case synSent = 1
    case synRecv = 2
    case established = 3
    case finWait = 4
    case closeWait = 5
    case lastAck = 6
    case timeWait = 7
    case close = 8
    case synSent2 = 9

    /// The name `conntrack -L` prints.
    public var name: String {
        switch self {
        case .none: "NONE"
        case .synSent: "SYN_SENT"
        case .synRecv: "SYN_RECV"
        case .established: "ESTABLISHED"
        case .finWait: "FIN_WAIT"
        case .closeWait: "CLOSE_WAIT"
        case .lastAck: "LAST_ACK"
        case .timeWait: "TIME_WAIT"
        case .close: "CLOSE"
        case .synSent2: "SYN_SENT2"
        }
    }

    public var description: String { name }

    /// Accepts the kernel name in any case, with `-` or `_` ("syn-sent", "SYN_SENT").
    public init?(name: String) {
        let normalized = String(name.uppercased().map { $0 == "-" ? "_" : $0 })
        guard let state = TCPState.allCases.first(where: { $0.name == normalized }) else { return nil }
        self = state
    }

    /// A connection that has not completed its handshake (what half-open limits count).
    public var isHalfOpen: Bool { self == .synSent || self == .synSent2 || self == .synRecv }
}
