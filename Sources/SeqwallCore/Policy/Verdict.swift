/// What happens to one packet.
public enum Verdict: Equatable, Sendable {
    case accept
    case drop(DropReason)
    /// Drop, and answer the sender (a `reject` rule): with a TCP RST for TCP, with an ICMP port
    /// unreachable for UDP. seqwall sends the answer itself (RejectAnswer), as the kernel's
    /// REJECT would.
    case reject
}
