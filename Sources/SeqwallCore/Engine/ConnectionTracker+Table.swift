/// The engine's query and mutation API: what the daemon, replay, the fuzz targets and the
/// tests may ask of a tracker's table and limiters. Every answer is a value (a Connection, a
/// count, a usage figure); where a connection is stored, and how it is found, stays inside
/// the engine, so the table can change its layout without any caller knowing.
///
/// Like the packet path, none of it is thread-safe: call it on the thread that owns the
/// tracker (the daemon goes through the worker's mailbox).
extension ConnectionTracker {
    // MARK: Sizes

    /// How many connections the table holds, expired ones not yet removed included.
    public var connectionCount: Int { table.count }

    /// The most connections the table holds (`limit states`, or this tracker's share of it).
    public var connectionLimit: Int { table.limit }

    /// Bytes the table takes once it holds `connectionLimit` connections (ConnectionTable.bytes).
    public var tableBytes: Int { table.bytes }

    // MARK: Address tables

    /// Puts `table` in place of the policy's table at `index` (`seqwall table`, docs/operations.md),
    /// between packets: the rules name tables by position, so they see the new one at once,
    /// and nothing else of the policy, counters and limiters included, changes. The caller
    /// builds the table and keeps a reference to the old one, so neither building nor freeing
    /// a large table happens on the owner's thread.
    public func replaceTable(at index: Int, with table: AddressTable) {
        precondition(index < policy.tables.count && policy.tables[index].name == table.name, "no such table")
        policy.tables[index] = table
    }

    // MARK: Lookup and listing

    /// The connection a packet with `key` belongs to, as the table holds it (its deadline may
    /// have passed: compare `expiresAt` with the clock), and which way such a packet goes in it.
    public func connection(for key: FlowKey) -> (connection: Connection, direction: FlowDirection)? {
        guard let (slot, direction) = table.find(key) else { return nil }
        return (table.connection(at: slot).pointee, direction)
    }

    /// Calls `body` with every connection the table holds, expired ones not yet removed
    /// included, in no particular order.
    public func forEachConnection(_ body: (Connection) -> Void) {
        _ = table.forEachSlot(from: 0, examining: table.capacity) { _, connection in body(connection) }
    }

    /// Lists the connections in chunks, so that the owner's thread can go back to its packets
    /// between them: calls `body` with the connections among the next `limit` entries after
    /// `cursor`, and returns where to go on from, nil when the listing is done. Connections
    /// removed between chunks may be missed, and one moved by a removal may be listed twice;
    /// one that stays in the table throughout is listed (ConnectionTable.forEachSlot).
    public func forEachConnection(from cursor: ConnectionCursor, examining limit: Int,
                                  _ body: (Connection) -> Void) -> ConnectionCursor? {
        let next = table.forEachSlot(from: cursor.examined, examining: limit) { _, connection in body(connection) }
        return next >= table.capacity ? nil : ConnectionCursor(examined: next)
    }

    // MARK: Removal

    /// Removes the connection a packet with `key` (either direction) belongs to, as `conntrack
    /// delete` does; returns it, nil when the table holds none.
    @discardableResult
    public func removeConnection(_ key: FlowKey) -> Connection? {
        guard let (slot, _) = table.find(key) else { return nil }
        let connection = table.connection(at: slot).pointee
        destroy(slot: slot)
        return connection
    }

    /// Removes the connections `predicate` selects; returns how many. Each connection is
    /// judged exactly once.
    @discardableResult
    public func removeConnections(where predicate: (Connection) -> Bool) -> Int {
        // The connections sit in slots 0..<count. Removing one moves the last into its slot,
        // which is then judged in its turn: every connection is judged exactly once.
        var slot = 0
        var removed = 0
        while slot < table.count {
            if predicate(table.connection(at: slot).pointee) {
                destroy(slot: slot)
                removed += 1
            } else {
                slot += 1
            }
        }
        return removed
    }

    /// Removes connections whose deadline has passed, looking at no more than `budget` of the
    /// connections the expiry wheel offers (those due, and those whose deadline a packet has
    /// pushed later, which it files again). Returns whether more may be due: the owner calls
    /// it between packet batches and when idle, and sooner while it returns true, so a burst of
    /// deadlines never holds packets up. The work follows the number of connections that come
    /// due, not the table's size. Packets never wait for it either: a lookup that finds an
    /// expired connection treats it as gone.
    @discardableResult
    public func expire(now: UInt64, budget: Int) -> Bool {
        var examined = 0
        while examined < budget {
            guard let slot = table.nextExpiryCandidate(now: now) else { return false }
            examined += 1
            if table.connection(at: slot).pointee.expiresAt <= now {
                destroy(slot: slot)
            } else {
                table.refile(slot)
            }
        }
        return true
    }

    /// Removes every connection whose deadline has passed at `now`, however many there are: a
    /// budget of every entry (plus one per connection, since a removal looks at its entry
    /// again) makes one call a whole pass over the table.
    public func expireAll(now: UInt64) {
        expire(now: now, budget: table.capacity + table.count)
    }

    // MARK: Limiters

    /// `limit half-open` as this tracker applies it (its share of the global limit); nil when
    /// there is none.
    public var halfOpenLimit: Int? { limiter.halfOpenLimit }

    /// How full the per-source limiter's table is at `now`; nil when no per-source limit or
    /// SYN rate is set.
    public func sourceTableUsage(now: UInt64) -> SourceTableUsage? {
        limiter.sources.map { SourceTableUsage(active: $0.activeEntries(now: now), capacity: $0.capacity,
                                               evictions: $0.evictions) }
    }
}
