/// Longest-prefix membership for IPv4 and IPv6 at once, built once from a table's entries and
/// read-only after: lookups allocate nothing and take no lock, and a changed table is a new
/// matcher swapped in whole.
///
/// CIDR prefixes are nested or disjoint, so the entries cut the address space into runs that are
/// wholly in or wholly out of the table (the run's innermost prefix decides). Only the addresses
/// where membership flips are kept, sorted; an address is in the table when an odd number of
/// them are at or below it. This is the interval form nft keeps for `flags interval` sets
/// (nft_set_rbtree's start and end elements), flattened into an array so a lookup is a binary
/// search over contiguous memory instead of a walk over pointers as in pf's radix tree or a probe
/// per prefix length as in ipset's hash:net. A directory on the top 16 bits of an IPv4 address
/// (as DIR-24-8 does with 24) narrows the search to the flips under that /16, so that a lookup
/// is a few steps rather than a long run of branches the processor cannot predict. IPv6 tables sit in a small
/// part of their space (2000::/3 and below), so their directory is on the 16 bits that follow
/// the bits all the table's flips share: every address between the first and last flip shares
/// them too.
public struct PrefixMatcher: Sendable {
    /// The arrays and the searches over them.
    private let lookup: PrefixLookup
    /// Holds the arrays (on huge pages when large and advised): see LookupRegion.
    private let region: LookupRegion

    /// Below this many flips of a family a plain binary search touches fewer cache lines than a
    /// 256 KiB directory would.
    static let directoryThreshold = 256

    /// `advisor` is asked for huge pages for the lookup arrays when they are large enough to
    /// hold one (LookupRegion).
    public init(_ entries: [TableEntry], advisor: LookupRegion.Advisor? = nil) {
        var ipv4: [Span] = []
        var ipv6: [Span] = []
        for entry in entries {
            let network = entry.network
            if network.isIPv4 {
                let start = UInt128(network.address.ipv4Value)
                let size = UInt128(1) << UInt128(32 - network.prefixLength)
                ipv4.append(Span(start: start, end: start + size - 1, length: network.prefixLength, member: !entry.negated))
            } else {
                let start = UInt128(network.address.high) << 64 | UInt128(network.address.low)
                let hostBits = 128 - network.prefixLength
                let end = hostBits == 128 ? UInt128.max : start | ((UInt128(1) << UInt128(hostBits)) - 1)
                ipv6.append(Span(start: start, end: end, length: network.prefixLength, member: !entry.negated))
            }
        }
        // A flip just past 255.255.255.255 (an entry that reaches it) concerns no address.
        let flips4 = PrefixMatcher.flips(ipv4).filter { $0 <= UInt128(UInt32.max) }.map { UInt32($0) }
        let flips6 = PrefixMatcher.flips(ipv6).map {
            IPAddress(high: UInt64(truncatingIfNeeded: $0 >> 64), low: UInt64(truncatingIfNeeded: $0))
        }
        let shared = flips6.count < 2 ? 64 : (flips6[0].high ^ flips6[flips6.count - 1].high).leadingZeroBitCount
        let directory6 = flips6.count >= PrefixMatcher.directoryThreshold && shared <= 48
            ? PrefixMatcher.directory(flips6.map { Int(($0.high << UInt64(shared)) >> 48) }) : []
        let directory4 = flips4.count >= PrefixMatcher.directoryThreshold
            ? PrefixMatcher.directory(flips4.map { Int($0 >> 16) }) : []
        var lowSet6 = [UInt64](repeating: 0, count: (flips6.count + 63) >> 6)
        for (index, flip) in flips6.enumerated() where flip.low != 0 { lowSet6[index >> 6] |= 1 << UInt64(index & 63) }
        // The directories first: every lookup reads one, so they take the first huge pages.
        // The bitmap last, read only on a tie: the arrays every lookup reads keep their places.
        region = LookupRegion(byteCounts: [directory4.count * 4, directory6.count * 4, flips4.count * 4,
                                           flips6.count * 8, flips6.count * 8, lowSet6.count * 8], advisor: advisor)
        // In the order of the byte counts above.
        let ipv4Directory = region.array(directory4)
        let ipv6Directory = region.array(directory6)
        lookup = PrefixLookup(ipv4Flips: region.array(flips4), ipv4Directory: ipv4Directory,
                              ipv6High: region.array(flips6.map(\.high)), ipv6Low: region.array(flips6.map(\.low)),
                              ipv6LowSet: region.array(lowSet6), ipv6Directory: ipv6Directory, ipv6Shift: shared)
    }

    /// Element `k` is the index of the first key at or above `k` (keys ascending, 0...65535);
    /// element 65536 is their count.
    private static func directory(_ keys: [Int]) -> [Int32] {
        var directory = [Int32](repeating: 0, count: 65537)
        var index = 0
        for key in 0...65536 {
            while index < keys.count, keys[index] < key { index += 1 }
            directory[key] = Int32(index)
        }
        return directory
    }

    /// Whether the most specific entry containing `address` is a plain one (not an exception).
    @inline(__always)
    public func contains(_ address: IPAddress) -> Bool { lookup.contains(address) }

    /// Whether a lookup in this matcher is worth warming ahead (BatchLookahead).
    var isLarge: Bool { lookup.isLarge }

    /// The first step of warming a lookup of `address` ahead of it (PrefixLookup.warmRange).
    func warmRange(_ address: IPAddress) -> UInt64 { lookup.warmRange(address) }

    /// The second step, once the range's directory line has arrived (PrefixLookup.warmSearch).
    func warmSearch(_ range: UInt64) -> UInt64 { lookup.warmSearch(range) }

    /// Bytes the lookup structures take (the entries themselves are the table's).
    public var byteCount: Int { lookup.byteCount }

    /// One entry as a closed range of addresses of its family.
    struct Span {
        let start: UInt128
        let end: UInt128
        let length: Int
        let member: Bool
    }

    /// The addresses where membership flips, ascending. Outer prefixes sort before the prefixes
    /// nested in them, so a stack of the prefixes around the current address gives, at each
    /// point, the innermost one, which decides.
    static func flips(_ unsorted: [Span]) -> [UInt128] {
        let spans = unsorted.sorted { a, b in
            if a.start != b.start { return a.start < b.start }
            if a.length != b.length { return a.length < b.length }
            // The same prefix twice, plain and excepted: the exception sorts last and wins.
            return a.member && !b.member
        }
        var flips: [UInt128] = []
        var inside = false
        var cursor: UInt128 = 0
        var exhausted = false
        // Every address from `cursor` through `end` has membership `member`.
        func run(through end: UInt128, _ member: Bool) {
            if member != inside {
                flips.append(cursor)
                inside = member
            }
            if end == UInt128.max { exhausted = true } else { cursor = end + 1 }
        }
        var stack: [Span] = []
        for span in spans {
            while let top = stack.last, top.end < span.start {
                if !exhausted, cursor <= top.end { run(through: top.end, top.member) }
                stack.removeLast()
            }
            if span.start > cursor { run(through: span.start - 1, stack.last?.member ?? false) }
            stack.append(span)
        }
        while let top = stack.popLast() {
            if !exhausted, cursor <= top.end { run(through: top.end, top.member) }
        }
        // Past the last entry nothing is in the table.
        if inside, !exhausted { flips.append(cursor) }
        return flips
    }
}
