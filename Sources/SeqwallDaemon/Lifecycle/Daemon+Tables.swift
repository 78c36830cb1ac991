import SeqwallControl
import SeqwallCore
import SeqwallRules

/// Address tables changed while the daemon runs (`seqwall table`, docs/operations.md, Live
/// table changes). A change builds the new immutable table here, on the control thread, and
/// each worker puts it in place of the old one between two packet batches (a mailbox job):
/// the packet path never waits for a lock nor sees a table half changed. Changes, reloads and
/// the state file's table section all go under the reload lock, so they come one at a time.
extension Daemon {
    /// The tables as the policy in force holds them, with their sizes.
    func tableSummaries() -> [TableSummary] {
        status.currentPolicy.policy.tables.map(TableSummary.init)
    }

    /// Carries out one `table` request.
    func changeTable(_ request: TableRequest) -> ControlReply {
        withReloadLock {
            let policy = status.currentPolicy.policy
            guard let index = policy.tables.firstIndex(where: { $0.name == request.name }) else {
                let known = policy.tables.map { "<\($0.name)>" }.joined(separator: ", ")
                return .failure("no table <\(request.name)> in the rules in force"
                                + (known.isEmpty ? " (they define none)" : " (tables: \(known))"))
            }
            let table = policy.tables[index]
            let entries: [TableEntry]
            do throws(RuleErrors) {
                entries = try requestEntries(request)
            } catch {
                return .failure(error.description)
            }
            switch request.operation {
            case .show:
                return ControlReply(ok: true, count: table.entries.count, entries: table.entries.map { showLine($0, in: table.name) })
            case .test:
                return test(table, entries)
            case .add:
                let (changed, count) = table.adding(entries)
                return install(changed, at: index, in: policy, reply: "\(count)/\(entries.count) addresses added", count: count)
            case .delete:
                let (changed, count) = table.removing(entries)
                return install(changed, at: index, in: policy, reply: "\(count)/\(entries.count) addresses deleted", count: count)
            case .flush:
                return install(table.entries.isEmpty ? table : table.withEntries([]), at: index, in: policy,
                               reply: "\(table.entries.count) addresses deleted", count: table.entries.count)
            case .replace:
                let replaced = table.withEntries(entries)
                let old = Set(table.entries), new = Set(replaced.entries)
                let added = new.subtracting(old).count, deleted = old.subtracting(new).count
                return install(replaced, at: index, in: policy,
                               reply: "\(added) addresses added, \(deleted) deleted", count: added + deleted)
            }
        }
    }

    /// The addresses of `add`, `delete` and `test`, or the file of `replace`, checked as a
    /// table's lines are; errors name the address by its position or the file's line.
    private func requestEntries(_ request: TableRequest) throws(RuleErrors) -> [TableEntry] {
        func refuse(_ message: String) -> RuleErrors {
            RuleErrors(errors: [RuleError(location: SourceLocation(file: "table <\(request.name)>", line: 1, column: 1),
                                          message: message)])
        }
        switch request.operation {
        case .show, .flush:
            return []
        case .add, .delete, .test:
            guard let addresses = request.addresses, !addresses.isEmpty else {
                throw refuse("\(request.operation.rawValue) needs at least one address")
            }
            let entries = try RuleFile.tableEntries(addresses: addresses)
            if request.operation == .test,
               let network = entries.first(where: { $0.negated || $0.network.prefixLength != ($0.network.isIPv4 ? 32 : 128) }) {
                throw refuse("test takes addresses, not networks or exceptions: \(network)")
            }
            return entries
        case .replace:
            guard let file = request.file, file.hasPrefix("/") else {
                throw refuse("replace needs the table file's absolute path")
            }
            return try RuleFile.tableEntries(path: file)
        }
    }

    /// One entry of `show`: an entry an overload added with `expire` carries its deadline as
    /// a comment, which a table file allows, so `show` output still feeds `replace`.
    private func showLine(_ entry: TableEntry, in table: String) -> String {
        guard !entry.negated, let deadline = overloadExpiries.deadline(of: entry.network, in: table) else { return entry.description }
        let now = SystemCall.wallClockNanoseconds()
        let left = deadline > now ? (deadline - now + 999_999_999) / 1_000_000_000 : 0
        return entry.description + "  # overload, expires \(Formatters.utcTime(deadline / 1_000_000_000)) (in \(left)s)"
    }

    /// pfctl -T test: how many of the addresses the table matches; the request succeeds either
    /// way, the CLI's exit status says whether all did.
    private func test(_ table: AddressTable, _ entries: [TableEntry]) -> ControlReply {
        let matching = entries.filter { table.contains($0.network.address) }
        return ControlReply(ok: true, count: matching.count, message: "\(matching.count)/\(entries.count) addresses match",
                            entries: matching.map(\.description))
    }

    /// Hands `table` to every worker and records it as in force. The old table stays
    /// referenced by `policy` until this returns, so it is freed here, not on a worker.
    func install(_ table: AddressTable, at index: Int, in policy: Policy, reply: String, count: Int) -> ControlReply {
        var changed = policy
        changed.tables[index] = table
        if table !== policy.tables[index] {
            for worker in workers { worker.mailbox.perform { $0.tracker.replaceTable(at: index, with: table) } }
            status.tablesChanged(changed)
            if overloadExpiries.count > 0 { forgetOverloadDeadlines(in: table) }
            logger.info("table <\(table.name)>: \(reply); \(Counted.text(table.entries.count, "entry", "entries")) now")
        }
        let note = table.persist ? "" : "; <\(table.name)> is not persist: a reload sets it back to the rule files' entries"
        return ControlReply(ok: true, count: count, message: reply + note)
    }

    // MARK: Across reloads and restarts

    /// What `seqwall table` changed in each persist table against the rule files' definition,
    /// for the state file and for a reload. Call under the reload lock.
    func persistentTableChanges() -> [String: TableChanges] {
        let live = status.currentPolicy.policy.tables
        var changes: [String: TableChanges] = [:]
        for definition in tableDefinitions where definition.persist {
            // The same object: never changed since the load, so no set difference to take.
            guard let current = live.first(where: { $0.name == definition.name }), current !== definition else { continue }
            let difference = TableChanges(from: definition, to: current)
            if !difference.isEmpty { changes[definition.name] = difference }
        }
        return changes
    }

    /// `policy` as the rule files define it, with `changes` made to its persist tables (pf
    /// keeps a persist table's contents across reloads); remembers the definitions. Changes
    /// to a table that is gone, or no longer persist, are dropped.
    func applyingTableChanges(_ changes: [String: TableChanges], to policy: Policy) -> Policy {
        tableDefinitions = policy.tables
        var changed = policy
        for (index, table) in policy.tables.enumerated() where table.persist {
            if let change = changes[table.name] { changed.tables[index] = change.applied(to: table) }
        }
        return changed
    }
}
