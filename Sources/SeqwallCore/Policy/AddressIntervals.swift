/// Rule positions by address, bucket by bucket (RuleIndex's buckets): the addresses are cut into
/// intervals at every edge of the rules' networks, and each interval lists, ascending, the rules
/// with a network that covers it. A flow's candidates are then the list of the one interval its
/// address lies in, found by a binary search, instead of every rule that names an address.
/// IPv4 addresses are IPv4-mapped (IPAddress), so both families share one ordering: an IPv4
/// network is a contiguous run of mapped addresses. Flat arrays, read without allocating.
struct AddressIntervals: Sendable, Equatable {
    /// Per bucket, the range of `lowers` that is its intervals (its first lower is always ::).
    private var bucketStart: [Int32] = [0]
    /// Interval `i` covers `lowers[i]` up to the next lower of its bucket, or to the last address.
    private var lowers: [IPAddress] = []
    /// Interval `i`'s rules are `positions[listStart[i]..<listEnd[i]]`.
    private var listStart: [Int32] = []
    private var listEnd: [Int32] = []
    private var positions: [Int32] = []

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
        for (lower, list) in zip(bounds, lists) {
            lowers.append(lower)
            listStart.append(Int32(positions.count))
            positions += list
            listEnd.append(Int32(positions.count))
        }
        bucketStart.append(Int32(lowers.count))
        return left
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

    /// The range of `positions` listing the rules of `bucket` whose networks may contain
    /// `address`; empty when the bucket has none.
    func candidates(bucket: Int, address: IPAddress) -> Range<Int> {
        let start = Int(bucketStart[bucket]), end = Int(bucketStart[bucket + 1])
        guard start < end else { return 0..<0 }
        let interval = AddressIntervals.interval(containing: address, in: lowers, start, end)
        return Int(listStart[interval])..<Int(listEnd[interval])
    }

    subscript(index: Int) -> Int32 { positions[index] }
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
