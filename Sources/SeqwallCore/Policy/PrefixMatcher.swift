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
/// is a few steps rather than a long run of branches the processor cannot predict. The IPv4
/// directory is 16 bits wide, wider with many flips (`directoryBits`), so that a slot's flips
/// nearly always fit the one cache line the batch warm-up brings in after the directory's
/// (BENCHMARKS.md, Address tables).
///
/// IPv6 tables sit in a small part of their space (2000::/3 and below), so their slots are on
/// the bits that follow the bits all the table's flips share: every address between the first
/// and last flip shares them too. An IPv6 slot is a 64-byte bucket, one cache line: its first
/// flip's index, its flip count and up to seven of its flips' high words, so that a lookup
/// reads that one line instead of a directory line and then a line of flips (`ipv6Buckets`;
/// BENCHMARKS.md, "IPv6 buckets: a slot in one cache line").
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
    /// With many IPv6 flips, one bucket of eight words (a 64-byte line: the region starts
    /// every array on one) for each value of the `64 - ipv6SlotShift` bits of the high word
    /// after its first `ipv6Shift` bits; empty otherwise. Word 0 is the header (`bucketHeader`),
    /// words 1 to 7 the high words of the slot's flips, ascending, when it has at most seven,
    /// the rest `UInt64.max`; a slot with more keeps only its range in the header, searched in
    /// `ipv6High` (the overflow path).
    private let ipv6Buckets: LookupArray<UInt64>
    private let ipv6Shift: Int
    private let ipv6SlotShift: Int
    /// Holds the arrays (on huge pages when large and provided for): see LookupRegion.
    private let region: LookupRegion

    /// Below this many flips of a family a plain binary search touches fewer cache lines than a
    /// directory would.
    static let directoryThreshold = 256

    /// High words a bucket holds inline, after its header.
    static let bucketKeys = 7

    /// A `locate` result naming an IPv6 bucket (its slot in the bits below) instead of a range
    /// of flips: a range's low index, in the top half, stays below 2^31.
    static let bucketMark: UInt64 = 1 << 63

    /// `regionProvider` provides the lookup arrays' memory when they are large enough to hold a
    /// huge page (LookupRegion).
    public init(_ entries: [TableEntry], regionProvider: RegionProvider? = nil) {
        self.init(entries, regionProvider: regionProvider, directoryBits: nil)
    }

    /// `directoryBits`: the width of the IPv4 directory and the IPv6 buckets (those at most
    /// `maxBucketBits`) instead of `directoryBits(flips:)`'s and `bucketBits(flips:)`'s, so that
    /// the tests can reach wide directories with small tables.
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
        // The IPv6 key stays within the high word: at least 12 bits, fewer than asked when the
        // flips share more than 64 - bits (no buckets when they share more than 52).
        let bits6 = min(directoryBits ?? PrefixMatcher.bucketBits(flips: flips6.count), PrefixMatcher.maxBucketBits,
                        max(12, 64 - shared))
        let bits4 = directoryBits ?? PrefixMatcher.directoryBits(flips: flips4.count)
        ipv6SlotShift = 64 - bits6
        ipv4SlotShift = 32 - bits4
        let buckets6 = flips6.count >= PrefixMatcher.directoryThreshold && shared <= 64 - bits6
            ? PrefixMatcher.buckets(flips6, keys: PrefixMatcher.directory(
                flips6.map { Int(($0.high << UInt64(shared)) >> UInt64(64 - bits6)) }, bits: bits6)) : []
        let directory4 = flips4.count >= PrefixMatcher.directoryThreshold
            ? PrefixMatcher.directory(flips4.map { Int($0 >> UInt32(32 - bits4)) }, bits: bits4) : []
        var lowSet6 = [UInt64](repeating: 0, count: (flips6.count + 63) >> 6)
        for (index, flip) in flips6.enumerated() where flip.low != 0 { lowSet6[index >> 6] |= 1 << UInt64(index & 63) }
        // The directory and the buckets first: every lookup reads one, so they take the first
        // huge pages. The bitmap last, read only on a tie: the arrays every lookup reads keep
        // their places.
        region = LookupRegion(byteCounts: [directory4.count * 4, buckets6.count * 8, flips4.count * 4,
                                           flips6.count * 8, flips6.count * 8, lowSet6.count * 8], provider: regionProvider)
        ipv4Directory = region.array(directory4)
        ipv6Buckets = region.array(buckets6)
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

    /// The IPv6 bucket width for `flips` flips: the fewest bits from 12 (256 KiB of buckets)
    /// that leave at most three flips a slot on average, up to `maxBucketBits` (64 MiB). Slots
    /// fill unevenly: at three on average a few in a hundred have more than `bucketKeys`
    /// and take the overflow path (BENCHMARKS.md, "IPv6 buckets").
    static func bucketBits(flips: Int) -> Int {
        var bits = 12
        while bits < maxBucketBits, flips > 3 << bits { bits += 1 }
        return bits
    }

    static let maxBucketBits = 20

    /// Bucket header fields. Bits 0 to 31: the index of the slot's first flip. An inline bucket
    /// (at most `bucketKeys` flips): bits 32 to 34 the flip count, bit `40 + i` set when inline
    /// flip `i` has a low word other than zero (as `ipv6LowSet`). An overflow bucket: bit 63
    /// set, bits 32 to 62 the count.
    static func bucketHeader(first: Int, count: Int, lowSet: UInt64) -> UInt64 {
        count > bucketKeys ? 1 << 63 | UInt64(count) << 32 | UInt64(first)
            : lowSet << 40 | UInt64(count) << 32 | UInt64(first)
    }

    /// The buckets (`ipv6Buckets`) of `flips`, from their slots' `directory`.
    private static func buckets(_ flips: [IPAddress], keys directory: [Int32]) -> [UInt64] {
        let slots = directory.count - 1
        var buckets = [UInt64](repeating: .max, count: slots * 8)
        for slot in 0..<slots {
            let first = Int(directory[slot]), count = Int(directory[slot + 1]) - first
            var lowSet: UInt64 = 0
            if count <= bucketKeys {
                for key in 0..<count {
                    buckets[slot * 8 + 1 + key] = flips[first + key].high
                    if flips[first + key].low != 0 { lowSet |= 1 << UInt64(key) }
                }
            }
            buckets[slot * 8] = bucketHeader(first: first, count: count, lowSet: lowSet)
        }
        return buckets
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
        answer(address, found: search(address, inRange: locate(address)))
    }

    /// Marks `search`'s result as a tie still to be settled by low words (`settleTie`): the
    /// first tied flip's index in bits 0 to 30, and in bits 31 to 61 the index past the last
    /// tied flip when the search knows it (a bucket's), else 0.
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

    /// `search` in IPv6 bucket `slot`: a count of the inline high words below the address's,
    /// without branches (seven compares of one line, against a binary search's three or so
    /// branches the processor cannot predict), or the overflow path over the slot's range of
    /// `ipv6High`. The answer's parity is the slot's first index plus that count.
    @inline(__always)
    private func searchBucket(_ address: IPAddress, slot: Int) -> UInt64 {
        let base = slot &<< 3
        let header = ipv6Buckets[base]
        let first = Int(truncatingIfNeeded: header & 0xFFFF_FFFF)
        if header &>> 63 != 0 { return searchOverflow(address, low: first, header: header) }
        let word = address.high
        var below = 0, atOrBelow = 0
        for key in 1...PrefixMatcher.bucketKeys {
            let high = ipv6Buckets[base &+ key]
            below &+= high < word ? 1 : 0
            atOrBelow &+= high <= word ? 1 : 0
        }
        // Unused keys are UInt64.max: never below a word, at or below only the all-ones one.
        atOrBelow = min(atOrBelow, Int(truncatingIfNeeded: (header &>> 32) & 7))
        guard atOrBelow > below else { return UInt64(truncatingIfNeeded: (first &+ below) & 1) }
        // Tied flips `below..<atOrBelow`: as in `search`, a first tie with a zero low word is at
        // or below the address, and the header's bits say which without the low word.
        var tie = below
        if header &>> UInt64(truncatingIfNeeded: 40 &+ tie) & 1 == 0 {
            tie &+= 1
            if tie == atOrBelow { return UInt64(truncatingIfNeeded: (first &+ tie) & 1) }
        }
        ipv6Low.prefetch(first &+ tie)
        return PrefixMatcher.tiePending | UInt64(truncatingIfNeeded: first &+ atOrBelow) << 31
            | UInt64(truncatingIfNeeded: first &+ tie)
    }

    /// The overflow path of `searchBucket`: the slot's range of `ipv6High`. Out of line: few
    /// lookups take it, and the inlined search's copy would grow every caller.
    @inline(never)
    private func searchOverflow(_ address: IPAddress, low: Int, header: UInt64) -> UInt64 {
        search(address, low: low, high: low &+ Int(truncatingIfNeeded: (header &>> 32) & 0x7FFF_FFFF))
    }

    /// The answer of a `search` that ended on a tie: the tied flips at or below the address
    /// (ascending low words), counted on from the first. A bucket's search says where the ties
    /// end (the flip after them is above the address's high word), so that settling reads
    /// only low words; otherwise the high words say. Out of line: ties are rare.
    @inline(never)
    private func settleTie(_ address: IPAddress, _ found: UInt64) -> Bool {
        var index = Int(truncatingIfNeeded: found & 0x7FFF_FFFF)
        let end = Int(truncatingIfNeeded: (found &>> 31) & 0x7FFF_FFFF)
        if end != 0 {
            while index < end, ipv6Low[index] <= address.low { index += 1 }
        } else {
            while index < ipv6High.count, ipv6High[index] == address.high, ipv6Low[index] <= address.low { index += 1 }
        }
        return index & 1 == 1
    }

    /// What a lookup of `address` has to search, for `search(_:inRange:)`: the flips of its
    /// family under its directory slot, or all, packed as `low << 32 | high` (indexes stay below
    /// 2^31: the directory holds them as Int32); or its IPv6 bucket (`bucketMark`). Outside
    /// the IPv6 flips' span the answer is known and the range empty, at the index that gives it
    /// (0 below the first flip, the count past the last).
    @inline(__always)
    private func locate(_ address: IPAddress) -> UInt64 {
        if address.isIPv4 {
            guard !ipv4Directory.isEmpty else { return PrefixMatcher.range(0, ipv4Flips.count) }
            let slot = Int(address.ipv4Value &>> UInt32(truncatingIfNeeded: ipv4SlotShift))
            return PrefixMatcher.range(Int(ipv4Directory[slot]), Int(ipv4Directory[slot + 1]))
        }
        let count6 = ipv6High.count
        guard !ipv6Buckets.isEmpty else { return PrefixMatcher.range(0, count6) }
        if !ipv6Flip(0, isAtOrBelow: address) { return 0 }
        if ipv6Flip(count6 - 1, isAtOrBelow: address) { return PrefixMatcher.range(count6, count6) }
        return PrefixMatcher.bucketMark | UInt64(truncatingIfNeeded: ipv6Slot(address))
    }

    @inline(__always)
    private static func range(_ low: Int, _ high: Int) -> UInt64 {
        UInt64(truncatingIfNeeded: low) << 32 | UInt64(truncatingIfNeeded: high)
    }

    /// The IPv6 bucket of `address`: the bits after those the flips share.
    @inline(__always)
    private func ipv6Slot(_ address: IPAddress) -> Int {
        Int((address.high &<< UInt64(truncatingIfNeeded: ipv6Shift)) &>> UInt64(truncatingIfNeeded: ipv6SlotShift))
    }

    /// Whether a lookup in this matcher is worth warming ahead (BatchLookahead): with a
    /// directory or buckets, a lookup reads lines of arrays too large to stay cached.
    var isLarge: Bool { !ipv4Directory.isEmpty || !ipv6Buckets.isEmpty }

    /// The first step of warming a lookup of `address` ahead of it (BatchLookahead): its
    /// directory entries or its bucket prefetched.
    func prefetchDirectory(_ address: IPAddress) {
        if address.isIPv4 {
            guard !ipv4Directory.isEmpty else { return }
            let slot = Int(address.ipv4Value &>> UInt32(truncatingIfNeeded: ipv4SlotShift))
            // The slot's end, on the next line for one slot in sixteen.
            ipv4Directory.prefetch(slot)
            ipv4Directory.prefetch(slot + 1)
            return
        }
        guard !ipv6Buckets.isEmpty else { return }
        ipv6Buckets.prefetch(ipv6Slot(address) &<< 3)
    }

    /// The second step, once the directory line has arrived (or is on its way): what the
    /// search will read (`locate`), a range's lines prefetched: every line of a range of at
    /// most four, else those of the search's first two steps. A bucket's line is already on its
    /// way; an overflow bucket's flips are not warmed (reading its header here would wait for
    /// the line, and few lookups land in one: BENCHMARKS.md, "IPv6 buckets").
    func warmRange(_ address: IPAddress) -> UInt64 {
        let range = locate(address)
        let low = Int(truncatingIfNeeded: range >> 32), high = Int(truncatingIfNeeded: range & 0xFFFF_FFFF)
        guard range & PrefixMatcher.bucketMark == 0, low < high else { return range }
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
    @inline(__always)
    func search(_ address: IPAddress, inRange range: UInt64) -> UInt64 {
        if range & PrefixMatcher.bucketMark != 0 {
            return searchBucket(address, slot: Int(truncatingIfNeeded: range & 0xFFFF_FFFF))
        }
        return search(address, low: Int(truncatingIfNeeded: range >> 32), high: Int(truncatingIfNeeded: range & 0xFFFF_FFFF))
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

    /// How many flips IPv6 bucket `slot` covers (for the tests).
    func bucketFlips(slot: Int) -> Int {
        let header = ipv6Buckets[slot << 3]
        return Int(header >> 32 & (header >> 63 != 0 ? 0x7FFF_FFFF : 7))
    }

    /// Whether IPv6 bucket `slot` holds its flips' high words (for the tests).
    func bucketIsInline(slot: Int) -> Bool { ipv6Buckets[slot << 3] >> 63 == 0 }

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
            + ipv6Buckets.count * 8
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
