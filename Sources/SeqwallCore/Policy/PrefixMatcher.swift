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
/// (as DIR-24-8 does with 24) narrows the search to the flips under that /16.
public struct PrefixMatcher: Sendable {
    /// Addresses where IPv4 membership flips, ascending.
    private let ipv4Flips: [UInt32]
    /// With many IPv4 flips: element `h` is the index of the first flip at or above `h << 16`,
    /// and element 65536 is the count. Empty otherwise.
    private let ipv4Directory: [Int32]
    /// Addresses where IPv6 membership flips, ascending.
    private let ipv6Flips: [UInt128]

    /// Below this many IPv4 flips a plain binary search touches fewer cache lines than the
    /// 256 KiB directory would.
    static let directoryThreshold = 256

    public init(_ entries: [TableEntry]) {
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
        ipv4Flips = flips4
        ipv6Flips = PrefixMatcher.flips(ipv6)
        if flips4.count >= PrefixMatcher.directoryThreshold {
            var directory = [Int32](repeating: 0, count: 65537)
            var index = 0
            for high in 0...65536 {
                while index < flips4.count, Int(flips4[index] >> 16) < high { index += 1 }
                directory[high] = Int32(index)
            }
            ipv4Directory = directory
        } else {
            ipv4Directory = []
        }
    }

    /// Whether the most specific entry containing `address` is a plain one (not an exception).
    public func contains(_ address: IPAddress) -> Bool {
        if address.isIPv4 {
            let value = address.ipv4Value
            var low = 0
            var high = ipv4Flips.count
            if !ipv4Directory.isEmpty {
                let slot = Int(value >> 16)
                low = Int(ipv4Directory[slot])
                high = Int(ipv4Directory[slot + 1])
            }
            // The first flip above `value`; its index counts the flips at or below.
            while low < high {
                let middle = (low + high) >> 1
                if ipv4Flips[middle] <= value { low = middle + 1 } else { high = middle }
            }
            return low & 1 == 1
        }
        let value = UInt128(address.high) << 64 | UInt128(address.low)
        var low = 0
        var high = ipv6Flips.count
        while low < high {
            let middle = (low + high) >> 1
            if ipv6Flips[middle] <= value { low = middle + 1 } else { high = middle }
        }
        return low & 1 == 1
    }

    /// Bytes the lookup structures take (the entries themselves are the table's).
    public var byteCount: Int {
        ipv4Flips.count * 4 + ipv4Directory.count * 4 + ipv6Flips.count * 16
    }

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
