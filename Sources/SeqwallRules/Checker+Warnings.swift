import SeqwallCore

/// What a rule file may say but probably does not mean: reported with its place, as errors are,
/// without refusing the file (`seqwall rules check`, and the daemon's log at load and reload).
extension Checker {
    /// Every warning of the files read so far, in file order.
    var warnings: [RuleWarning] {
        unusedTables()
    }

    /// A table that nothing uses filters nothing: most often the rule that named it was taken
    /// out, or names another table by mistake. Its entries still cost memory and load time.
    private func unusedTables() -> [RuleWarning] {
        let used = usedTableIndexes()
        return tablePositions.filter { !used.contains($0.value.index) }
            .sorted { $0.value.index < $1.value.index }
            .map { RuleWarning(location: $0.value.location, message: "table <\($0.key)> is defined but no rule uses it") }
    }

    /// The positions in `Policy.tables` of the tables something refers to: the address lists
    /// of the rules, and the overload targets of the connection limits (global and per rule),
    /// which fill a table that the rules may not name yet.
    private func usedTableIndexes() -> Set<Int> {
        var used = Set<Int>()
        var limits = [policy.limits.connPerSource, policy.limits.connRatePerSource]
        for rule in rules {
            for reference in rule.fromTables + rule.toTables { used.insert(reference.index) }
            limits += [rule.connPerSource, rule.connRatePerSource]
        }
        for case let limit? in limits {
            if let overload = limit.overload { used.insert(overload.table.index) }
        }
        return used
    }
}
