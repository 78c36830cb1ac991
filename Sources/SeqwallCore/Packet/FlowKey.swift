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
    @inline(__always)
    public var isLand: Bool { source == destination && sourcePort == destinationPort }
}

/// A seeded hash of a flow that is the same for both directions, so one table slot serves a
/// connection whichever way its packets go. The seed is random per table: an attacker who
/// picks addresses and ports cannot aim them at one chain (HashDoS).
public struct FlowHasher: Sendable {
    let seeds: (UInt64, UInt64, UInt64, UInt64, UInt64)

    public init(seeds: (UInt64, UInt64, UInt64, UInt64, UInt64)) {
        self.seeds = seeds
    }

    public init<G: RandomNumberGenerator>(using generator: inout G) {
        seeds = (generator.next() | 1, generator.next() | 1, generator.next() | 1, generator.next() | 1,
                 generator.next() | 1)
    }

    public init() {
        var generator = SystemRandomNumberGenerator()
        self.init(using: &generator)
    }

    @inline(__always)
    static func fold(_ x: UInt64, _ y: UInt64) -> UInt64 {
        let product = x.multipliedFullWidth(by: y)
        return product.high ^ product.low
    }

    @inline(__always)
    public func hash(_ key: FlowKey) -> UInt64 {
        // Order the two endpoints so that both directions feed the same bytes.
        let sourceFirst = key.source < key.destination
            || (key.source == key.destination && key.sourcePort <= key.destinationPort)
        let (first, firstPort, second, secondPort) = sourceFirst
            ? (key.source, key.sourcePort, key.destination, key.destinationPort)
            : (key.destination, key.destinationPort, key.source, key.sourcePort)
        let ports = UInt64(firstPort) << 32 | UInt64(secondPort) << 16 | UInt64(key.protocolNumber)
        var h = FlowHasher.fold(first.high ^ seeds.0, first.low ^ seeds.1)
        h = FlowHasher.fold(h ^ second.high ^ seeds.2, second.low ^ seeds.3)
        return FlowHasher.fold(h ^ ports ^ seeds.4, seeds.0 ^ 0x9E37_79B9_7F4A_7C15)
    }
}
