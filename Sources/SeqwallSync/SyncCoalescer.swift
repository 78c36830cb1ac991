import SeqwallCore

/// Gathers a connection's changes over a short interval so that a burst of them (a handshake,
/// a close) leaves as one record (pfsync's maxupd): a connection's record goes when it has
/// changed `maximumChanges` times or `interval` after its first unsent change, whichever comes
/// first. A connection removed before anything of it was sent is never sent at all.
public struct SyncCoalescer {
    public let interval: UInt64
    public let maximumChanges: Int

    struct Pending {
        var entry: SyncEntry
        var changes: Int
        var since: UInt64
        /// Whether the peer has heard of this connection (an earlier record went out).
        var known: Bool
    }

    private var pending: [FlowKey: Pending] = [:]
    /// Packets of each connection the peer knows of, as last sent: a refresh with the same
    /// count carries nothing new.
    private var sentPackets: [FlowKey: UInt64] = [:]
    /// Entries due now, in the order they became due.
    private var due: [SyncEntry] = []

    public init(interval: UInt64, maximumChanges: Int) {
        self.interval = interval
        self.maximumChanges = max(1, maximumChanges)
    }

    public var pendingCount: Int { pending.count }
    /// Connections the peer is believed to hold.
    public var knownCount: Int { sentPackets.count }

    public mutating func add(_ change: SyncChange, now: UInt64) {
        let key = change.connection.key
        let packets = change.connection.packetsOriginal &+ change.connection.packetsReply
        switch change.kind {
        case .removed:
            let known = pending.removeValue(forKey: key)?.known ?? (sentPackets[key] != nil)
            sentPackets.removeValue(forKey: key)
            if known { due.append(SyncEntry(.delete, change.connection)) }
            return
        case .refresh:
            guard pending[key] == nil, sentPackets[key] != packets else { return }
        case .changed:
            break
        }
        if var waiting = pending[key] {
            waiting.entry.connection = change.connection
            waiting.changes += 1
            pending[key] = waiting
        } else {
            pending[key] = Pending(entry: SyncEntry(.upsert, change.connection), changes: 1, since: now,
                                   known: sentPackets[key] != nil)
        }
        if pending[key]!.changes >= maximumChanges || change.kind == .refresh { release(key) }
    }

    private mutating func release(_ key: FlowKey) {
        guard let waiting = pending.removeValue(forKey: key) else { return }
        let connection = waiting.entry.connection
        sentPackets[key] = connection.packetsOriginal &+ connection.packetsReply
        due.append(waiting.entry)
    }

    /// Every entry due at `now`, oldest first; `flushAll` takes the pending ones too.
    public mutating func take(now: UInt64, flushAll: Bool = false) -> [SyncEntry] {
        let ready = pending.filter { flushAll || now &- $0.value.since >= interval }
            .sorted { $0.value.since < $1.value.since }
        for (key, _) in ready { release(key) }
        defer { due.removeAll(keepingCapacity: true) }
        return due
    }

    /// Forgets what the peer was believed to hold (it restarted, or a bulk replaces it all).
    public mutating func forgetPeer() { sentPackets.removeAll() }

    /// The peer removed this connection: nothing of it is pending or known.
    public mutating func forget(_ key: FlowKey) {
        pending.removeValue(forKey: key)
        sentPackets.removeValue(forKey: key)
    }

    /// The peer holds this connection as it is (we sent it in a bulk, or it sent it to us).
    public mutating func noteSent(_ connection: Connection) {
        sentPackets[connection.key] = connection.packetsOriginal &+ connection.packetsReply
    }
}
