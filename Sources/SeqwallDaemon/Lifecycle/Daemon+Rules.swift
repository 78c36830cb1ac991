import SeqwallControl
import SeqwallCore
import SeqwallRules

/// `seqwall rules show` (control command `rules`) and the per-rule part of `stats`.
extension Daemon {
    /// The policy in force, each rule with what it decided on every queue together.
    func rulesRecord() -> RulesRecord {
        let (policy, loadedAt, defaults, rules) = ruleEntries()
        let limits = policy.limits
        var record = RulesRecord(
            file: options.rulesPath, loaded_at: loadedAt,
            inside: policy.inside.map(\.description), defaults: defaults, rules: rules,
            limits: RulesRecord.Limits(states: limits.states, half_open: limits.halfOpen,
                                       half_open_per_source: limits.halfOpenPerSource,
                                       syn_rate_per_source: limits.synRatePerSource?.rate,
                                       syn_rate_burst: limits.synRatePerSource?.burst),
            timeouts: RuleFile.timeouts(of: policy).map {
                RulesRecord.Timeout(name: $0.name, seconds: $0.seconds, text: $0.statement, is_default: $0.isDefault)
            },
            pickup: policy.pickup, drop_log: policy.dropLog.rawValue)
        if !policy.tables.isEmpty {
            record.tables = policy.tables.map(TableSummary.init)
        }
        return record
    }

    /// The rules and defaults that dropped new connections, for `stats`.
    func ruleDrops() -> [DaemonHealth.RuleDrops] {
        let (_, _, defaults, rules) = ruleEntries()
        return (defaults + rules).compactMap { entry in
            guard entry.counters.blocked > 0 || entry.counters.rejected > 0 else { return nil }
            return DaemonHealth.RuleDrops(number: entry.number, rule: entry.text, blocked: entry.counters.blocked,
                                          rejected: entry.counters.rejected)
        }
    }

    /// The defaults (`default in`, `default out`) and the rules, numbered from 1, with their
    /// counters summed over the workers. Taken under the reload lock, so every worker holds the
    /// policy the entries describe.
    private func ruleEntries() -> (Policy, UInt64, [RulesRecord.Entry], [RulesRecord.Entry]) {
        withReloadLock {
            let (policy, loadedAt) = status.currentPolicy
            var sums = [RuleCounter](repeating: RuleCounter(), count: policy.rules.count + 2)
            var now: UInt64 = 0
            for worker in workers {
                let (counters, workerNow) = worker.mailbox.perform {
                    ($0.tracker.ruleCounters, SystemCall.monotonicNanoseconds())
                }
                now = max(now, workerNow)
                guard counters.count == sums.count else { continue }
                for index in sums.indices { sums[index].add(counters[index]) }
            }
            func counters(_ index: Int) -> RulesRecord.Counters {
                let counter = sums[index]
                return RulesRecord.Counters(
                    passed: counter.passed, blocked: counter.blocked, rejected: counter.rejected,
                    last_match_seconds_ago: counter.lastMatch == 0 ? nil : (now &- counter.lastMatch) / 1_000_000_000)
            }
            let rules = policy.rules.enumerated().map { index, rule in
                RulesRecord.Entry(number: index + 1, text: RuleFile.canonicalText(of: rule),
                                  location: rule.location.description, counters: counters(index))
            }
            let defaults = [
                RulesRecord.Entry(number: nil, text: "default in \(policy.defaultInbound)", location: nil,
                                  counters: counters(policy.rules.count)),
                RulesRecord.Entry(number: nil, text: "default out \(policy.defaultOutbound)", location: nil,
                                  counters: counters(policy.rules.count + 1)),
            ]
            return (policy, loadedAt, defaults, rules)
        }
    }
}
