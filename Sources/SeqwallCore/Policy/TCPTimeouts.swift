/// Per-state timeouts in seconds, with the kernel's defaults (nf_conntrack_proto_tcp.c).
public struct TCPTimeouts: Sendable, Equatable {
    public var synSent: UInt32 = 120
    public var synSent2: UInt32 = 120
    public var synRecv: UInt32 = 60
    public var established: UInt32 = 432_000
    public var finWait: UInt32 = 120
    public var closeWait: UInt32 = 60
    public var lastAck: UInt32 = 30
    public var timeWait: UInt32 = 120
    public var close: UInt32 = 10
    /// Used instead of a longer one when a side keeps retransmitting (RFC 1122 R2 bound).
    public var retransmit: UInt32 = 300
    /// Used instead of a longer one while data is unacknowledged.
    public var unacknowledged: UInt32 = 300

    public init() {}

    public subscript(state: TCPState) -> UInt32 {
        get {
            switch state {
            case .none: close
            case .synSent: synSent
            case .synSent2: synSent2
            case .synRecv: synRecv
            case .established: established
            case .finWait: finWait
            case .closeWait: closeWait
            case .lastAck: lastAck
            case .timeWait: timeWait
            case .close: close
            }
        }
        set {
            switch state {
            case .none: break
            case .synSent: synSent = newValue
            case .synSent2: synSent2 = newValue
            case .synRecv: synRecv = newValue
            case .established: established = newValue
            case .finWait: finWait = newValue
            case .closeWait: closeWait = newValue
            case .lastAck: lastAck = newValue
            case .timeWait: timeWait = newValue
            case .close: close = newValue
            }
        }
    }
}
