/// Per-direction window tracking state, after van Rooij and the kernel's ip_ct_tcp_state.
public struct TCPPeerState: Sendable, Equatable {
    /// Highest sequence number sent plus its length (td_end).
    public var end: UInt32 = 0
    /// Highest sequence number the receiver's window allows (td_maxend).
    public var maxEnd: UInt32 = 0
    /// Largest window seen from this side, scaled (td_maxwin). Zero means "nothing seen yet".
    public var maxWindow: UInt32 = 0
    /// Highest acknowledgment this side sent (td_maxack), valid with `.maxAckSet`.
    public var maxAck: UInt32 = 0
    /// Window scale shift, clamped to 14; zero unless both sides sent the option.
    public var scale: UInt8 = 0
    public var flags: PeerFlags = []

    public init() {}
}
