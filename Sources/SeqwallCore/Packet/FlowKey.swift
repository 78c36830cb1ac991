/// The endpoints of a connection as seen in one direction.
public struct FlowKey: Hashable, Sendable {
    public var source: IPAddress
    public var destination: IPAddress
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var protocolNumber: UInt8

    public init(source: IPAddress, destination: IPAddress, sourcePort: UInt16, destinationPort: UInt16,
                protocolNumber: UInt8 = 6) {
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.protocolNumber = protocolNumber
    }

    public init(_ segment: TCPSegment) {
        self.init(source: segment.source, destination: segment.destination,
                  sourcePort: segment.sourcePort, destinationPort: segment.destinationPort)
    }

    /// The same connection seen from the other end.
    public var reversed: FlowKey {
        FlowKey(source: destination, destination: source, sourcePort: destinationPort,
                destinationPort: sourcePort, protocolNumber: protocolNumber)
    }

    public var isIPv4: Bool { source.isIPv4 }

    /// Field by field like the synthesised one (so the synthesised hash(into:) still agrees),
    /// but without a branch per field: the table compares a stored key with the packet's and
    /// with its reverse on every lookup, and the fields differ or not at random.
    // Always inlined: every lookup compares a stored key with the packet's and its reverse.
    @inline(__always)
    public static func == (lhs: FlowKey, rhs: FlowKey) -> Bool {
        let addresses = (lhs.source.high ^ rhs.source.high) | (lhs.source.low ^ rhs.source.low)
            | (lhs.destination.high ^ rhs.destination.high) | (lhs.destination.low ^ rhs.destination.low)
        let rest = UInt64(lhs.sourcePort ^ rhs.sourcePort) | UInt64(lhs.destinationPort ^ rhs.destinationPort) << 16
            | UInt64(lhs.protocolNumber ^ rhs.protocolNumber) << 32
        return addresses | rest == 0
    }

    /// Same address and port (or echo id and type marker) at both ends: a "land" packet. Its
    /// reply would carry the very same key, so no entry could tell the two directions apart.
    public var isLand: Bool { source == destination && sourcePort == destinationPort }
}
