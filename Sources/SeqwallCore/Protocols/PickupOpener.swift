/// Which side opened a connection first seen mid-stream, told by its ports.
///
/// Without the SYN, who spoke first says nothing: after a restart the first segment seqwall
/// sees may be the server's (a banner, a keepalive, an answer). Clients connect from an
/// ephemeral port (Linux picks it from ip_local_port_range, `set pickup ephemeral-ports`);
/// servers listen on a fixed one. So a connection with exactly one end on an ephemeral port
/// was opened from that end. When both ends or neither are on one, the ports do not tell, and
/// the tracker picks the connection up only if the policy would pass it opened from either
/// end (docs/design.md, Pickup).
public enum PickupOpener: Equatable, Sendable {
    /// The segment's sender opened it: the segment goes in the original direction.
    case sender
    /// The segment's receiver opened it: the segment goes in the reply direction.
    case receiver
    /// The ports do not tell.
    case unknown

    public init(sourcePort: UInt16, destinationPort: UInt16, ephemeral: PortRange) {
        switch (ephemeral.contains(sourcePort), ephemeral.contains(destinationPort)) {
        case (true, false): self = .sender
        case (false, true): self = .receiver
        default: self = .unknown
        }
    }
}
