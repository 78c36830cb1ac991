/// Connections put back from a state file (StateSnapshot) when seqwall starts again; the
/// window check lets their data catch up with what moved while seqwall was down
/// (TCPWindow+Relearning.swift).
extension ConnectionTracker {
    /// What became of one connection offered by `restore`.
    public enum RestoreOutcome: Equatable, Sendable {
        case restored
        /// Its deadline had passed.
        case expired
        /// The table already holds its tuple (the file listed it twice).
        case duplicate
        /// The table is full (the new `limit states` is smaller than the old table).
        case tableFull
    }

    /// Puts a connection from a state file back into the table, as it was, with both sides
    /// relearning (TCPWindow). `connection.expiresAt` and `createdAt` must already be on this
    /// tracker's clock (StateSnapshot.decode ages them). A restored half-open connection
    /// counts toward the half-open limits as a new one would: in the half-open count, in its
    /// source's count and in the count of the rule that passes it under the current policy
    /// (rule ids are per process, so the file cannot say), and, never answered, as a
    /// candidate for eviction. Restoring checks no limit: these connections were admitted
    /// before, as a reload keeps connections whatever the new limits. `proxy`: a proxied
    /// connection's SYN proxy state, which makes it proxied again (its packets translated).
    @discardableResult
    public func restore(_ connection: Connection, proxy: SynProxyState? = nil, now: UInt64) -> RestoreOutcome {
        guard connection.expiresAt > now else { return .expired }
        guard table.find(connection.key) == nil else { return .duplicate }
        guard !table.isFull else { return .tableFull }
        var restored = connection
        // Proxied only with a state to translate by: the flag alone would drop its packets.
        restored.proxied = false
        if restored.key.protocolNumber == TrackedProtocol.tcpNumber {
            restored.original.flags.insert(.relearning)
            restored.reply.flags.insert(.relearning)
            restored.relearned = []
        }
        restored.halfOpenCharges = []
        restored.chargedRule = 0
        if restored.state.isHalfOpen { chargeRestored(&restored, now: now) }
        if limiter.limitsConnections, restored.key.protocolNumber == TrackedProtocol.tcpNumber {
            chargeRestoredCounting(&restored, ruleIndex: passingRule(of: restored), now: now)
        }
        guard let slot = table.insert(restored) else {
            releaseCharges(of: &restored)
            return .tableFull
        }
        if let proxy { adoptProxyState(proxy, slot: slot) }
        if restored.state.isHalfOpen {
            halfOpenCount += 1
            if !restored.status.contains(.seenReply) { rememberUnreplied(restored) }
        }
        return .restored
    }

    /// Charges a restored half-open connection to the per-source counters `admit` would have
    /// charged it to, without checking their limits. A counter that finds no room in the
    /// source table is not charged, and so never released.
    func chargeRestored(_ connection: inout Connection, now: UInt64) {
        guard let sources = limiter.sources else { return }
        limiter.now = now
        let prefix = SourceLimiter.prefix(of: connection.key.source)
        var sourceSlot: Int?
        if connection.direction == .inbound, let slot = sources.slot(for: prefix, 0, now: now) {
            sources.charge(slot: slot)
            connection.halfOpenCharges.insert(.source)
            sourceSlot = slot
        }
        if let ruleIndex = passingRule(of: connection), policy.rules[ruleIndex].halfOpenPerSource != nil,
           let slot = sources.slot(for: prefix, limiter.ruleIDs[ruleIndex], now: now, keeping: sourceSlot) {
            sources.charge(slot: slot)
            connection.halfOpenCharges.insert(.rule)
            connection.chargedRule = limiter.ruleIDs[ruleIndex]
        }
    }

    /// The rule of the current policy that passes a restored connection, if a rule does.
    func passingRule(of connection: Connection) -> Int? {
        let decision = policy.decide(direction: connection.direction, source: connection.key.source,
                                     destination: connection.key.destination,
                                     destinationPort: connection.key.destinationPort)
        return decision.action == .pass ? decision.ruleIndex : nil
    }
}
