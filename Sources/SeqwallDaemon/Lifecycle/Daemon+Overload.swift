import SeqwallControl
import SeqwallCore
import SeqwallRules

/// Automatic blocking (seqwall.rules(5), limit conn ... overload): the workers find sources
/// over a per-source connection limit and put them in their overload rings without a lock or
/// an allocation (QueueWorker.publishOverloads); the daemon's thread collects them every
/// `overloadInterval` and makes each one a live `table add` through the same path as
/// `seqwall table NAME add` (Daemon+Tables.swift), so every worker blocks the source from its
/// next SYN; with `flush` it then has every worker remove the source's connections counted
/// under that limit; with `expire` it files the entry's deadline (OverloadExpiries) and
/// deletes the entry when it is due, again through the live path.
extension Daemon {
    /// How often the daemon's thread looks at the rings and the deadlines while a rule uses
    /// overload or a deadline is pending.
    static let overloadInterval: UInt64 = 50_000_000

    /// Whether the policy in force has any overload table, or a deadline is pending.
    var overloadsInUse: Bool {
        withReloadLock {
            let policy = status.currentPolicy.policy
            let limits = [policy.limits.connPerSource, policy.limits.connRatePerSource]
                + policy.rules.flatMap { [$0.connPerSource, $0.connRatePerSource] }
            return overloadExpiries.count > 0 || limits.contains { $0?.overload != nil }
        }
    }

    /// Collects every worker's overloads and applies them, then deletes the entries that are due.
    func serviceOverloads() {
        var events: [OverloadEvent] = []
        var lost: UInt64 = 0
        for worker in workers {
            worker.overloadRing.drain { events.append($0) }
            lost += worker.overloadRing.takeLost()
        }
        let wallNow = SystemCall.wallClockNanoseconds()
        withReloadLock { overloadFigures.lost += lost }
        for event in events { apply(event, wallNow: wallNow) }
        expireOverloads(wallNow: wallNow)
    }

    /// One overloaded source: into its table (unless there already), its deadline filed, and
    /// with `flush` its connections cut.
    private func apply(_ event: OverloadEvent, wallNow: UInt64) {
        let entry = TableEntry(event.source)
        let tableName: String? = withReloadLock {
            let policy = status.currentPolicy.policy
            // The worker named the table by position in its policy; a reload may have moved it.
            let hint = Int(event.tableIndex)
            let index = hint < policy.tables.count && OverloadEvent.hash(ofTableName: policy.tables[hint].name) == event.tableNameHash
                ? hint : policy.tables.firstIndex { OverloadEvent.hash(ofTableName: $0.name) == event.tableNameHash }
            guard let index else {
                overloadFigures.lost += 1
                return nil
            }
            let table = policy.tables[index]
            let present = table.entries.contains(entry)
            if !present {
                let (changed, _) = table.adding([entry])
                _ = install(changed, at: index, in: policy, reply: "\(event.source) added by overload (\(event.reason))", count: 1)
                overloadFigures.added += 1
            }
            // An entry that was there without a deadline (added by hand) keeps none.
            if event.expireSeconds > 0 && (!present || overloadExpiries.deadline(of: event.source, in: table.name) != nil) {
                overloadExpiries.schedule(event.source, in: table.name,
                                          at: wallNow &+ UInt64(event.expireSeconds) * 1_000_000_000)
            }
            overloadFigures.pending_expiries = overloadExpiries.count
            return table.name
        }
        guard let tableName, event.flush else { return }
        // After the table change: a cut connection's next SYN is already blocked.
        let cut = workers.reduce(0) { total, worker in
            total + worker.mailbox.perform { $0.tracker.removeConnections(overloadedBy: event) }
        }
        guard cut > 0 else { return }
        withReloadLock { overloadFigures.flushed += UInt64(cut) }
        logger.notice("overload: \(event.source) in <\(tableName)> (\(event.reason)); \(Counted.text(cut, "connection")) flushed")
    }

    /// Deletes the entries whose deadline has passed, each through the live path.
    func expireOverloads(wallNow: UInt64) {
        withReloadLock {
            guard let next = overloadExpiries.next, next <= wallNow else { return }
            for key in overloadExpiries.popDue(now: wallNow) {
                let policy = status.currentPolicy.policy
                guard let index = policy.tables.firstIndex(where: { $0.name == key.table }) else { continue }
                let (changed, count) = policy.tables[index].removing([TableEntry(key.network)])
                guard count > 0 else { continue }
                _ = install(changed, at: index, in: policy, reply: "\(key.network) deleted: its overload expired", count: count)
                overloadFigures.expired += 1
            }
            overloadFigures.pending_expiries = overloadExpiries.count
        }
    }

    /// An entry deleted by hand (`seqwall table NAME delete|flush|replace`) no longer has a
    /// deadline. Call under the reload lock.
    func forgetOverloadDeadlines(in table: AddressTable) {
        for (key, _) in overloadExpiries.all where key.table == table.name && !table.entries.contains(TableEntry(key.network)) {
            overloadExpiries.cancel(key.network, in: key.table)
        }
        overloadFigures.pending_expiries = overloadExpiries.count
    }

    // MARK: Across restarts

    /// The `.expiries` companion of the state file: one `TABLE NETWORK DEADLINE` line per
    /// pending entry, the deadline in seconds since 1970. Call under the reload lock.
    func overloadExpiriesText() -> String {
        overloadExpiries.all.map { "\($0.key.table) \($0.key.network) \($0.deadline / 1_000_000_000)\n" }.joined()
    }

    /// Files the deadlines read back at a start, for entries still in their (persist) table;
    /// those already due are deleted at the first look. Returns how many were filed.
    @discardableResult
    func restoreOverloadExpiries(_ text: String) -> Int {
        withReloadLock {
            let tables = status.currentPolicy.policy.tables
            var filed = 0
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count == 3, let seconds = UInt64(fields[2]),
                      let table = tables.first(where: { $0.name == fields[0] && $0.persist }),
                      let entry = try? RuleFile.tableEntries(addresses: [String(fields[1])]).first,
                      table.entries.contains(entry) else { continue }
                overloadExpiries.schedule(entry.network, in: table.name, at: seconds * 1_000_000_000)
                filed += 1
            }
            overloadFigures.pending_expiries = overloadExpiries.count
            return filed
        }
    }
}
