import SeqwallTestSupport
@testable import SeqwallCore
import Testing

// PrefixMatcher's directory widths and the batch warm-up's steps (prefetched range, search,
// ties settled last), each against the naive list (`naiveContains`, AddressTableTests).

/// Entries whose flips crowd a few directory slots and spread over the rest: IPv4 in three
/// dense /16s and anywhere, IPv6 under 2000::/3 (flips sharing leading bits, as a block list's
/// do) with /65 to /128 entries packed into a few /64s, so that searches tie on high words.
private func crowdedEntries(_ random: inout SplitMix64, count: Int) -> [TableEntry] {
    let dense: [UInt32] = [0x0A0B_0000, 0xC633_0000, 0xFFFF_0000]
    let packed = (0..<6).map { 0x2001_0DB8_0000_0000 | UInt64($0) << 24 }
    var entries: [TableEntry] = []
    for _ in 0..<count {
        let spread = random.next() % 3 == 0
        let value = spread ? UInt32(truncatingIfNeeded: random.next())
            : dense[Int(random.next() % 3)] | UInt32(truncatingIfNeeded: random.next() & 0xFFFF)
        let length4 = spread ? 8 + Int(random.next() % 25) : 16 + Int(random.next() % 17)
        entries.append(TableEntry(IPNetwork(address: IPAddress(ipv4: value), prefixLength: length4), negated: random.next() % 4 == 0))
        let high: UInt64, length6: Int
        if random.next() % 2 == 0 {
            high = 0x2000_0000_0000_0000 | random.next() >> 3
            length6 = 24 + Int(random.next() % 41)
        } else {
            high = packed[Int(random.next() % 6)]
            length6 = 64 + Int(random.next() % 65)
        }
        let low = random.next() % 2 == 0 ? random.next() % 64 : random.next()
        entries.append(TableEntry(IPNetwork(address: IPAddress(high: high, low: low), prefixLength: length6),
                                  negated: random.next() % 4 == 0))
    }
    return entries
}

@Suite("Prefix matcher: directory widths and warm-up steps")
struct PrefixMatcherTests {
    @Test("the directory widens with the flips: 16 bits, then at most two flips a slot, up to 20")
    func directoryWidths() {
        #expect(PrefixMatcher.directoryBits(flips: 0) == 16)
        #expect(PrefixMatcher.directoryBits(flips: 131_072) == 16)
        #expect(PrefixMatcher.directoryBits(flips: 131_073) == 17)
        // The 1.2M-prefix block list of the benchmarks: 421,691 IPv4 and 391,882 IPv6 flips.
        #expect(PrefixMatcher.directoryBits(flips: 421_691) == 18)
        #expect(PrefixMatcher.directoryBits(flips: 391_882) == 18)
        #expect(PrefixMatcher.directoryBits(flips: 2_097_152) == 20)
        #expect(PrefixMatcher.directoryBits(flips: 50_000_000) == 20)
    }

    @Test("every directory width agrees with the naive list, at every entry's edges and its slot's",
          arguments: [16, 17, 18, 20, 22] as [Int])
    func widths(bits: Int) {
        var random = SplitMix64(seed: 0xD1 &+ UInt64(bits))
        let entries = crowdedEntries(&random, count: 1500)
        let matcher = PrefixMatcher(entries, regionProvider: nil, directoryBits: bits)
        #expect(matcher.isLarge)
        var probes = [ip("0.0.0.0"), ip("255.255.255.255"), ip("::"), ip("2000::"), ip("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
                      ip("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")]
        let slotBits4 = UInt32(32 - bits)
        for entry in entries {
            let network = entry.network
            probes += edges(of: network, hostBits: (network.isIPv4 ? 32 : 128) - network.prefixLength)
            if network.isIPv4 {
                // The first and last address of the slot the entry starts in and its neighbours'.
                let slot = (network.address.ipv4Value >> slotBits4) << slotBits4
                let last = slot | ((1 << slotBits4) - 1)
                probes += [slot &- 1, slot, last, last &+ 1].map { IPAddress(ipv4: $0) }
            } else {
                // The same for the IPv6 slot, after the three bits all the flips share.
                let slotBits6 = UInt64(64 - 3 - bits)
                let slot = (network.address.high >> slotBits6) << slotBits6
                let last = slot | ((1 << slotBits6) - 1)
                probes += [IPAddress(high: slot &- 1, low: .max), IPAddress(high: slot, low: 0),
                           IPAddress(high: last, low: .max), IPAddress(high: last &+ 1, low: 0)]
            }
        }
        for _ in 0..<2000 {
            probes.append(IPAddress(ipv4: UInt32(truncatingIfNeeded: random.next())))
            probes.append(IPAddress(high: 0x2000_0000_0000_0000 | random.next() >> 3, low: random.next()))
        }
        for address in probes {
            let expected = naiveContains(entries, address)
            #expect(matcher.contains(address) == expected, "\(bits) bits, \(address)")
            // The batch warm-up's steps: the range (its lines prefetched), the search, the tie.
            let found = matcher.search(address, inRange: matcher.warmRange(address))
            #expect(matcher.answer(address, found: found) == expected, "\(bits) bits, warm-up, \(address)")
        }
    }

    @Test("a search that ties on a high word waits for the low word; a zero low word settles it at once")
    func ties() {
        var random = SplitMix64(seed: 0x71E5)
        var entries = crowdedEntries(&random, count: 600)
        // A /48 and a /64 of their own: their flips have zero low words and no /65 to /128 around.
        entries += [TableEntry(IPNetwork(address: ip("2001:db8:ffff::"), prefixLength: 48)),
                    TableEntry(IPNetwork(address: ip("2001:db8:fffe:1::"), prefixLength: 64))]
        for bits in [16, 18] {
            let matcher = PrefixMatcher(entries, regionProvider: nil, directoryBits: bits)
            var pending = 0
            for entry in entries where !entry.network.isIPv4 {
                let network = entry.network
                for address in edges(of: network, hostBits: 128 - network.prefixLength) {
                    let found = matcher.search(address, inRange: matcher.warmRange(address))
                    if found & PrefixMatcher.tiePending != 0 { pending += 1 }
                    #expect(matcher.answer(address, found: found) == naiveContains(entries, address), "\(address)")
                }
            }
            // The packed /64s hold hundreds of /65 to /128 entries: their edges tie.
            #expect(pending > 100)
            for text in ["2001:db8:ffff::", "2001:db8:ffff::1", "2001:db8:fffe:1::", "2001:db8:fffe:1:ffff:ffff:ffff:ffff"] {
                let found = matcher.search(ip(text), inRange: matcher.warmRange(ip(text)))
                #expect(found == 1, "\(text) is inside an entry of /64 or shorter, settled without a low word")
            }
        }
    }
}
