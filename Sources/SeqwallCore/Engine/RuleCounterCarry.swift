/// Which of the old policy's rule counters each rule of a new policy takes over at a reload
/// (RuleCounterTable: the same action, protocol, direction, addresses and ports, wherever the
/// rule moved in the file). It depends on the two rule lists alone, so the daemon works it out
/// once per reload on the thread that loaded the rules, and each worker only copies counters
/// between packets: with thousands of rules, matching them up is what would stall a worker.
public struct RuleCounterCarry: Sendable {
    /// For each new rule, the index of the old rule whose counts it keeps, or -1: it starts
    /// from zero.
    let sources: [Int]
    /// How many rules the old policy had: a plan is for one pair of policies only.
    let oldCount: Int

    public init(from oldRules: [Rule], to newRules: [Rule]) {
        var unused: [Key: [Int]] = [:]
        for (index, rule) in oldRules.enumerated() {
            unused[Key(rule), default: []].append(index)
        }
        sources = newRules.map { rule in
            // Duplicates pair up in file order, each old rule's counts used once.
            guard let old = unused[Key(rule)]?.first else { return -1 }
            unused[Key(rule)]?.removeFirst()
            return old
        }
        oldCount = oldRules.count
    }

    /// The same rule across a reload: what it matches (RuleIdentity), its protocol and its
    /// action. A changed half-open limit keeps the counts, as it keeps the limiter's.
    private struct Key: Hashable {
        let identity: RuleIdentity
        let protocolName: TrackedProtocol
        let action: RuleAction

        init(_ rule: Rule) {
            identity = RuleIdentity(rule)
            protocolName = rule.protocolName
            action = rule.action
        }
    }
}
