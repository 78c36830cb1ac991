/// What a captured packet turned out to be.
public enum ParsedPacket: Sendable, Equatable {
    case tcp(TCPSegment)
    /// A UDP datagram, or an ICMP or ICMPv6 echo request or reply.
    case datagram(Datagram)
    /// An ICMP or ICMPv6 error and the flow of the packet it quotes.
    case icmpError(ICMPError)
    /// ICMPv6 neighbour discovery (RFC 4861: router and neighbour solicitation and
    /// advertisement, redirect) or multicast listener discovery (RFC 2710, RFC 3810), with the
    /// hop limit those require: link-local control traffic that IPv6 cannot work without.
    case neighbourDiscovery(source: IPAddress, destination: IPAddress)
    /// An unfragmented IP packet of another protocol (IPv6: after walking the extension headers).
    case other(protocolNumber: UInt8, source: IPAddress, destination: IPAddress)
    case invalid(DropReason)
}

extension ParsedPacket {
    /// The packet's IP addresses; nil when it did not parse.
    public var addresses: (source: IPAddress, destination: IPAddress)? {
        switch self {
        case .tcp(let segment): (segment.source, segment.destination)
        case .datagram(let datagram): (datagram.key.source, datagram.key.destination)
        case .icmpError(let error): (error.source, error.destination)
        case .neighbourDiscovery(let source, let destination), .other(_, let source, let destination):
            (source, destination)
        case .invalid: nil
        }
    }
}
