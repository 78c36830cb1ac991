import Foundation
import SeqwallCore
import SeqwallTestSupport
import Testing

/// The table's answer by definition: the longest entry containing the address decides, and of
/// the same prefix written both ways the exception does.
func naiveContains(_ entries: [TableEntry], _ address: IPAddress) -> Bool {
    var best: TableEntry?
    for entry in entries where entry.network.contains(address) {
        guard let current = best else { best = entry; continue }
        if entry.network.prefixLength > current.network.prefixLength
            || (entry.network.prefixLength == current.network.prefixLength && entry.negated) {
            best = entry
        }
    }
    return best.map { !$0.negated } ?? false
}

/// Addresses and prefixes drawn from a few small regions, so that prefixes nest, touch and
/// repeat far more often than uniform ones would.
private struct RandomPrefixes {
    var random: SplitMix64

    mutating func address(ipv4: Bool) -> IPAddress {
        let region = random.next() % 3
        if ipv4 {
            let bases: [UInt32] = [0xC633_6400, 0xCB00_7100, 0x0A00_0000]
            return IPAddress(ipv4: bases[Int(region)] &+ UInt32(truncatingIfNeeded: random.next() % 4096))
        }
        let bases: [UInt64] = [0x2001_0DB8_0000_0000, 0x2001_0DB8_FFFF_0000, 0xFE80_0000_0000_0000]
        let low = random.next() % 4 == 0 ? random.next() : random.next() % 4096
        return IPAddress(high: bases[Int(region)] &+ random.next() % 4, low: low)
    }

    mutating func entry(ipv4: Bool) -> TableEntry {
        let maximum = ipv4 ? 32 : 128
        let length: Int
        switch random.next() % 8 {
        case 0: length = Int(random.next() % UInt64(maximum + 1))
        case 1: length = maximum
        default: length = maximum - Int(random.next() % (ipv4 ? 14 : 70))
        }
        return TableEntry(IPNetwork(address: address(ipv4: ipv4), prefixLength: length), negated: random.next() % 4 == 0)
    }
}

@Suite("Address tables")
struct AddressTableTests {
    @Test("longest prefix with exceptions, as a naive list decides", arguments: [1, 2, 3, 4, 5, 6, 7, 8] as [UInt64])
    func randomAgainstNaive(seed: UInt64) {
        var draw = RandomPrefixes(random: SplitMix64(seed: seed))
        for size in [0, 1, 2, 5, 20, 200, 1500] {
            let entries = (0..<size).map { _ in draw.entry(ipv4: draw.random.next() % 2 == 0) }
            let table = AddressTable(name: "t", entries: entries)
            for _ in 0..<3000 {
                let address = draw.address(ipv4: draw.random.next() % 2 == 0)
                #expect(table.contains(address) == naiveContains(entries, address),
                        "seed \(seed), \(size) entries, \(address)")
            }
            // Every edge of every entry and its neighbours: where the flips are.
            for entry in entries.prefix(200) {
                let network = entry.network
                let hostBits = (network.isIPv4 ? 32 : 128) - network.prefixLength
                for address in edges(of: network, hostBits: hostBits) {
                    #expect(table.contains(address) == naiveContains(entries, address), "seed \(seed), edge \(address) of \(entry)")
                }
            }
        }
    }

    @Test("exceptions inside prefixes and prefixes inside exceptions")
    func nested() {
        let table = AddressTable(name: "t", entries: [
            TableEntry(net("198.51.100.0/24")),
            TableEntry(net("198.51.100.0/28"), negated: true),
            TableEntry(net("198.51.100.7/32")),
            TableEntry(net("198.51.100.255/32"), negated: true),
            TableEntry(net("2001:db8::/48")),
            TableEntry(net("2001:db8::1/128"), negated: true),
        ])
        #expect(table.contains(ip("198.51.100.200")))
        #expect(!table.contains(ip("198.51.100.6")))
        #expect(table.contains(ip("198.51.100.7")))
        #expect(!table.contains(ip("198.51.100.8")))
        #expect(table.contains(ip("198.51.100.16")))
        #expect(!table.contains(ip("198.51.100.255")))
        #expect(!table.contains(ip("198.51.101.0")))
        #expect(table.contains(ip("2001:db8::2")))
        #expect(!table.contains(ip("2001:db8::1")))
        #expect(!table.contains(ip("2001:db8:1::")))
        // An IPv4 table says nothing about the IPv6 address that maps it, and the reverse.
        #expect(!table.contains(IPAddress(high: 0, low: 0xC633_64C8)))
    }

    @Test("the whole address space, and its last address")
    func extremes() {
        let table = AddressTable(name: "t", entries: [
            TableEntry(net("0.0.0.0/0")), TableEntry(net("255.255.255.255/32"), negated: true),
            TableEntry(net("::/0")), TableEntry(net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"), negated: true),
        ])
        #expect(table.contains(ip("0.0.0.0")))
        #expect(table.contains(ip("255.255.255.254")))
        #expect(!table.contains(ip("255.255.255.255")))
        #expect(table.contains(ip("::")))
        #expect(table.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")))
        #expect(!table.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")))
        #expect(!AddressTable(name: "empty", entries: []).contains(ip("198.51.100.1")))
    }

    @Test("many IPv4 entries go through the /16 directory and agree with the naive list")
    func directory() {
        var random = SplitMix64(seed: 42)
        var entries: [TableEntry] = []
        for _ in 0..<3000 {
            let value = UInt32(truncatingIfNeeded: random.next()) & 0xC0FF_FFFF
            let length = 8 + Int(random.next() % 25)
            entries.append(TableEntry(IPNetwork(address: IPAddress(ipv4: value), prefixLength: length),
                                      negated: random.next() % 5 == 0))
        }
        let table = AddressTable(name: "t", entries: entries)
        #expect(table.lookupByteCount > 65536 * 4)
        for entry in entries.prefix(300) {
            for address in edges(of: entry.network, hostBits: 32 - entry.network.prefixLength) {
                #expect(table.contains(address) == naiveContains(entries, address))
            }
        }
        for _ in 0..<5000 {
            let address = IPAddress(ipv4: UInt32(truncatingIfNeeded: random.next()) & 0xC0FF_FFFF)
            #expect(table.contains(address) == naiveContains(entries, address))
        }
    }

    @Test("many IPv6 entries go through the directory after their shared bits and agree with the naive list")
    func ipv6Directory() {
        var random = SplitMix64(seed: 43)
        var entries: [TableEntry] = []
        for _ in 0..<3000 {
            let address = IPAddress(high: 0x2001_0DB8_0000_0000 | random.next() % 0x1_0000_0000, low: random.next())
            entries.append(TableEntry(IPNetwork(address: address, prefixLength: 40 + Int(random.next() % 89)),
                                      negated: random.next() % 5 == 0))
        }
        let table = AddressTable(name: "t", entries: entries)
        for entry in entries.prefix(300) {
            for address in edges(of: entry.network, hostBits: 128 - entry.network.prefixLength) {
                #expect(table.contains(address) == naiveContains(entries, address))
            }
        }
        for _ in 0..<5000 {
            let address = IPAddress(high: 0x2001_0DB8_0000_0000 | random.next() % 0x1_0000_0000, low: random.next())
            #expect(table.contains(address) == naiveContains(entries, address))
        }
    }

    @Test("large tables with /0, host entries, dense /16s and the ends of the space agree with the naive list",
          arguments: [11, 12, 13] as [UInt64])
    func directoryEdges(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        // A few /16s hold most IPv4 entries, so that their flips fill several cache lines; the
        // rest are spread over the space. IPv6 spans the whole space (no shared leading bits).
        let dense: [UInt32] = [0x0000_0000, 0xC633_0000, 0xFFFF_0000]
        var entries = [TableEntry(net("0.0.0.0/0")), TableEntry(net("0.0.0.0/32"), negated: true),
                       TableEntry(net("255.255.255.255/32"), negated: true), TableEntry(net("::/0"), negated: true),
                       TableEntry(net("::/128")), TableEntry(net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"))]
        for _ in 0..<2500 {
            let spread = random.next() % 3 == 0
            let value = spread ? UInt32(truncatingIfNeeded: random.next())
                : dense[Int(random.next() % 3)] | UInt32(truncatingIfNeeded: random.next() & 0xFFFF)
            let length = spread ? Int(random.next() % 33) : 16 + Int(random.next() % 17)
            entries.append(TableEntry(IPNetwork(address: IPAddress(ipv4: value), prefixLength: length),
                                      negated: random.next() % 3 == 0))
            let high = random.next() % 2 == 0 ? random.next() : random.next() >> 40 | 0xFFFF_FF00_0000_0000
            entries.append(TableEntry(IPNetwork(address: IPAddress(high: high, low: random.next()),
                                                prefixLength: Int(random.next() % 129)),
                                      negated: random.next() % 3 == 0))
        }
        let table = AddressTable(name: "t", entries: entries)
        var probes = [ip("0.0.0.0"), ip("0.0.0.1"), ip("255.255.255.254"), ip("255.255.255.255"),
                      ip("::"), ip("::1"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"),
                      ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")]
        for entry in entries {
            let hostBits = (entry.network.isIPv4 ? 32 : 128) - entry.network.prefixLength
            probes += edges(of: entry.network, hostBits: hostBits)
            if entry.network.isIPv4 {
                // The first and last address of the directory slot the entry starts in, and of
                // the slots on either side.
                let slot = entry.network.address.ipv4Value & 0xFFFF_0000
                probes += [slot &- 1, slot, slot | 0xFFFF, (slot | 0xFFFF) &+ 1].map { IPAddress(ipv4: $0) }
            }
        }
        for _ in 0..<3000 {
            probes.append(IPAddress(ipv4: dense[Int(random.next() % 3)] | UInt32(truncatingIfNeeded: random.next() & 0xFFFF)))
            probes.append(IPAddress(high: random.next(), low: random.next()))
        }
        for address in probes {
            #expect(table.contains(address) == naiveContains(entries, address), "seed \(seed), \(address)")
        }
    }

    @Test("IPv6 entries of /64 to /128 packed into a few /64s (flips sharing a high word) agree with the naive list",
          arguments: [(21, 40), (22, 3000)] as [(UInt64, Int)])
    func ipv6SharedHighWords(seed: UInt64, count: Int) {
        var random = SplitMix64(seed: seed)
        // Eight /64s, each holding many nested and touching long prefixes and exceptions, so that
        // runs of flips share a high word and a lookup has to settle ties by the low words; a
        // few /48 to /64 around them give ties with flips whose low word is zero.
        let highs = (0..<8).map { 0x2001_0DB8_0000_0000 | UInt64($0) << 20 | UInt64($0) }
        var entries: [TableEntry] = []
        for _ in 0..<count {
            let high = highs[Int(random.next() % 8)]
            let short = random.next() % 16 == 0
            let length = short ? 48 + Int(random.next() % 17) : 64 + Int(random.next() % 65)
            let low = random.next() % 2 == 0 ? random.next() % 64 : random.next()
            entries.append(TableEntry(IPNetwork(address: IPAddress(high: high, low: low), prefixLength: length),
                                      negated: random.next() % 4 == 0))
        }
        let table = AddressTable(name: "t", entries: entries)
        var probes: [IPAddress] = []
        for entry in entries { probes += edges(of: entry.network, hostBits: 128 - entry.network.prefixLength) }
        for high in highs {
            probes += [0, 1, 63, 64, UInt64.max - 1, UInt64.max].map { IPAddress(high: high, low: $0) }
            probes += [IPAddress(high: high - 1, low: UInt64.max), IPAddress(high: high + 1, low: 0)]
        }
        for _ in 0..<3000 {
            let low = random.next() % 2 == 0 ? random.next() % 96 : random.next()
            probes.append(IPAddress(high: highs[Int(random.next() % 8)], low: low))
        }
        for address in probes {
            #expect(table.contains(address) == naiveContains(entries, address), "seed \(seed), \(address)")
        }
    }

    @Test("entries are kept sorted and without repeats")
    func canonicalEntries() {
        let table = AddressTable(name: "t", entries: [
            TableEntry(net("2001:db8::/48")), TableEntry(net("198.51.100.7"), negated: true),
            TableEntry(net("198.51.100.0/24")), TableEntry(net("198.51.100.0/24")),
        ])
        #expect(table.entries.map(\.description) == ["198.51.100.0/24", "!198.51.100.7", "2001:db8::/48"])
    }

    /// A table whose lookup arrays can hold a huge page takes them from its region provider,
    /// in one region on a huge page boundary, and so does every table a live change makes from
    /// it; a small one never does. Each region goes back when its table goes. The daemon's
    /// provider maps each region fresh onto huge pages (HugePageRegions).
    @Test("large lookup arrays come from the region provider, small ones do not")
    func hugePageRegions() {
        let regions = RecordingRegions()
        var random = SplitMix64(seed: 7)
        // 70,000 host routes: 140,000 IPv6 flips of 16 bytes, beyond one 2 MiB page.
        let entries = (0..<70_000).map { _ in
            TableEntry(IPNetwork(address: IPAddress(high: 0x2001_0DB8_0000_0000 | random.next() >> 32, low: random.next()),
                                 prefixLength: 128))
        }
        do {
            let table = AddressTable(name: "large", entries: entries, regionProvider: regions.provider)
            let first = regions.allocated
            #expect(first.count == 1)
            for (start, length) in first {
                #expect(start % (2 << 20) == 0)
                #expect(length >= table.lookupByteCount)
            }
            let changed = table.adding([TableEntry(net("198.51.100.0/24"))]).table
            #expect(changed.contains(ip("198.51.100.9")))
            #expect(regions.allocated.count == 2)
            _ = AddressTable(name: "small", entries: [TableEntry(net("198.51.100.0/24"))], regionProvider: regions.provider)
            #expect(regions.allocated.count == 2)
            for entry in entries.prefix(200) {
                #expect(table.contains(entry.network.address) && changed.contains(entry.network.address))
            }
            #expect(regions.released.isEmpty)
        }
        #expect(regions.released.map(\.start).sorted() == regions.allocated.map(\.start).sorted())
        #expect(regions.released.map(\.byteCount).sorted() == regions.allocated.map(\.byteCount).sorted())
    }
}

private func net(_ text: String) -> IPNetwork {
    let parts = text.split(separator: "/")
    let address = ip(String(parts[0]))
    return IPNetwork(address: address, prefixLength: parts.count == 2 ? Int(parts[1])! : (address.isIPv4 ? 32 : 128))
}

/// The first and last address of `network` and the addresses just outside it.
func edges(of network: IPNetwork, hostBits: Int) -> [IPAddress] {
    if network.isIPv4 {
        let first = network.address.ipv4Value
        let last = hostBits == 32 ? UInt32.max : first | ((1 << UInt32(hostBits)) - 1)
        return [first &- 1, first, last, last &+ 1].map { IPAddress(ipv4: $0) }
    }
    let first = UInt128(network.address.high) << 64 | UInt128(network.address.low)
    let last = hostBits == 128 ? UInt128.max : first | ((1 << UInt128(hostBits)) - 1)
    return [first &- 1, first, last, last &+ 1].map {
        IPAddress(high: UInt64(truncatingIfNeeded: $0 >> 64), low: UInt64(truncatingIfNeeded: $0))
    }
}
