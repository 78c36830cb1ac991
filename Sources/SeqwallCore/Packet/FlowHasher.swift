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

    // Always inlined: one multiply, in the middle of every lookup's hash.
    @inline(__always)
    static func fold(_ x: UInt64, _ y: UInt64) -> UInt64 {
        let product = x.multipliedFullWidth(by: y)
        return product.high ^ product.low
    }

    // Always inlined: every lookup hashes the packet's key; a call would take the key out of registers.
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
