/// What identifies an answer seqwall sent for a rejected packet (RejectAnswer) when it comes
/// back through the queue: a host's answer leaves through OUTPUT, and an answer to the host
/// itself also enters again through INPUT. Made from the parsed answer when it is sent and from
/// the parsed packet when one arrives, so the two compare field by field: an RST by its
/// endpoints, sequence, acknowledgment and flags; an ICMP error by the flow it quotes, its type
/// and code (its source may be the kernel's choice, so it is left out).
public struct AnswerTicket: Equatable, Sendable {
    public var key: FlowKey
    public var sequence: UInt32
    public var acknowledgment: UInt32
    /// TCP flags for an RST; 0x10000 + type × 256 + code for an ICMP error.
    public var kind: UInt32

    /// nil for anything that cannot be an answer: only RSTs and ICMP errors are.
    public init?(_ packet: ParsedPacket) {
        switch packet {
        case .tcp(let segment) where segment.flags.contains(.rst):
            key = FlowKey(segment)
            sequence = segment.sequence
            acknowledgment = segment.acknowledgment
            kind = UInt32(segment.flags.rawValue)
        case .icmpError(let error):
            key = error.quoted
            sequence = error.quotedSequence
            acknowledgment = 0
            kind = 0x10000 | UInt32(error.type) << 8 | UInt32(error.code)
        default:
            return nil
        }
    }
}
