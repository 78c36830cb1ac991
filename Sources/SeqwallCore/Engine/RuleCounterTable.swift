/// A tracker's per-rule counters: one RuleCounter per rule of the policy, in file order, then
/// one for `default in` and one for `default out`. Allocated when a policy comes in (never on
/// the packet path) and written only by the tracker's thread; others read a copy through it.
///
/// A reload carries a rule's counts over to the same rule in the new policy (same action,
/// protocol, direction, addresses and ports; moving it in the file does not matter),
/// and the defaults' counts to the new defaults; a new or changed rule starts from zero, as pf
/// starts a rule's counters when it is loaded.
struct RuleCounterTable {
    /// Fixed for the life of a policy, and kept in the tracker's hot state: counting a new
    /// connection is a store, with no copy-on-write or exclusivity check.
    private(set) var counters: UnsafeMutablePointer<RuleCounter>
    let ruleCount: Int
    var count: Int { ruleCount + 2 }

    init(ruleCount: Int) {
        self.ruleCount = ruleCount
        counters = .allocate(capacity: ruleCount + 2)
        counters.initialize(repeating: RuleCounter(), count: ruleCount + 2)
    }

    /// The counter of the rule at `ruleIndex`, or of the default that decided (nil index).
    func slot(ruleIndex: Int?, direction: Direction) -> Int {
        ruleIndex ?? ruleCount + (direction == .inbound ? 0 : 1)
    }

    func count(_ verdict: Verdict, ruleIndex: Int?, direction: Direction, now: UInt64) {
        counters[slot(ruleIndex: ruleIndex, direction: direction)].count(verdict, now: now)
    }

    var snapshot: [RuleCounter] { Array(UnsafeBufferPointer(start: counters, count: count)) }

    /// A table for the new policy of `carry` holding what this one counted for the same rules
    /// (see above).
    func carried(by carry: RuleCounterCarry) -> RuleCounterTable {
        let table = RuleCounterTable(ruleCount: carry.sources.count)
        for (index, old) in carry.sources.enumerated() where old >= 0 && old < ruleCount {
            table.counters[index] = counters[old]
        }
        table.counters[table.ruleCount] = counters[ruleCount]
        table.counters[table.ruleCount + 1] = counters[ruleCount + 1]
        return table
    }

    func deallocate() {
        counters.deinitialize(count: count)
        counters.deallocate()
    }
}
