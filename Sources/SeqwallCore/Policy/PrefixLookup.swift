import CPrefixSearch

/// The read-only arrays of a PrefixMatcher and the searches over them (PrefixMatcher says how
/// they answer). Apart from the matcher, which owns their memory (LookupRegion), because it
/// holds no reference: a lookup is one call, kept out of the rule matching around it, and a
/// call on a value with a reference in it costs a retain and a release of that reference.
struct PrefixLookup: @unchecked Sendable {
    /// Addresses where IPv4 membership flips, ascending.
    let ipv4Flips: LookupArray<UInt32>
    /// With many IPv4 flips: element `h` is the index of the first flip at or above `h << 16`,
    /// and element 65536 is the count. Empty otherwise.
    let ipv4Directory: LookupArray<Int32>
    /// The high words of the addresses where IPv6 membership flips, ascending: what a search
    /// reads, eight to a cache line. Prefixes of /64 and shorter start and end on a high word of
    /// their own, so two flips seldom share one.
    let ipv6High: LookupArray<UInt64>
    /// The low words of the same flips, read only where a flip's high word equals the
    /// address's.
    let ipv6Low: LookupArray<UInt64>
    /// Bit `i` (of word `i >> 6`) set when IPv6 flip `i`'s low word is not zero: 1/128 of the
    /// flips' bytes, so it stays cached where the low words do not.
    let ipv6LowSet: LookupArray<UInt64>
    /// As `ipv4Directory`, on the 16 bits of the high word after its first `ipv6Shift` bits.
    let ipv6Directory: LookupArray<Int32>
    let ipv6Shift: Int

    /// Whether the most specific entry containing `address` is a plain one (not an exception).
    // Never inlined: one call holds the whole lookup, so that the rule matching around it stays
    // small enough to be inlined into the rule index's search (RuleIndex.first).
    @inline(never)
    func contains(_ address: IPAddress) -> Bool {
        let (low, high) = searchRange(address)
        // The first flip above the address; its index counts the flips at or below.
        if address.isIPv4 {
            let value = address.ipv4Value
            var low = low, high = high
            while low < high {
                let middle = (low + high) >> 1
                if ipv4Flips[middle] <= value { low = middle + 1 } else { high = middle }
            }
            return low & 1 == 1
        }
        // By high words first, the steps as conditional moves (CPrefixSearch): every flip with a
        // lower high word is below the address. Of those with the same high word (sorted by
        // their low words) the last ones may be above it: an address inside a /65 to /128 entry,
        // before the flip where that entry ends within its /64, or just below where one starts.
        // A low word of zero (the bitmap) is never above.
        var index = seqwall_first_above_u64(ipv6High.base, low, high, address.high)
        while index > low, ipv6High[index - 1] == address.high, ipv6LowIsSet(index - 1),
              ipv6Low[index - 1] > address.low {
            index -= 1
        }
        return index & 1 == 1
    }

    /// The flips of `address`'s family that a lookup has to search: those under its directory
    /// slot, or all. Outside the IPv6 flips' span the answer is known and the range empty, at
    /// the index that gives it (0 below the first flip, the count past the last).
    // Always inlined: the first half of every lookup and of its warm-up.
    @inline(__always)
    private func searchRange(_ address: IPAddress) -> (low: Int, high: Int) {
        if address.isIPv4 {
            guard !ipv4Directory.isEmpty else { return (0, ipv4Flips.count) }
            let slot = Int(address.ipv4Value >> 16)
            return (Int(ipv4Directory[slot]), Int(ipv4Directory[slot + 1]))
        }
        let count6 = ipv6High.count
        guard !ipv6Directory.isEmpty else { return (0, count6) }
        if !ipv6Flip(0, isAtOrBelow: address) { return (0, 0) }
        if ipv6Flip(count6 - 1, isAtOrBelow: address) { return (count6, count6) }
        let slot = Int((address.high << UInt64(ipv6Shift)) >> 48)
        return (Int(ipv6Directory[slot]), Int(ipv6Directory[slot + 1]))
    }

    /// Whether a lookup in this matcher is worth warming ahead (BatchLookahead): with a
    /// directory, a lookup reads lines of arrays too large to stay cached.
    var isLarge: Bool { !ipv4Directory.isEmpty || !ipv6Directory.isEmpty }

    /// The first step of warming a lookup of `address` ahead of it (BatchLookahead): the
    /// directory read, giving the range the search will read, packed as `low << 32 | high` with
    /// the top bit set for IPv4 (indexes stay below 2^31: the directory holds them as Int32).
    func warmRange(_ address: IPAddress) -> UInt64 {
        let (low, high) = searchRange(address)
        let family: UInt64 = address.isIPv4 ? 1 << 63 : 0
        return family | UInt64(truncatingIfNeeded: low) << 32 | UInt64(truncatingIfNeeded: high)
    }

    /// The second step, once the range's directory line has arrived: reads the cache lines of
    /// the range that the search will read (every line of a range of at most four, else those
    /// of its first two steps), and returns what it read so the reads stay in the code.
    func warmSearch(_ range: UInt64) -> UInt64 {
        let ipv4 = range >> 63 == 1
        let low = Int(truncatingIfNeeded: (range >> 32) & 0x7FFF_FFFF), high = Int(truncatingIfNeeded: range & 0xFFFF_FFFF)
        guard low < high else { return 0 }
        // Flips per 64-byte line.
        let perLine = ipv4 ? 16 : 8
        if high - low <= 4 * perLine {
            var loaded = flipWord(high - 1, ipv4)
            var index = low
            while index < high {
                loaded &+= flipWord(index, ipv4)
                index += perLine
            }
            return loaded
        }
        let middle = (low + high) >> 1
        return flipWord((low + middle) >> 1, ipv4) &+ flipWord(middle, ipv4) &+ flipWord((middle + high) >> 1, ipv4)
    }

    /// A word of flip `index` of one family, for the warm-up's reads.
    private func flipWord(_ index: Int, _ ipv4: Bool) -> UInt64 {
        ipv4 ? UInt64(ipv4Flips[index]) : ipv6High[index]
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

    /// Bytes the arrays take.
    var byteCount: Int {
        ipv4Flips.count * 4 + ipv4Directory.count * 4 + ipv6High.count * 16 + ipv6LowSet.count * 8
            + ipv6Directory.count * 4
    }
}
