/// Per-source connection limits, `limit conn N per-source` (pf's max-src-conn) and `limit
/// conn-rate N/DURATION per-source` (pf's max-src-conn-rate), and what happens to a source that
/// goes over (`overload`, seqwall.rules(5)).
///
/// A connection is counted when its handshake completes, as pf counts it (pf_src_connlimit,
/// called from pf_tcp_track_full once both sides are established): a source that has answered
/// the SYN-ACK owns its address, so spoofed SYNs can neither use up another address's count
/// nor get it added to an overload table. A SYN only marks the connection with the scopes it
/// is to be counted in (`admitCounting`); the check and the count come with the packet that
/// takes it out of half-open (`handshakeCompleted`), which track() already singles out for
/// the half-open counts, so established traffic pays nothing. A connection that would go over
/// is removed there and its packet dropped (`conn-limit`, `conn-rate`); with `overload`, its
/// source goes into `overloads` for the owner to add to the table.
extension ConnectionTracker {
    /// Marks a new connection with the scopes it is to be counted in once established: the
    /// global limits for an inbound connection, and the limits of the rule that passed it.
    func admitCounting(_ connection: inout Connection, ruleIndex: Int?) {
        if connection.direction == .inbound && !limiter.globalConnection.isEmpty {
            connection.halfOpenCharges.insert(.countsSource)
        }
        if let ruleIndex, limiter.ruleIDs[ruleIndex] != 0 {
            let id = limiter.ruleIDs[ruleIndex]
            if limiter.ruleConnection(id) != nil {
                connection.halfOpenCharges.insert(.countsRule)
                connection.chargedRule = id
            }
        }
    }

    /// A connection holding charges changed state: out of half-open, it gives back its
    /// half-open counts and takes its established ones (`handshakeCompleted`); at its end, it
    /// gives back everything. Returns why it must go instead, or nil.
    func chargedStateChanged(slot: Int, from oldState: TCPState, to newState: TCPState, now: UInt64) -> DropReason? {
        if table.connection(at: slot).pointee.halfOpenCharges.contains(.synProxyPassed) {
            synProxyPassedStateChanged(slot: slot, to: newState)
        }
        if oldState.isHalfOpen && !newState.isHalfOpen { return handshakeCompleted(slot: slot, now: now) }
        if ConnectionTracker.endsCount(newState) { releaseCharges(of: &table.connection(at: slot).pointee) }
        return nil
    }

    /// The connection in `slot` has just left half-open: gives back its half-open counts and,
    /// when it is to be counted, checks its source against the connection limits and charges
    /// it. Returns why it must go instead (it is then removed), or nil.
    func handshakeCompleted(slot: Int, now: UInt64) -> DropReason? {
        let connection = table.connection(at: slot)
        releaseHalfOpenCharges(of: &connection.pointee)
        let counts = connection.pointee.halfOpenCharges.intersection(.counting)
        guard !counts.isEmpty else { return nil }
        connection.pointee.halfOpenCharges.subtract(.counting)
        // Out of half-open straight to its end (an RST in SYN_RECV): never established.
        if ConnectionTracker.endsCount(connection.pointee.state) { return nil }
        guard let established = limiter.established else { return nil }
        let prefix = SourceLimiter.prefix(of: connection.pointee.key.source)
        let rule = connection.pointee.chargedRule
        var sourceSlot: Int?
        var ruleSlot: Int?
        // Global before rule, as the half-open checks go from the source to its rule.
        if counts.contains(.countsSource) {
            switch check(established, prefix, scope: 0, keeping: nil, now: now) {
            case .within(let entry): sourceSlot = entry
            case .over(let limit, let reason): return cut(slot: slot, over: limit, reason: reason, scope: 0)
            case .gone: break
            }
        }
        if counts.contains(.countsRule) {
            switch check(established, prefix, scope: rule, keeping: sourceSlot, now: now) {
            case .within(let entry): ruleSlot = entry
            case .over(let limit, let reason): return cut(slot: slot, over: limit, reason: reason, scope: rule)
            case .gone: break
            }
        }
        // Entries never move (SourceLimiter is set-associative): the slots found are the ones to charge.
        if let sourceSlot {
            established.charge(slot: sourceSlot)
            connection.pointee.halfOpenCharges.insert(.establishedSource)
        }
        if let ruleSlot {
            established.charge(slot: ruleSlot)
            connection.pointee.halfOpenCharges.insert(.establishedRule)
        }
        return nil
    }

    private enum Check {
        /// Within the limits: the entry to charge.
        case within(Int)
        case over(SourceConnectionLimit?, DropReason)
        /// The scope has no limits any more (a reload took the rule away): not counted.
        case gone
    }

    /// One scope's limits for `prefix`: the count first, which changes nothing, then the rate,
    /// which spends a token.
    private func check(_ established: SourceLimiter, _ prefix: IPAddress, scope: UInt32, keeping kept: Int?,
                       now: UInt64) -> Check {
        guard let limits = scope == 0 ? limiter.globalConnection : limiter.ruleConnection(scope) else { return .gone }
        guard !limits.isEmpty else { return .gone }
        // A set full of entries that must stay fails closed, as the half-open limits do; the
        // source is not to blame, so it is not overloaded.
        guard let entry = established.slot(for: prefix, scope, now: now, keeping: kept) else {
            return .over(nil, .connLimit)
        }
        if let count = limits.count, Int(established.entries[entry].halfOpen) >= count.count {
            return .over(count, .connLimit)
        }
        if let rate = limits.rate,
           !established.takeToken(slot: entry, now: now, interval: limits.rateInterval, tolerance: limits.rateTolerance) {
            return .over(rate, .connRate)
        }
        return .within(entry)
    }

    /// Whether a connection in `state` is over, as far as its established count goes: TIME_WAIT
    /// and CLOSE (after an RST) carry no more data, while a half-closed connection still does.
    /// The count is given back at that transition rather than when the entry is removed, so a
    /// source that closes its connections properly gets its room back at once.
    @inline(__always)
    static func endsCount(_ state: TCPState) -> Bool {
        state == .timeWait || state == .close
    }

    /// Removes the connection that went over `limit`, and hands its source on when the limit
    /// has an overload table.
    private func cut(slot: Int, over limit: SourceConnectionLimit?, reason: DropReason, scope: UInt32) -> DropReason {
        let source = table.connection(at: slot).pointee.key.source
        destroy(slot: slot)
        guard let overload = limit?.overload else { return reason }
        let prefix = SourceLimiter.prefix(of: source)
        let event = OverloadEvent(source: IPNetwork(address: prefix, prefixLength: source.isIPv4 ? 32 : 64),
                                  tableIndex: Int32(overload.table.index),
                                  tableNameHash: OverloadEvent.hash(ofTableName: overload.table.name),
                                  expireSeconds: overload.expireSeconds ?? 0, flush: overload.flush, scope: scope,
                                  reason: reason)
        if overloads.count < overloads.capacity {
            overloads.append(event)
            hot.pointee.counters.overloads += 1
        } else {
            hot.pointee.counters.overloadsLost += 1
        }
        return reason
    }

    /// Gives back the established counts a connection holds (destroy(slot:), by way of
    /// releaseCharges: every removal).
    func releaseEstablishedCharges(of connection: inout Connection) {
        guard let established = limiter.established else { return }
        let prefix = SourceLimiter.prefix(of: connection.key.source)
        if connection.halfOpenCharges.contains(.establishedSource) { established.release(prefix, scope: 0) }
        if connection.halfOpenCharges.contains(.establishedRule) { established.release(prefix, scope: connection.chargedRule) }
        connection.halfOpenCharges.subtract(.established)
    }

    /// Charges a restored connection to the counts it would hold had it been opened under
    /// the current policy (the state file keeps no rule ids), without checking their limits:
    /// established now, or to be counted when its handshake completes.
    func chargeRestoredCounting(_ connection: inout Connection, ruleIndex: Int?, now: UInt64) {
        guard limiter.limitsConnections else { return }
        admitCounting(&connection, ruleIndex: ruleIndex)
        guard !connection.state.isHalfOpen, let established = limiter.established else { return }
        let counts = connection.halfOpenCharges.intersection(.counting)
        connection.halfOpenCharges.subtract(.counting)
        let prefix = SourceLimiter.prefix(of: connection.key.source)
        var sourceSlot: Int?
        if counts.contains(.countsSource), let slot = established.slot(for: prefix, 0, now: now) {
            established.charge(slot: slot)
            connection.halfOpenCharges.insert(.establishedSource)
            sourceSlot = slot
        }
        if counts.contains(.countsRule),
           let slot = established.slot(for: prefix, connection.chargedRule, now: now, keeping: sourceSlot) {
            established.charge(slot: slot)
            connection.halfOpenCharges.insert(.establishedRule)
        }
    }

    // MARK: For the owner

    /// Removes the connections an overload with `flush` cuts: those of the event's source
    /// counted under its limit (for a rule's limit, those the rule let in, pending or
    /// established; for a global one, every inbound connection of the source). Removal sends
    /// nothing to either end, as `conntrack delete` does not. Returns how many.
    @discardableResult
    public func removeConnections(overloadedBy event: OverloadEvent) -> Int {
        let marks: HalfOpenCharges = [.countsRule, .establishedRule, .rule]
        return removeConnections { connection in
            guard event.source.contains(connection.key.source) else { return false }
            if event.scope == 0 { return connection.direction == .inbound }
            return connection.chargedRule == event.scope && !connection.halfOpenCharges.isDisjoint(with: marks)
        }
    }

    /// Established connections counted for `source` (an address; IPv6 counts by /64) under the
    /// global limits (`rule` nil) or under the rule at that index of the current policy.
    public func establishedCount(of source: IPAddress, rule: Int? = nil) -> Int {
        guard let established = limiter.established else { return 0 }
        let scope = rule.map { limiter.ruleIDs[$0] } ?? 0
        return established.halfOpen(SourceLimiter.prefix(of: source), scope: scope)
    }

    /// How full the established-count table is at `now`; nil when no connection limit was ever set.
    public func establishedTableUsage(now: UInt64) -> SourceTableUsage? {
        limiter.established.map { SourceTableUsage(active: $0.activeEntries(now: now), capacity: $0.capacity,
                                                   evictions: $0.evictions) }
    }
}
