/// Where a packet was seen; decides the direction of a new connection.
public enum PacketHook: UInt8, Sendable {
    /// Host mode, to this host (NF_INET_LOCAL_IN): inbound.
    case input
    /// Host mode, from this host (NF_INET_LOCAL_OUT): outbound.
    case output
    /// Gateway mode (NF_INET_FORWARD): inbound when going toward `inside` from outside it.
    case forward
    /// Anything else (pre/post-routing, or a capture): judged like forward.
    case other
}
