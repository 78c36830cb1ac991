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
/// per prefix length as in ipset's hash:net. A directory on the top bits of an IPv4 address
/// (as DIR-24-8 does with 24) narrows the search to the flips under that slot, so that a lookup
/// is a few steps rather than a long run of branches the processor cannot predict. IPv6 tables
/// sit in a small part of their space (2000::/3 and below), so their directory is on the bits
/// that follow the bits all the table's flips share: every address between the first and last
/// flip shares them too. Each directory is 16 bits wide, wider for a family with many flips
/// (`directoryBits`), so that a slot's flips nearly always fit the one cache line the batch
/// warm-up brings in (BENCHMARKS.md, Address tables).
public struct PrefixMatcher: Sendable {
    /// Addresses where IPv4 membership flips, ascending.
    private let ipv4Flips: LookupArray<UInt32>
    /// With many IPv4 flips: element `k` is the index of the first flip whose top
    /// `32 - ipv4SlotShift` bits are `k` or more, and the last element is the count. Empty
    /// otherwise.
    private let ipv4Directory: LookupArray<Int32>
    /// How far an IPv4 address is shifted right to give its directory slot.
    private let ipv4SlotShift: Int
    /// The high words of the addresses where IPv6 membership flips, ascending: what a search
    /// reads, eight to a cache line. Prefixes of /64 and shorter start and end on a high word of
    /// their own, so two flips seldom share one.
    private let ipv6High: LookupArray<UInt64>
    /// The low words of the same flips, read only where a flip's high word equals the
    /// address's.
    private let ipv6Low: LookupArray<UInt64>
    /// Bit `i` (of word `i >> 6`) set when IPv6 flip `i`'s low word is not zero: 1/128 of the
    /// flips' bytes, so it stays cached where the low words do not.
    private let ipv6LowSet: LookupArray<UInt64>
    /// As `ipv4Directory`, on the `64 - ipv6SlotShift` bits of the high word after its first
    /// `ipv6Shift` bits.
    private let ipv6Directory: LookupArray<Int32>
    private let ipv6Shift: Int
    private let ipv6SlotShift: Int
    /// Holds the four arrays (on huge pages when large and provided for): see LookupRegion.
    private let region: LookupRegion

    /// Below this many flips of a family a plain binary search touches fewer cache lines than a
    /// 256 KiB directory would.
    static let directoryThreshold = 256

    /// `regionProvider` provides the lookup arrays' memory when they are large enough to hold a
    /// huge page (LookupRegion).
    public init(_ entries: [TableEntry], regionProvider: RegionProvider? = nil) {
        self.init(entries, regionProvider: regionProvider, directoryBits: nil)
    }

    /// `directoryBits`: the width of both directories instead of `directoryBits(flips:)`'s, so
    /// that the tests can reach wide directories with small tables.
    init(_ entries: [TableEntry], regionProvider: RegionProvider?, directoryBits: Int?) {
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
        ipv6Shift = shared
        // The IPv6 key stays within the high word: at least 16 bits, fewer than asked when the
        // flips share more than 64 - bits.
        let bits6 = min(directoryBits ?? PrefixMatcher.directoryBits(flips: flips6.count), max(16, 64 - shared))
        let bits4 = directoryBits ?? PrefixMatcher.directoryBits(flips: flips4.count)
        ipv6SlotShift = 64 - bits6
        ipv4SlotShift = 32 - bits4
        let directory6 = flips6.count >= PrefixMatcher.directoryThreshold && shared <= 64 - bits6
            ? PrefixMatcher.directory(flips6.map { Int(($0.high << UInt64(shared)) >> UInt64(64 - bits6)) }, bits: bits6) : []
        let directory4 = flips4.count >= PrefixMatcher.directoryThreshold
            ? PrefixMatcher.directory(flips4.map { Int($0 >> UInt32(32 - bits4)) }, bits: bits4) : []
        var lowSet6 = [UInt64](repeating: 0, count: (flips6.count + 63) >> 6)
        for (index, flip) in flips6.enumerated() where flip.low != 0 { lowSet6[index >> 6] |= 1 << UInt64(index & 63) }
        // The directories first: every lookup reads one, so they take the first huge pages.
        // The bitmap last, read only on a tie: the arrays every lookup reads keep their places.
        region = LookupRegion(byteCounts: [directory4.count * 4, directory6.count * 4, flips4.count * 4,
                                           flips6.count * 8, flips6.count * 8, lowSet6.count * 8], provider: regionProvider)
        ipv4Directory = region.array(directory4)
        ipv6Directory = region.array(directory6)
        ipv4Flips = region.array(flips4)
        ipv6High = region.array(flips6.map(\.high))
        ipv6Low = region.array(flips6.map(\.low))
        ipv6LowSet = region.array(lowSet6)
    }

    /// The directory width for a family of `flips` flips: 16 bits (256 KiB), or the fewest
    /// that leave at most two flips a slot on average, up to 20 (4 MiB). A slot's flips then
    /// nearly always lie in one cache line (16 IPv4 flips or 8 IPv6 high words to a line), the
    /// one line the warm-up brings in after the directory's, where a 16-bit directory over a
    /// large block list leaves ranges of several lines in its dense slots (BENCHMARKS.md).
    static func directoryBits(flips: Int) -> Int {
        var bits = 16
        while bits < 20, flips > 2 << bits { bits += 1 }
        return bits
    }

    /// Element `k` is the index of the first key at or above `k` (keys ascending, below
    /// `1 << bits`); element `1 << bits` is their count.
    private static func directory(_ keys: [Int], bits: Int) -> [Int32] {
        let slots = 1 << bits
        var directory = [Int32](repeating: 0, count: slots + 1)
        var index = 0
        for key in 0...slots {
            while index < keys.count, keys[index] < key { index += 1 }
            directory[key] = Int32(index)
        }
        return directory
    }

    /// Whether the most specific entry containing `address` is a plain one (not an exception).
    public func contains(_ address: IPAddress) -> Bool {
        let (low, high) = searchRange(address)
        return contains(address, low: low, high: high)
    }

    /// `contains`, searching only flips `low..<high`, the range `searchRange` gives.
    @inline(__always)
    private func contains(_ address: IPAddress, low: Int, high: Int) -> Bool {
        answer(address, found: search(address, low: low, high: high))
    }

    /// Marks `search`'s result as a tie still to be settled by low words (`settleTie`), the
    /// first tied flip's index in the bits below.
    static let tiePending: UInt64 = 1 << 62

    /// The search over flips `low..<high` as far as it goes without a low word: bit 0 the
    /// answer, or `tiePending` and the index of the first flip that shares `address`'s high word
    /// and has a low word, that word's line prefetched (a flip with a low word is where a /65 to
    /// /128 entry starts or ends). Flips sharing a high word share its directory slot, so the
    /// ties lie in the range.
    @inline(__always)
    private func search(_ address: IPAddress, low: Int, high: Int) -> UInt64 {
        var low = low, high = high
        if address.isIPv4 {
            // The first flip above the address; its index counts the flips at or below.
            let value = address.ipv4Value
            while low < high {
                let middle = (low + high) >> 1
                if ipv4Flips[middle] <= value { low = middle + 1 } else { high = middle }
            }
            return UInt64(truncatingIfNeeded: low & 1)
        }
        // The first flip whose high word is the address's or above: every flip before it is
        // below the address.
        let end = high
        let word = address.high
        while low < high {
            let middle = (low + high) >> 1
            if ipv6High[middle] < word { low = middle + 1 } else { high = middle }
        }
        guard low < end, ipv6High[low] == word else { return UInt64(truncatingIfNeeded: low & 1) }
        // Flips are distinct, so at most the first tie has a zero low word: it starts a /64 or
        // shorter entry and is at or below the address. The bitmap (small enough to stay
        // cached) says so without the low word's line.
        if !ipv6LowIsSet(low) {
            low += 1
            guard low < end, ipv6High[low] == word else { return UInt64(truncatingIfNeeded: low & 1) }
        }
        ipv6Low.prefetch(low)
        return PrefixMatcher.tiePending | UInt64(truncatingIfNeeded: low)
    }

    /// The answer of a `search` that ended on a tie: the tied flips at or below the address
    /// (ascending low words), counted on from the first. Out of line: ties are rare.
    @inline(never)
    private func settleTie(_ address: IPAddress, _ found: UInt64) -> Bool {
        var index = Int(truncatingIfNeeded: found & (PrefixMatcher.tiePending - 1))
        while index < ipv6High.count, ipv6High[index] == address.high, ipv6Low[index] <= address.low { index += 1 }
        return index & 1 == 1
    }

    /// The flips of `address`'s family that a lookup has to search: those under its directory
    /// slot, or all. Outside the IPv6 flips' span the answer is known and the range empty, at
    /// the index that gives it (0 below the first flip, the count past the last).
    private func searchRange(_ address: IPAddress) -> (low: Int, high: Int) {
        if address.isIPv4 {
            guard !ipv4Directory.isEmpty else { return (0, ipv4Flips.count) }
            let slot = Int(address.ipv4Value &>> UInt32(truncatingIfNeeded: ipv4SlotShift))
            return (Int(ipv4Directory[slot]), Int(ipv4Directory[slot + 1]))
        }
        let count6 = ipv6High.count
        guard !ipv6Directory.isEmpty else { return (0, count6) }
        if !ipv6Flip(0, isAtOrBelow: address) { return (0, 0) }
        if ipv6Flip(count6 - 1, isAtOrBelow: address) { return (count6, count6) }
        let slot = ipv6Slot(address)
        return (Int(ipv6Directory[slot]), Int(ipv6Directory[slot + 1]))
    }

    /// The IPv6 directory slot of `address`: the bits after those the flips share.
    @inline(__always)
    private func ipv6Slot(_ address: IPAddress) -> Int {
        Int((address.high &<< UInt64(truncatingIfNeeded: ipv6Shift)) &>> UInt64(truncatingIfNeeded: ipv6SlotShift))
    }

    /// Whether a lookup in this matcher is worth warming ahead (BatchLookahead): with a
    /// directory, a lookup reads lines of arrays too large to stay cached.
    var isLarge: Bool { !ipv4Directory.isEmpty || !ipv6Directory.isEmpty }

    /// The first step of warming a lookup of `address` ahead of it (BatchLookahead): its
    /// directory entries prefetched.
    func prefetchDirectory(_ address: IPAddress) {
        if address.isIPv4 {
            guard !ipv4Directory.isEmpty else { return }
            let slot = Int(address.ipv4Value &>> UInt32(truncatingIfNeeded: ipv4SlotShift))
            // The slot's end, on the next line for one slot in sixteen.
            ipv4Directory.prefetch(slot)
            ipv4Directory.prefetch(slot + 1)
            return
        }
        guard !ipv6Directory.isEmpty else { return }
        let slot = ipv6Slot(address)
        ipv6Directory.prefetch(slot)
        ipv6Directory.prefetch(slot + 1)
    }

    /// The second step, once the directory line has arrived (or is on its way): the range the
    /// search will read, packed as `low << 32 | high` (indexes stay below 2^31: the directory
    /// holds them as Int32), its lines prefetched: every line of a range of at most four, else
    /// those of the search's first two steps.
    func warmRange(_ address: IPAddress) -> UInt64 {
        let (low, high) = searchRange(address)
        let range = UInt64(truncatingIfNeeded: low) << 32 | UInt64(truncatingIfNeeded: high)
        guard low < high else { return range }
        let ipv4 = address.isIPv4
        // Flips per 64-byte line.
        let perLine = ipv4 ? 16 : 8
        if high - low <= 4 * perLine {
            prefetchFlip(high - 1, ipv4)
            var index = low
            while index < high {
                prefetchFlip(index, ipv4)
                index += perLine
            }
        } else {
            let middle = (low + high) >> 1
            prefetchFlip((low + middle) >> 1, ipv4)
            prefetchFlip(middle, ipv4)
            prefetchFlip((middle + high) >> 1, ipv4)
        }
        return range
    }

    /// The last step: `search`, on the range `warmRange(address)` gave (its lines warmed), for
    /// the decision to take instead of searching again (TableAnswers): the answer in bit 0, or
    /// a tie pending (`tiePending`), its low word's line on the way, for `answer` to settle
    /// after the batch's other searches.
    func search(_ address: IPAddress, inRange range: UInt64) -> UInt64 {
        search(address, low: Int(truncatingIfNeeded: range >> 32), high: Int(truncatingIfNeeded: range & 0xFFFF_FFFF))
    }

    /// `contains(address)` from a `search(_:inRange:)` result.
    func answer(_ address: IPAddress, found: UInt64) -> Bool {
        found & PrefixMatcher.tiePending != 0 ? settleTie(address, found) : found & 1 == 1
    }

    /// Flip `index` of one family prefetched, for the warm-up.
    @inline(__always)
    private func prefetchFlip(_ index: Int, _ ipv4: Bool) {
        if ipv4 { ipv4Flips.prefetch(index) } else { ipv6High.prefetch(index) }
    }

    /// Whether IPv6 flip `index` has a low word other than zero (`ipv6LowSet`).
    @inline(__always)
    private func ipv6LowIsSet(_ index: Int) -> Bool {
        ipv6LowSet[index &>> 6] &>> UInt64(index & 63) & 1 == 1
    }

    /// Whether IPv6 flip `index` is at or below `address`: the low word is read only on a tie
    /// with a flip whose low word is not zero.
    private func ipv6Flip(_ index: Int, isAtOrBelow address: IPAddress) -> Bool {
        let high = ipv6High[index]
        // Equal high words come from an address inside a /64 or longer entry, at the flip where
        // that entry starts. A /64 or shorter entry starts on a zero low word, at or below every
        // address with the same high word: the bitmap, small enough to stay cached, says so
        // without reading the low word's line, which only /65 to /128 entries need.
        if high == address.high { return !ipv6LowIsSet(index) || ipv6Low[index] <= address.low }
        return high < address.high
    }

    /// Bytes the lookup structures take (the entries themselves are the table's).
    public var byteCount: Int {
        ipv4Flips.count * 4 + ipv4Directory.count * 4 + ipv6High.count * 16 + ipv6LowSet.count * 8
            + ipv6Directory.count * 4
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
