/// Connections another seqwall node sent (docs/sync-protocol.md), put into this table by the
/// worker between batches. Nothing here records an event: a change that came from the peer
/// must not be sent back to it.
extension ConnectionTracker {
    /// Puts the peer's copy of a connection in the table: a new one as a restored connection
    /// (both sides relearning, ConnectionTracker+Restore.swift), since the peer's window data
    /// is as old as the sync's coalescing delay; a known one takes the peer's state, flags,
    /// windows and deadline, keeping its own limiter charges.
    @discardableResult
    public func applySynced(_ connection: Connection, now: UInt64) -> RestoreOutcome {
        guard let (slot, _) = table.find(connection.key) else {
            let recording = recordsEvents
            recordsEvents = false
            defer { recordsEvents = recording }
            return restore(connection, now: now)
        }
        guard connection.expiresAt > now else { return .expired }
        let stored = table.connection(at: slot)
        // The peer saw the flow opened from the other end: its orientation wins, as a new entry.
        if stored.pointee.key != connection.key {
            removeSynced(connection.key)
            return applySynced(connection, now: now)
        }
        let wasHalfOpen = stored.pointee.state.isHalfOpen
        var updated = connection
        updated.wheelTick = stored.pointee.wheelTick
        updated.halfOpenCharges = stored.pointee.halfOpenCharges
        updated.chargedRule = stored.pointee.chargedRule
        // The record says nothing of the SYN proxy: a proxied connection stays one.
        updated.proxied = stored.pointee.proxied
        if updated.key.protocolNumber == TrackedProtocol.tcpNumber {
            updated.original.flags.insert(.relearning)
            updated.reply.flags.insert(.relearning)
            updated.relearned = []
        }
        stored.pointee = updated
        if wasHalfOpen != updated.state.isHalfOpen { halfOpenCount += updated.state.isHalfOpen ? 1 : -1 }
        if wasHalfOpen && !updated.state.isHalfOpen { releaseCharges(of: &stored.pointee) }
        table.deadlineChanged(at: slot)
        return .restored
    }

    /// Makes the connection of `key` (as the peer's record orients it) proxied with the peer's
    /// SYN proxy state, so that this node translates its packets if it takes over. A state whose
    /// server has not answered never replaces one whose server has: the handshake only moves
    /// forward, and a peer's older copy must not undo it. False when the table holds no such
    /// connection (its record has not arrived yet: WorkerSync keeps the state and tries again).
    @discardableResult
    public func applySyncedProxy(_ state: SynProxyState, key: FlowKey) -> Bool {
        guard let (slot, _) = table.find(key), table.connection(at: slot).pointee.key == key else { return false }
        if table.connection(at: slot).pointee.proxied, let states = table.proxyStates, !state.mayReplace(states[slot]) {
            return true
        }
        adoptProxyState(state, slot: slot)
        return true
    }

    /// Whether any connection here may be proxied: the table keeps SYN proxy states (a
    /// policy with a `synproxy` rule, or a proxied connection restored or synced).
    public var keepsProxyStates: Bool { table.proxyStates != nil }

    /// The SYN proxy state of the connection of `key` (as the table orients it), nil when the
    /// table holds no such connection or it is not proxied: the sync sends it as soon as the
    /// connection opens or its server answers (WorkerSync.take), not only with the sweep.
    public func proxyState(of key: FlowKey) -> SynProxyState? {
        guard let states = table.proxyStates, let (slot, _) = table.find(key) else { return nil }
        let connection = table.connection(at: slot)
        guard connection.pointee.proxied, connection.pointee.key == key else { return nil }
        return states[slot]
    }

    /// `forEachConnection(from:examining:)` with each connection's slot and proxy state: the
    /// sync's sweep (WorkerSync) remembers by slot what it handed over, so that a connection
    /// with no packet since is not handed over again. A slot holds one connection until it is
    /// removed (then the last one may move into it), so the sweep checks who is there.
    public func forEachConnectionInSlot(from cursor: ConnectionCursor, examining limit: Int,
                                        _ body: (Int, Connection, SynProxyState?) -> Void) -> ConnectionCursor? {
        let states = table.proxyStates
        let next = table.forEachSlot(from: cursor.examined, examining: limit) { slot, connection in
            body(slot, connection, connection.proxied ? states?[slot] : nil)
        }
        return next >= table.capacity ? nil : ConnectionCursor(examined: next)
    }

    /// Removes a connection the peer removed, without an event.
    @discardableResult
    public func removeSynced(_ key: FlowKey) -> Bool {
        let recording = recordsEvents
        recordsEvents = false
        defer { recordsEvents = recording }
        return removeConnection(key) != nil
    }
}
