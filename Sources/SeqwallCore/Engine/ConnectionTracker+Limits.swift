/// The limits on new connections, checked on every new SYN before anything is stored
/// (docs/design.md, Limits), and the bookkeeping that keeps their counts exact.
///
/// Order, from the most specific to the most general, so a drop names the limit that really
/// stopped the SYN: the source's SYN rate (`syn-rate`), the source's half-open count, the
/// source's count under the rule that passed it (`half-open-limit`), the global half-open
/// count (evicting an old unreplied SYN if one may go, else `half-open-limit`), and room in
/// the table (early drop, else `table-full`). A SYN that fails a check has changed nothing
/// but the token it spent.
///
/// Per-source limits and the SYN rate apply to inbound connections: they protect the inside
/// from outside sources, and outbound connections come from the operator's own hosts (a
/// host-mode firewall would otherwise rate-limit its own connections). A rule's own
/// `limit half-open N per-source` applies in the rule's direction.
extension ConnectionTracker {
    /// Neighbouring entries an early drop looks at (the kernel looks at up to 8 entries of the
    /// new connection's hash chain, NF_CT_EVICTION_RANGE), within at most `earlyDropSlots`
    /// index positions: a full table's index is 3/8 to 3/4 occupied, so that many hold them.
    static let earlyDropRange = 16
    static let earlyDropSlots = 64
    /// Stale items dropped from the front of the unreplied queue per eviction attempt.
    static let unrepliedScanLimit = 64

    /// The timeouts in force: the policy's, with the half-open ones shrunk under pressure
    /// (HalfOpenLimiter.adaptiveScale, after pf's adaptive timeouts). Worked out again only
    /// when the counts they depend on have changed: established traffic changes neither, and
    /// the scaling costs three divisions.
    @inline(__always)
    var currentTimeouts: TCPTimeouts {
        let halfOpen = hot.pointee.halfOpenCount, tableCount = table.count
        if hot.pointee.timeoutsPressure.map({ $0.halfOpen != halfOpen || $0.tableCount != tableCount }) ?? true {
            _ = updateTimeouts(halfOpen: halfOpen, tableCount: tableCount)
        }
        return hot.pointee.timeouts
    }

    func updateTimeouts(halfOpen: Int, tableCount: Int) -> TCPTimeouts {
        var timeouts = policy.timeouts
        if let scale = limiter.adaptiveScale(halfOpen: halfOpen, tableCount: tableCount, tableLimit: table.limit) {
            timeouts = HalfOpenLimiter.scaled(timeouts, by: scale)
        }
        hot.pointee.timeouts = timeouts
        hot.pointee.timeoutsPressure = (halfOpen, tableCount)
        return timeouts
    }

    /// Checks a new connection against every limit and charges it to its per-source counters;
    /// may evict one connection to make room. Returns why it may not be stored, or nil.
    func admit(_ connection: inout Connection, ruleIndex: Int?, now: UInt64) -> DropReason? {
        limiter.now = now
        let halfOpen = connection.state.isHalfOpen
        var sourceSlot: Int?
        var ruleSlot: Int?
        var ruleID: UInt32 = 0
        if halfOpen, let sources = limiter.sources {
            let prefix = SourceLimiter.prefix(of: connection.key.source)
            if connection.direction == .inbound {
                guard let slot = sources.slot(for: prefix, 0, now: now) else { return .halfOpenLimit }
                if limiter.limitsSynRate && !sources.takeToken(slot: slot, now: now, interval: limiter.synInterval,
                                                               tolerance: limiter.synTolerance) {
                    return .synRate
                }
                if let limit = limiter.halfOpenPerSource, Int(sources.entries[slot].halfOpen) >= limit {
                    return .halfOpenLimit
                }
                sourceSlot = slot
            }
            if let ruleIndex, let limit = policy.rules[ruleIndex].halfOpenPerSource {
                ruleID = limiter.ruleIDs[ruleIndex]
                guard let slot = sources.slot(for: prefix, ruleID, now: now, keeping: sourceSlot),
                      Int(sources.entries[slot].halfOpen) < limit else { return .halfOpenLimit }
                ruleSlot = slot
            }
        }
        if halfOpen, let limit = limiter.halfOpenLimit, halfOpenCount >= limit {
            // One out for one in: after a reload lowers the limit, the count does not grow and
            // drains as connections complete or expire.
            guard evictOldestUnreplied(now: now) else { return .halfOpenLimit }
            hot.pointee.counters.halfOpenEvictions += 1
        }
        if table.isFull && !makeRoom(for: connection.key, now: now) { return .tableFull }

        // Every check passed. Source entries never move (SourceLimiter is set-associative), so
        // the slots found above are still the ones to charge.
        if let sources = limiter.sources {
            if let sourceSlot {
                sources.charge(slot: sourceSlot)
                connection.halfOpenCharges.insert(.source)
            }
            if let ruleSlot {
                sources.charge(slot: ruleSlot)
                connection.halfOpenCharges.insert(.rule)
                connection.chargedRule = ruleID
            }
        }
        if halfOpen && limiter.limitsConnections { admitCounting(&connection, ruleIndex: ruleIndex) }
        return nil
    }

    /// Gives back the per-source half-open counts a connection holds. Called on every way out
    /// of half-open: the handshake completing (track), and every removal (destroy(slot:):
    /// expiry, RST, reopen, eviction, `conntrack delete` and `flush`).
    // Always inlined: its empty check runs on every handshake completion and removal; the rest is rare.
    @inline(__always)
    func releaseCharges(of connection: inout Connection) {
        guard !connection.halfOpenCharges.isEmpty else { return }
        releaseAllCharges(of: &connection)
    }

    // Never inlined: the rare part of releaseCharges stays out of the packet path's code.
    @inline(never)
    func releaseAllCharges(of connection: inout Connection) {
        releaseHalfOpenCharges(of: &connection)
        if !connection.halfOpenCharges.isDisjoint(with: .established) { releaseEstablishedCharges(of: &connection) }
        connection.halfOpenCharges = []
    }

    /// The half-open part of releaseCharges, alone when a handshake completes: the connection
    /// keeps the established counts it is to take (ConnectionTracker+Overload.swift).
    func releaseHalfOpenCharges(of connection: inout Connection) {
        if let sources = limiter.sources {
            let prefix = SourceLimiter.prefix(of: connection.key.source)
            if connection.halfOpenCharges.contains(.source) { sources.release(prefix, scope: 0) }
            if connection.halfOpenCharges.contains(.rule) { sources.release(prefix, scope: connection.chargedRule) }
        }
        connection.halfOpenCharges.subtract(.halfOpen)
    }

    // MARK: Eviction

    /// Queues a new inbound half-open connection as a candidate for eviction.
    func rememberUnreplied(_ connection: Connection) {
        guard connection.direction == .inbound, let queue = limiter.unreplied else { return }
        // Tidy the front a little on each push, so stale items do not pile up there.
        for _ in 0..<2 {
            guard let item = queue.oldest, unrepliedSlot(of: item) == nil else { break }
            queue.popOldest()
        }
        // Still full: the oldest live item stops being a candidate. Its connection is not
        // harmed; it just expires on its own.
        if queue.isFull { queue.popOldest() }
        queue.append(UnrepliedQueue.Item(key: connection.key, createdAt: connection.createdAt))
    }

    /// The slot of the connection an unreplied-queue item stands for, if it is still that
    /// connection (same creation time: not a later one on the same tuple), still half-open and
    /// still without any reply.
    func unrepliedSlot(of item: UnrepliedQueue.Item) -> Int? {
        guard let (slot, direction) = table.find(item.key), direction == .original else { return nil }
        let connection = table.connection(at: slot).pointee
        guard connection.createdAt == item.createdAt, connection.state.isHalfOpen,
              !connection.status.contains(.seenReply) else { return nil }
        return slot
    }

    /// Evicts the oldest inbound half-open connection that has never seen a reply, if it is
    /// old enough (HalfOpenLimiter.minimumEvictionAge says why that is safe for legitimate
    /// clients). A spoofed SYN flood fills the half-open limit with exactly such entries:
    /// their SYN-ACKs go to addresses that never answer. Rotating them out oldest first keeps
    /// the limit from locking out everyone else, which a plain "limit reached, drop" would do
    /// for as long as the flood lasts plus the SYN_SENT timeout.
    func evictOldestUnreplied(now: UInt64) -> Bool {
        guard let queue = limiter.unreplied else { return false }
        for _ in 0..<ConnectionTracker.unrepliedScanLimit {
            guard let item = queue.oldest else { return false }
            guard let slot = unrepliedSlot(of: item) else {
                queue.popOldest()
                continue
            }
            // The front is the oldest live candidate: if it is too young, so is every other.
            guard now &- item.createdAt >= limiter.minimumEvictionAge else { return false }
            queue.popOldest()
            destroy(slot: slot)
            return true
        }
        return false
    }

    /// Makes room in a full table for a connection with `key`, like the kernel's early_drop
    /// (nf_conntrack_core.c): among the entries next to the key's home slot, one that has
    /// expired goes first; else a connection that is not assured, the unreplied before the
    /// replied, the one closest to expiry first. An assured connection is never evicted for a
    /// newcomer. When none qualifies, the oldest unreplied inbound half-open connection
    /// anywhere (as at the half-open limit). Returns whether there is room now.
    func makeRoom(for key: FlowKey, now: UInt64) -> Bool {
        let home = table.homePosition(of: key)
        var victim: Int?
        var victimRank: (Int, UInt64) = (Int.max, UInt64.max)
        var examined = 0
        for offset in 0..<ConnectionTracker.earlyDropSlots where examined < ConnectionTracker.earlyDropRange {
            guard let slot = table.slot(atPosition: (home + offset) & table.indexMask) else { continue }
            examined += 1
            let connection = table.connection(at: slot).pointee
            if connection.expiresAt <= now {
                // Already gone as far as lookups go; removing it is expiry, not eviction.
                destroy(slot: slot)
                return true
            }
            if connection.status.contains(.assured) { continue }
            let rank = (connection.status.contains(.seenReply) ? 1 : 0, connection.expiresAt)
            if rank < victimRank {
                victim = slot
                victimRank = rank
            }
        }
        if let victim {
            destroy(slot: victim)
            hot.pointee.counters.earlyDrops += 1
            return true
        }
        if evictOldestUnreplied(now: now) {
            hot.pointee.counters.earlyDrops += 1
            return true
        }
        return false
    }
}
