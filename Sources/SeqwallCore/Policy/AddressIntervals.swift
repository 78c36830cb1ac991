/// Rule positions by address, bucket by bucket (RuleIndex's buckets): the addresses are cut into
/// intervals at every edge of the rules' networks, and each interval lists, ascending, the rules
/// with a network that covers it. A flow's candidates are then the list of the one interval its
/// address lies in, found by a binary search, instead of every rule that names an address.
/// IPv4 addresses are IPv4-mapped (IPAddress), so both families share one ordering: an IPv4
/// network is a contiguous run of mapped addresses. Flat arrays, read without allocating.
///
/// A bucket with many intervals also gets a directory, so that a search reads one or two lines
/// of the 16-byte lowers instead of one for each step of a binary search over all of them: its
/// lowers after :: share their first `keyShift` bits, the 32 bits after those are an address's
/// key (in the same order as the addresses), and the directory gives, for each value of the
/// key's first bits, the first interval whose key starts with it. The search then only looks
/// between two adjacent entries.
struct AddressIntervals: Sendable, Equatable {
    /// Per bucket, the range of `lowers` that is its intervals (its first lower is always ::).
    private var bucketStart: [Int32] = [0]
    /// Per bucket, where its directory starts in `directory` (-1: none), how many leading bits
    /// its lowers after :: share, how far a key is shifted right to index the directory, and
    /// the last address with those leading bits: above it lies only the last interval.
    private var directoryStart: [Int32] = []
    private var keyShift: [Int32] = []
    private var directoryShift: [Int32] = []
    private var keyCeiling: [IPAddress] = []
    /// Interval positions (into `lowers`), 2^bits + 1 of them a bucket.
    private var directory: [Int32] = []
    /// Interval `i` covers `lowers[i]` up to the next lower of its bucket, or to the last address.
    private var lowers: [IPAddress] = []
    /// Interval `i`'s rules, one entry an interval: a rule position (>= 0) for a list of one,
    /// held here so that finding it reads no other line; `AddressIntervals.noRules` for none;
    /// else `-2 - k` for the list at `positions[k]`: its length, then its positions.
    private var entries: [Int32] = []
    private var positions: [Int32] = []

    static let noRules: Int32 = -1

    /// Adds the next bucket, from `rules` (rule positions ascending, each with the networks
    /// that its address list is made of). Returns the rules left out: those that share an
    /// interval with more than `crowd` others (a search would find too many candidates to gain
    /// on the other dimensions), or all of them when the lists would hold more than
    /// `maximumCopies` positions (many narrow networks inside wide ones).
    mutating func appendBucket(_ rules: [(position: Int32, networks: [IPNetwork])], crowd: Int,
                               maximumCopies: Int) -> [Int32] {
        var kept = rules
        var left: [Int32] = []
        var lists: [[Int32]] = []
        var bounds: [IPAddress] = []
        // Once with every rule, then again without the crowded ones (whose leaving only thins
        // the lists): the second pass keeps every list within `crowd`.
        for pass in 0..<2 {
            (bounds, lists) = AddressIntervals.lists(kept)
            let copies = lists.reduce(0) { $0 + $1.count }
            if copies > maximumCopies {
                return rules.map(\.position)
            }
            guard pass == 0 else { break }
            var crowded = Set<Int32>()
            for list in lists where list.count > crowd { crowded.formUnion(list) }
            if crowded.isEmpty { break }
            left = kept.filter { crowded.contains($0.position) }.map(\.position)
            kept = kept.filter { !crowded.contains($0.position) }
        }
        if kept.isEmpty {
            bounds = []
            lists = []
        }
        let start = lowers.count
        for (lower, list) in zip(bounds, lists) {
            lowers.append(lower)
            switch list.count {
            case 0: entries.append(AddressIntervals.noRules)
            case 1: entries.append(list[0])
            default:
                entries.append(-2 - Int32(positions.count))
                positions.append(Int32(list.count))
                positions += list
            }
        }
        bucketStart.append(Int32(lowers.count))
        appendDirectory(start, lowers.count)
        return left
    }

    /// From this many intervals a bucket gets a directory.
    static let directoryThreshold = 64

    /// The directory of the bucket whose intervals are `lowers[start..<end]`.
    private mutating func appendDirectory(_ start: Int, _ end: Int) {
        guard end - start >= AddressIntervals.directoryThreshold else {
            directoryStart.append(-1)
            keyShift.append(0)
            directoryShift.append(0)
            keyCeiling.append(IPAddress(high: 0, low: 0))
            return
        }
        let floor = lowers[start + 1], last = lowers[end - 1]
        let differing = floor.high != last.high ? UInt64(floor.high ^ last.high).leadingZeroBitCount
            : 64 + UInt64(floor.low ^ last.low).leadingZeroBitCount
        let shift = differing
        // Enough bits for about one interval an entry, at most 2^16 entries.
        let bits = min(16, Int.bitWidth - (end - start - 1).leadingZeroBitCount)
        let ceiling = shift == 0 ? IPAddress(high: .max, low: .max)
            : shift < 64 ? IPAddress(high: floor.high | (UInt64.max >> UInt64(shift)), low: .max)
            : IPAddress(high: floor.high, low: floor.low | (shift == 64 ? .max : UInt64.max >> UInt64(shift - 64)))
        directoryStart.append(Int32(directory.count))
        keyShift.append(Int32(shift))
        directoryShift.append(Int32(32 - bits))
        keyCeiling.append(ceiling)
        var interval = start + 1
        for entry in 0...(1 << bits) {
            while interval < end, Int(AddressIntervals.key(lowers[interval], shift) >> UInt32(32 - bits)) < entry {
                interval += 1
            }
            directory.append(Int32(interval))
        }
    }

    /// The 32 bits of `address` after its first `shift`, zeros past the last bit.
    private static func key(_ address: IPAddress, _ shift: Int) -> UInt32 {
        let right = 96 - shift
        if right < 0 { return UInt32(truncatingIfNeeded: address.low << UInt64(-right)) }
        if right >= 64 { return UInt32(truncatingIfNeeded: address.high >> UInt64(right - 64)) }
        if right == 0 { return UInt32(truncatingIfNeeded: address.low) }
        return UInt32(truncatingIfNeeded: address.low >> UInt64(right) | address.high << UInt64(64 - right))
    }

    /// The interval edges of `rules`' networks (the first ::) and each interval's rules.
    private static func lists(_ rules: [(position: Int32, networks: [IPNetwork])]) -> ([IPAddress], [[Int32]]) {
        guard !rules.isEmpty else { return ([], []) }
        var edges: Set<IPAddress> = [IPAddress(high: 0, low: 0)]
        for rule in rules {
            for network in rule.networks {
                let (_, last) = network.addressRange
                edges.insert(network.address)
                if let next = last.successor { edges.insert(next) }
            }
        }
        let lowers = edges.sorted()
        var lists = [[Int32]](repeating: [], count: lowers.count)
        for rule in rules {
            for network in rule.networks {
                let (first, last) = network.addressRange
                var interval = AddressIntervals.interval(containing: first, in: lowers, 0, lowers.count)
                while interval < lowers.count, !(last < lowers[interval]) {
                    if lists[interval].last != rule.position { lists[interval].append(rule.position) }
                    interval += 1
                }
            }
        }
        return (lowers, lists)
    }

    /// The last interval in `lowers[low..<high]` whose lower address is at or below `address`
    /// (the first of them is ::, so there is one).
    private static func interval(containing address: IPAddress, in lowers: [IPAddress], _ low: Int, _ high: Int) -> Int {
        var low = low, high = high
        while low < high {
            let middle = (low + high) >> 1
            if !(address < lowers[middle]) { low = middle + 1 } else { high = middle }
        }
        return low - 1
    }

    /// The rules of `bucket` whose networks may contain `address`, ascending; a spent cursor
    /// when the bucket has none.
    func candidates(bucket: Int, address: IPAddress) -> CandidateCursor {
        let (low, high) = searchRange(bucket: bucket, address: address)
        guard low < high else { return .empty }
        return cursor(entries[AddressIntervals.interval(containing: address, in: lowers, low, high)])
    }

    /// The intervals between which the search for `address` in `bucket` looks, `low..<high`
    /// (empty when the bucket has none): a bucket's directory line is read here.
    @inline(__always)
    private func searchRange(bucket: Int, address: IPAddress) -> (low: Int, high: Int) {
        let start = Int(bucketStart[bucket]), end = Int(bucketStart[bucket + 1])
        guard start < end else { return (0, 0) }
        let directoryStart = Int(directoryStart[bucket])
        if directoryStart < 0 { return (start, end) }
        if address < lowers[start + 1] { return (start, start + 1) }
        if keyCeiling[bucket] < address { return (end - 1, end) }
        // Every interval before the entry's first has a smaller key, so lies below the
        // address; every one from the next entry's first has a larger key.
        let key = AddressIntervals.key(address, Int(keyShift[bucket]))
        let entry = directoryStart + Int(key >> UInt32(directoryShift[bucket]))
        return (Int(directory[entry]) - 1, Int(directory[entry + 1]))
    }

    /// The rules an interval's entry names.
    @inline(__always)
    private func cursor(_ entry: Int32) -> CandidateCursor {
        if entry >= 0 { return .single(entry) }
        if entry == AddressIntervals.noRules { return .empty }
        let list = Int(-2 - entry)
        return .range(positions, list + 1, list + 1 + Int(positions[list]))
    }

    /// Moves `cursor` (from `candidates`) past its head.
    @inline(__always)
    func advance(_ cursor: inout CandidateCursor) { cursor.advance(positions) }
}

extension IPNetwork {
    /// The first and last address the network covers, IPv4 as IPv4-mapped.
    var addressRange: (first: IPAddress, last: IPAddress) {
        let hostBits = (isIPv4 ? 32 : 128) - prefixLength
        let lowHost: UInt64 = hostBits >= 64 ? .max : (1 << UInt64(hostBits)) - 1
        let highHost: UInt64 = hostBits <= 64 ? 0 : hostBits == 128 ? .max : (1 << UInt64(hostBits - 64)) - 1
        return (address, IPAddress(high: address.high | highHost, low: address.low | lowHost))
    }
}

extension IPAddress {
    /// The next address, nil after the last.
    var successor: IPAddress? {
        if low != .max { return IPAddress(high: high, low: low + 1) }
        return high == .max ? nil : IPAddress(high: high + 1, low: 0)
    }
}
