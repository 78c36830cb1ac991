/// Which of the old policy's rule counters each rule of a new policy takes over at a reload
/// (RuleCounterTable: the same action, protocol, direction, addresses and ports, wherever the
/// rule moved in the file), and which old rule's per-source limit id it keeps
/// (HalfOpenLimiter.ruleIDs: the same RuleIdentity). It depends on the two rule lists alone, so
/// the daemon works it out once per reload on the thread that loaded the rules, and each worker
/// only copies counters and ids between packets: with thousands of rules, matching them up is
/// what would stall a worker.
public struct RuleCounterCarry: Sendable {
    /// For each new rule, the index of the old rule whose counts it keeps, or -1: it starts
    /// from zero.
    let sources: [Int]
    /// How many rules the old policy had: a plan is for one pair of policies only.
    let oldCount: Int
    /// For each new rule, where the id of its per-source limits comes from.
    let limitIDs: [LimitID]
    /// For each new rule, its `limit conn`/`conn-rate` (nil without): made once here and shared
    /// by every worker's limiter, which makes none of its own.
    let connectionLimits: [ConnectionLimits?]

    /// Where a new rule's per-source limit id comes from (HalfOpenLimiter.configure).
    enum LimitID {
        /// No per-source limit: no id.
        case none
        /// A rule the old policy did not have: a new id.
        case fresh
        /// The id of the old rule at this index, the same rule.
        case old(Int)
        /// The id of the earlier new rule at this index, the same rule written twice.
        case earlier(Int)
    }

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
        var oldLimited: [RuleIdentity: Int] = [:]
        for (index, rule) in oldRules.enumerated() where rule.countsPerSource {
            let identity = RuleIdentity(rule)
            if oldLimited[identity] == nil { oldLimited[identity] = index }
        }
        var newLimited: [RuleIdentity: Int] = [:]
        limitIDs = newRules.enumerated().map { index, rule in
            guard rule.countsPerSource else { return .none }
            let identity = RuleIdentity(rule)
            if let earlier = newLimited[identity] { return .earlier(earlier) }
            newLimited[identity] = index
            return oldLimited[identity].map { .old($0) } ?? .fresh
        }
        connectionLimits = newRules.map { rule in
            rule.connPerSource == nil && rule.connRatePerSource == nil
                ? nil : ConnectionLimits(count: rule.connPerSource, rate: rule.connRatePerSource)
        }
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
