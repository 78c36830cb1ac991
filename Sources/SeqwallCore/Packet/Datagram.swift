/// What kind of datagram a `Datagram` is.
public enum DatagramKind: UInt8, Sendable {
    case udp
    case echoRequest
    case echoReply
}

/// A UDP datagram or an ICMP/ICMPv6 echo request or reply: tracked by its flow key alone.
public struct Datagram: Sendable, Equatable {
    /// For ICMP echo, the key ICMPEcho builds from type, code and identifier.
    public var key: FlowKey
    public var kind: DatagramKind
    /// The packet's length on the wire, for byte counters.
    public var wireLength: Int

    public init(key: FlowKey, kind: DatagramKind, wireLength: Int) {
        self.key = key
        self.kind = kind
        self.wireLength = wireLength
    }
}

/// An ICMP or ICMPv6 error (RFC 792, RFC 4443 2.4) and the packet it quotes.
public struct ICMPError: Sendable, Equatable {
    /// The error's own addresses: from the router or host that sent it, to the quoted packet's
    /// sender (if it is genuine).
    public var source: IPAddress
    public var destination: IPAddress
    public var type: UInt8
    public var code: UInt8
    /// The flow key of the quoted packet, in the direction that packet was sent: the reverse of
    /// the error's own direction.
    public var quoted: FlowKey
    /// The sequence number of a quoted TCP segment (within the 8 bytes of transport header
    /// every error carries, RFC 792); 0 for other protocols.
    public var quotedSequence: UInt32
    public var wireLength: Int

    public init(source: IPAddress, destination: IPAddress, type: UInt8, code: UInt8, quoted: FlowKey,
                quotedSequence: UInt32 = 0, wireLength: Int = 0) {
        self.source = source
        self.destination = destination
        self.type = type
        self.code = code
        self.quoted = quoted
        self.quotedSequence = quotedSequence
        self.wireLength = wireLength
    }
}

/// ICMP echo flows in the connection table, the way conntrack keys them (type, code and
/// identifier; nf_conntrack_proto_icmp.c, icmp_pkt_to_tuple and its invmap). FlowKey has two
/// ports; an echo request from A to B is keyed
///
///     source A, destination B, sourcePort = identifier, destinationPort = request type << 8 | code
///
/// and its reply from B to A with the two ports the other way round, so the reply's key is the
/// request's reversed and the table finds both in one entry, each in its own direction. The
/// type stays in the key, so an echo request from B to A (B pinging A) is a flow of its own,
/// as in the kernel.
public enum ICMPEcho {
    public static let requestType: UInt8 = 8
    public static let replyType: UInt8 = 0
    public static let requestType6: UInt8 = 128
    public static let replyType6: UInt8 = 129

    /// The key of an echo request or reply, nil for any other type.
    @inline(__always)
    public static func key(source: IPAddress, destination: IPAddress, ipv6: Bool, type: UInt8, code: UInt8,
                           identifier: UInt16) -> (key: FlowKey, kind: DatagramKind)? {
        let protocolNumber = ipv6 ? TrackedProtocol.icmp6Number : TrackedProtocol.icmpNumber
        let marker = UInt16(ipv6 ? requestType6 : requestType) << 8 | UInt16(code)
        switch type {
        case ipv6 ? requestType6 : requestType:
            return (FlowKey(source: source, destination: destination, sourcePort: identifier,
                            destinationPort: marker, protocolNumber: protocolNumber), .echoRequest)
        case ipv6 ? replyType6 : replyType:
            return (FlowKey(source: source, destination: destination, sourcePort: marker,
                            destinationPort: identifier, protocolNumber: protocolNumber), .echoReply)
        default:
            return nil
        }
    }

    /// Type, code and identifier of a request's key (the original direction of an echo entry),
    /// and the type of the reply that answers it.
    public static func fields(of key: FlowKey) -> (type: UInt8, code: UInt8, identifier: UInt16, replyType: UInt8) {
        let ipv6 = key.protocolNumber == TrackedProtocol.icmp6Number
        return (UInt8(truncatingIfNeeded: key.destinationPort >> 8), UInt8(truncatingIfNeeded: key.destinationPort),
                key.sourcePort, ipv6 ? replyType6 : replyType)
    }
}
