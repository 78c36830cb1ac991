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
