/// What happens to one packet.
public enum Verdict: Equatable, Sendable {
    case accept
    case drop(DropReason)
    /// Drop, and answer the sender (a `reject` rule): with a TCP RST for TCP, with an ICMP port
    /// unreachable for UDP. seqwall sends the answer itself (RejectAnswer), as the kernel's
    /// REJECT would.
    case reject
    /// Accept the packet as the tracker rewrote it in place: a proxied connection's packet,
    /// translated between the two halves' numbers (SynProxyTranslation). The verdict must carry
    /// the rewritten bytes (NFQA_PAYLOAD), which are the whole packet.
    case acceptRewritten
}
