import SeqwallCore
import SeqwallTestSupport

/// A seeded block list shaped like the ones operators load (country lists, DROP lists, scanners):
/// IPv4 mostly /24 and /32 with some /16 to /22, IPv6 /32 to /64 and /128, one entry in fifty an
/// exception. The same seed gives the same entries on every run and in every benchmark.
public struct BlockList: Sendable {
    public let entries: [TableEntry]
    public let table: AddressTable

    /// `hugePages`: whether the table's lookup arrays are advised onto huge pages, as the
    /// daemon does.
    public init(ipv4: Int, ipv6: Int, seed: UInt64 = 0x7AB1E5, hugePages: Bool = true) {
        var generator = SplitMix64(seed: seed)
        var entries: [TableEntry] = []
        entries.reserveCapacity(ipv4 + ipv6)
        let lengths4 = [16, 20, 22, 24, 24, 24, 24, 32, 32, 32]
        for _ in 0..<ipv4 {
            let length = lengths4[Int(generator.next() % 10)]
            let network = IPNetwork(address: IPAddress(ipv4: UInt32(truncatingIfNeeded: generator.next())), prefixLength: length)
            entries.append(TableEntry(network, negated: generator.next() % 50 == 0))
        }
        let lengths6 = [32, 40, 48, 48, 56, 64, 64, 128]
        for _ in 0..<ipv6 {
            let length = lengths6[Int(generator.next() % 8)]
            let address = IPAddress(high: 0x2000_0000_0000_0000 | generator.next() >> 3, low: generator.next())
            entries.append(TableEntry(IPNetwork(address: address, prefixLength: length), negated: generator.next() % 50 == 0))
        }
        self.entries = entries
        table = AddressTable(name: "drop", entries: entries, regionProvider: regionProvider(hugePages: hugePages))
    }

    /// `count` addresses of `family` that the table contains (`hit`) or does not, none of them
    /// in `avoiding`: each drawn inside a random plain entry (hits) or anywhere in the family's
    /// part of the space (misses), and kept only when the table agrees.
    public func addresses(_ count: Int, ipv4: Bool, hit: Bool, avoiding: [IPNetwork] = [], seed: UInt64) -> [IPAddress] {
        var generator = SplitMix64(seed: seed)
        let family = entries.filter { $0.network.isIPv4 == ipv4 && !$0.negated }
        var result: [IPAddress] = []
        result.reserveCapacity(count)
        while result.count < count {
            let address: IPAddress
            if hit {
                let network = family[Int(generator.next() % UInt64(family.count))].network
                address = ipv4
                    ? IPAddress(ipv4: network.address.ipv4Value | UInt32(truncatingIfNeeded: generator.next()) >> UInt32(network.prefixLength))
                    : IPAddress(high: network.address.high | (network.prefixLength >= 64 ? 0 : generator.next() >> UInt64(network.prefixLength)),
                                low: network.address.low | (network.prefixLength >= 128 ? 0 : generator.next() >> UInt64(max(0, network.prefixLength - 64))))
            } else {
                address = ipv4 ? IPAddress(ipv4: UInt32(truncatingIfNeeded: generator.next()))
                    : IPAddress(high: 0x2000_0000_0000_0000 | generator.next() >> 3, low: generator.next())
            }
            if table.contains(address) == hit, !avoiding.contains(where: { $0.contains(address) }) { result.append(address) }
        }
        return result
    }
}
