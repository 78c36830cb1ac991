/// Connection status bits, as conntrack shows them.
public struct ConnectionStatus: OptionSet, Sendable, Equatable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// A packet was seen in the reply direction (else `[UNREPLIED]`).
    public static let seenReply = ConnectionStatus(rawValue: 0x01)
    /// The handshake completed both ways (`[ASSURED]`); never evicted for a newcomer.
    public static let assured = ConnectionStatus(rawValue: 0x02)
    /// Both sides' SYNs crossed (simultaneous open, IP_CT_TCP_SIMULTANEOUS_OPEN).
    public static let simultaneousOpen = ConnectionStatus(rawValue: 0x04)
    /// A SYN seen in LAST_ACK may draw an RFC 5961 challenge ACK (IP_CT_EXP_CHALLENGE_ACK).
    public static let expectChallengeAck = ConnectionStatus(rawValue: 0x08)
    /// A `reject` rule refused this connection: the entry lives only until seqwall's RST
    /// answer has gone out (host mode queues it on OUTPUT), and re-rejects retransmitted SYNs.
    public static let rejected = ConnectionStatus(rawValue: 0x10)
    /// First seen mid-stream with `set pickup on`: no SYN was seen, its history is learned.
    public static let pickedUp = ConnectionStatus(rawValue: 0x20)
    /// An out-of-window FIN or RST from the original (reply) side was dropped since the last
    /// segment that passed: what the kernel's nf_tcp_handle_invalid notes in last_index, kept
    /// apart here so that a dropped segment never changes how the next one is judged.
    public static let droppedCloseOriginal = ConnectionStatus(rawValue: 0x40)
    public static let droppedCloseReply = ConnectionStatus(rawValue: 0x80)
}
