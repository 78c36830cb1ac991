/// The rules grouped by what a new flow always has, so that deciding one looks only at the rules
/// that can match it, in their file order: first match stays first match.
///
/// Each (direction, protocol) bucket puts each of its rules under one dimension: its source
/// networks when it names some (and no table there), else its destination networks, else its
/// ports. The address dimensions are AddressIntervals: a rule whose networks share an interval
/// with too many others (`from 10.0.0.0/8` on a thousand rules) goes on to the next dimension,
/// where it may be told apart. The port dimension has the rules without ports in one list, and
/// the destination ports cut into segments at every port-range edge of its rules with ports,
/// each segment listing the rules whose ranges cover it. A flow's candidates are the four lists
/// (source interval, destination interval, port segment, no ports) merged by rule position, and
/// each candidate is still checked in full (its RuleMatchRecord, then the rule itself when the
/// record cannot tell), so the index can only skip rules that cannot match.
/// Built once per policy; lookups read flat arrays and allocate nothing. A class, so that
/// copying a Policy (which the tracker does to decide) costs one reference, not one per array.
public final class RuleIndex: Sendable, Equatable {
    /// Rules indexed by source and by destination networks.
    private let sources: AddressIntervals
    private let destinations: AddressIntervals
    /// Per bucket (direction, protocol), the range of `wildcards` and of the segments below.
    private let wildcardStart: [Int32]
    private let segmentStart: [Int32]
    /// Rule positions of rules without ports, bucket by bucket, ascending within a bucket.
    private let wildcards: [Int32]
    /// Segment `s` covers ports from `segmentLower[s]` up to the next segment's lower port, or
    /// 65535 at the end of its bucket; its rules are `candidates[candidateStart[s]..<candidateStart[s + 1]]`.
    private let segmentLower: [UInt16]
    private let candidateStart: [Int32]
    private let candidates: [Int32]
    /// For a bucket with many segments, 65536 entries from `portTableStart[bucket]`, so that
    /// finding a port's rules is one read instead of a search of mispredicted steps: its
    /// segment's list when that is of one rule (`portSingle | position`) or none
    /// (`portNoRules`), so that the lookup reads no other line of the index; else its segment,
    /// relative to the bucket's first. -1 for a bucket without.
    private let portTableStart: [Int32]
    private let portTable: [UInt32]
    static let portSingle: UInt32 = 1 << 31
    static let portNoRules = UInt32.max
    /// The rules in file order, for the candidates to be tried: their match records first,
    /// the whole rule only when its record cannot tell.
    private let records: RuleMatchRecords
    private let rules: [IndexedRule]
    /// The tables rules look addresses up in, each once, as `table position << 1 | side`
    /// (0: the source, 1: the destination): what the batch warm-up (BatchLookahead) reads
    /// ahead in for a new flow.
    let tableLookups: [Int]

    /// From this many segments a bucket gets a port table (256 KiB).
    static let portTableThreshold = 64

    /// A bucket whose segment lists would hold more than this many positions per rule (wide,
    /// overlapping port ranges) puts all its rules in the wildcard list instead: slower for that
    /// bucket, never wrong, and memory stays linear in the rules.
    static let maximumCopiesPerRule = 64

    /// At most this many rules to try in an address interval; a rule in a more crowded one is
    /// indexed by its next dimension instead.
    static let addressCrowd = 16

    static let bucketCount = 2 * TrackedProtocol.allCases.count

    static func bucket(_ direction: Direction, _ protocolName: TrackedProtocol) -> Int {
        Int(direction.rawValue) * TrackedProtocol.allCases.count + Int(protocolName.rawValue)
    }

    public init(_ rules: [Rule]) {
        var byBucket = [[Int]](repeating: [], count: RuleIndex.bucketCount)
        for (position, rule) in rules.enumerated() {
            byBucket[RuleIndex.bucket(rule.direction, rule.protocolName)].append(position)
        }
        var wildcardStart: [Int32] = [0]
        var segmentStart: [Int32] = [0]
        var wildcards: [Int32] = []
        var segmentLower: [UInt16] = []
        var candidateStart: [Int32] = [0]
        var candidates: [Int32] = []
        var portTableStart: [Int32] = []
        var portTable: [UInt32] = []
        var sources = AddressIntervals(), destinations = AddressIntervals()
        for bucketPositions in byBucket {
            let copies = RuleIndex.maximumCopiesPerRule * max(bucketPositions.count, 1)
            let bySource = bucketPositions.filter { !rules[$0].from.isEmpty && rules[$0].fromTables.isEmpty }
            let sourceLeft = sources.appendBucket(bySource.map { (Int32($0), rules[$0].from) }, crowd: RuleIndex.addressCrowd,
                                                  maximumCopies: copies)
            let indexedBySource = Set(bySource).subtracting(sourceLeft.map { Int($0) })
            let afterSource = bucketPositions.filter { !indexedBySource.contains($0) }
            let byDestination = afterSource.filter { !rules[$0].to.isEmpty && rules[$0].toTables.isEmpty }
            let destinationLeft = destinations.appendBucket(byDestination.map { (Int32($0), rules[$0].to) },
                                                            crowd: RuleIndex.addressCrowd, maximumCopies: copies)
            let indexedByDestination = Set(byDestination).subtracting(destinationLeft.map { Int($0) })
            let positions = afterSource.filter { !indexedByDestination.contains($0) }
            let ported = positions.filter { !rules[$0].ports.isEmpty && rules[$0].protocolName.hasPorts }
            var edges = Set<Int>()
            for position in ported {
                for range in rules[position].ports {
                    edges.insert(Int(range.lower))
                    if range.upper < UInt16.max { edges.insert(Int(range.upper) + 1) }
                }
            }
            if !ported.isEmpty { edges.insert(0) }
            let lowers = edges.sorted()
            var lists: [[Int32]] = lowers.map { _ in [] }
            var total = 0
            for position in ported {
                for range in rules[position].ports {
                    // The segments inside the range: edges were cut at both of its ends.
                    var segment = RuleIndex.firstSegment(atOrAbove: Int(range.lower), in: lowers)
                    while segment < lowers.count, lowers[segment] <= Int(range.upper) {
                        if lists[segment].last != Int32(position) { lists[segment].append(Int32(position)) }
                        segment += 1
                        total += 1
                    }
                }
            }
            if total > RuleIndex.maximumCopiesPerRule * max(ported.count, 1) {
                wildcards += positions.map { Int32($0) }
            } else {
                wildcards += positions.filter { rules[$0].ports.isEmpty || !rules[$0].protocolName.hasPorts }.map { Int32($0) }
                for (segment, lower) in lowers.enumerated() {
                    segmentLower.append(UInt16(lower))
                    candidates += lists[segment]
                    candidateStart.append(Int32(candidates.count))
                }
            }
            if total <= RuleIndex.maximumCopiesPerRule * max(ported.count, 1), lowers.count >= RuleIndex.portTableThreshold {
                portTableStart.append(Int32(portTable.count))
                var segment = 0
                for port in 0...65535 {
                    if segment + 1 < lowers.count, lowers[segment + 1] <= port { segment += 1 }
                    switch lists[segment].count {
                    case 0: portTable.append(RuleIndex.portNoRules)
                    case 1: portTable.append(RuleIndex.portSingle | UInt32(lists[segment][0]))
                    default: portTable.append(UInt32(segment))
                    }
                }
            } else {
                portTableStart.append(-1)
            }
            wildcardStart.append(Int32(wildcards.count))
            segmentStart.append(Int32(segmentLower.count))
        }
        self.rules = rules.map(IndexedRule.init)
        self.records = RuleMatchRecords(rules)
        var tableLookups: [Int] = []
        for rule in rules {
            let lookups = rule.fromTables.map { $0.index << 1 } + rule.toTables.map { $0.index << 1 | 1 }
            for lookup in lookups where !tableLookups.contains(lookup) { tableLookups.append(lookup) }
        }
        self.tableLookups = tableLookups
        self.sources = sources
        self.destinations = destinations
        self.wildcardStart = wildcardStart
        self.segmentStart = segmentStart
        self.wildcards = wildcards
        self.segmentLower = segmentLower
        self.candidateStart = candidateStart
        self.candidates = candidates
        self.portTableStart = portTableStart
        self.portTable = portTable
    }

    /// Built from the same rules, so equal arrays mean equal indexes.
    public static func == (lhs: RuleIndex, rhs: RuleIndex) -> Bool {
        lhs === rhs || (lhs.sources == rhs.sources && lhs.destinations == rhs.destinations
            && lhs.wildcardStart == rhs.wildcardStart && lhs.segmentStart == rhs.segmentStart
            && lhs.wildcards == rhs.wildcards && lhs.segmentLower == rhs.segmentLower
            && lhs.candidateStart == rhs.candidateStart && lhs.candidates == rhs.candidates
            && lhs.portTableStart == rhs.portTableStart && lhs.portTable == rhs.portTable)
    }

    private static func firstSegment(atOrAbove port: Int, in lowers: [Int]) -> Int {
        var low = 0, high = lowers.count
        while low < high {
            let middle = (low + high) >> 1
            if lowers[middle] < port { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// Where the rules of `bucket` for `destinationPort` are: `portSingle | position` for a
    /// list of one rule, `portNoRules` for none, else the segment (absolute) whose list it is.
    /// Reads the port table's entry, or searches the bucket's few segments.
    @inline(__always)
    private func portEntry(bucket: Int, hasPorts: Bool, destinationPort: UInt16) -> UInt32 {
        let firstSegment = Int(segmentStart[bucket])
        let segmentEnd = Int(segmentStart[bucket + 1])
        guard firstSegment < segmentEnd, hasPorts else { return RuleIndex.portNoRules }
        let table = Int(portTableStart[bucket])
        if table >= 0 {
            let entry = portTable[table + Int(destinationPort)]
            return entry & RuleIndex.portSingle != 0 ? entry : UInt32(firstSegment) + entry
        }
        // The last segment whose lower port is at or below the port (the first is port 0).
        var low = firstSegment, high = segmentEnd
        while low < high {
            let middle = (low + high) >> 1
            if segmentLower[middle] <= destinationPort { low = middle + 1 } else { high = middle }
        }
        return UInt32(low - 1)
    }

    /// The action of the rule at `position`, from its match record (the line `first` read
    /// last for it).
    func action(_ position: Int) -> RuleAction { records[position].action }

    /// The first rule, in file order, that matches this flow (`Rule.matches`, with `tables` the
    /// policy's, and the flow's table answers from the batch warm-up if any); nil when none does.
    func first(protocolName: TrackedProtocol, direction: Direction, source: IPAddress, destination: IPAddress,
               destinationPort: UInt16, tables: [AddressTable], answers: UnsafePointer<TableAnswers>? = nil) -> Int? {
        let bucket = RuleIndex.bucket(direction, protocolName)
        var wildcard = CandidateCursor.range(wildcards, Int(wildcardStart[bucket]), Int(wildcardStart[bucket + 1]))
        let portEntry = portEntry(bucket: bucket, hasPorts: protocolName.hasPorts, destinationPort: destinationPort)
        var byPort: CandidateCursor
        if portEntry == RuleIndex.portNoRules {
            byPort = .empty
        } else if portEntry & RuleIndex.portSingle != 0 {
            byPort = .single(Int32(bitPattern: portEntry & ~RuleIndex.portSingle))
        } else {
            byPort = .range(candidates, Int(candidateStart[Int(portEntry)]), Int(candidateStart[Int(portEntry) + 1]))
        }
        var bySource = sources.candidates(bucket: bucket, address: source)
        var byDestination = destinations.candidates(bucket: bucket, address: destination)
        let sourceIsIPv4 = source.isIPv4, destinationIsIPv4 = destination.isIPv4
        // The four ascending lists merged: the smallest head is the next rule in file order.
        while true {
            let position = min(min(wildcard.head, byPort.head), min(bySource.head, byDestination.head))
            guard position != Int32.max else { return nil }
            if wildcard.head == position {
                wildcard.advance(wildcards)
            } else if byPort.head == position {
                byPort.advance(candidates)
            } else if bySource.head == position {
                sources.advance(&bySource)
            } else {
                destinations.advance(&byDestination)
            }
            switch records[Int(position)].answer(bucket: bucket, source: source, sourceIsIPv4: sourceIsIPv4,
                                                 destination: destination, destinationIsIPv4: destinationIsIPv4,
                                                 destinationPort: destinationPort, answers: answers) {
            case .fails: continue
            case .passes: return Int(position)
            case .checkRule:
                if rules[Int(position)].matches(protocolName: protocolName, direction: direction, source: source,
                                                destination: destination, destinationPort: destinationPort, tables: tables,
                                                answers: answers) {
                    return Int(position)
                }
            }
        }
    }
}
