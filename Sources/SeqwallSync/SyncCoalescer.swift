import SeqwallCore

/// Gathers a connection's changes over a short interval so that a burst of them (a handshake,
/// a close) leaves as one record (pfsync's maxupd): a connection's record goes when it has
/// changed `maximumChanges` times or `interval` after its first unsent change, whichever comes
/// first. A connection removed before anything of it was sent is never sent at all.
///
/// The sync thread runs every change of every worker through here, and finding a flow key in
/// a table is most of what that costs: so one table (SyncFlowTable) holds all it knows of a
/// connection, a change costs one lookup (the entry updated in place), and a record one more
/// when it goes. The records waiting to go are in `waiting`, in the order of their first
/// unsent change, which is the order they fall due (the clock never goes back): finding what
/// is due looks at the oldest only.
public struct SyncCoalescer {
    public let interval: UInt64
    public let maximumChanges: Int

    /// What is known of one connection.
    struct Known {
        /// Its packets when its last record went, nil when the peer is not believed to hold
        /// it: a refresh with the same count carries nothing new.
        var sentPackets: UInt64?
        /// Its deadline when its last record went: past it, with no packet since (which a
        /// refresh would have sent), it has expired here too and is forgotten.
        var sentExpiresAt: UInt64 = 0
        /// Its place in `waiting` (a turn), nil when no record of it waits.
        var waitingTurn: UInt64?
    }

    /// A record that waits to go.
    struct Waiting {
        var connection: Connection
        var changes: Int
        var since: UInt64
        /// Whether the peer had heard of the connection when this record began to wait.
        var known: Bool
        /// False once the record went or the connection was removed: then skipped.
        var live: Bool
    }

    private var connections: SyncFlowTable<Known>
    /// Records in the order of their first change; `waiting[i]` is turn `firstTurn + i`.
    private var waiting: [Waiting] = []
    private var firstTurn: UInt64 = 0
    /// The first live or not yet looked at record in `waiting`.
    private var head = 0
    public private(set) var pendingCount = 0
    /// Entries due now, in the order they became due.
    private var due: [SyncEntry] = []
    /// When `connections` is next looked through for expired ones.
    private var nextForget: UInt64 = 0
    static let forgetInterval: UInt64 = 10_000_000_000

    /// Room made at the start: a busy node soon knows tens of thousands of connections (those
    /// in TIME_WAIT too, until their deadline), and growing to that rehashes every one.
    static let initialCapacity = 16384

    public init(interval: UInt64, maximumChanges: Int) {
        self.interval = interval
        self.maximumChanges = max(1, maximumChanges)
        connections = SyncFlowTable(capacity: SyncCoalescer.initialCapacity, placeholder: Known())
    }

    /// What the touches read (SyncFlowTable.touch), kept so that they are not optimized away.
    private var touched: UInt64 = 0

    /// A turn's changes, in order: their keys touched first (SyncFlowTable.touch).
    public mutating func add(contentsOf changes: [SyncChange], now: UInt64) {
        var sink: UInt64 = 0
        for change in changes { sink ^= connections.touch(change.connection.key) }
        touched ^= sink
        for change in changes { add(change, now: now) }
    }

    public mutating func add(_ change: SyncChange, now: UInt64) {
        let key = change.connection.key
        if change.kind == .removed {
            guard let known = connections.remove(key) else { return }
            var peerHolds = known.sentPackets != nil
            if let turn = known.waitingTurn {
                peerHolds = waiting[position(of: turn)].known
                drop(turn)
            }
            if peerHolds { due.append(SyncEntry(.delete, change.connection)) }
            return
        }
        let turn = firstTurn &+ UInt64(waiting.count)
        // One lookup: the connection's entry is found, or made, and updated in place.
        let index = connections.findOrInsert(key, Known())
        switch SyncCoalescer.note(change, in: &connections[index], turn: turn, atOnce: maximumChanges == 1) {
        case .nothing:
            return
        case .sent:
            due.append(SyncEntry(.upsert, change.connection))
        case .waits(let peerHolds):
            waiting.append(Waiting(connection: change.connection, changes: 1, since: now, known: peerHolds,
                                   live: true))
            pendingCount += 1
        case .replaces(let waitingTurn):
            // Only the latest state goes: this change replaces the waiting one.
            let slot = position(of: waitingTurn)
            waiting[slot].connection = change.connection
            waiting[slot].changes += 1
            if waiting[slot].changes >= maximumChanges { release(slot, at: index) }
        case .catchesUp(let waitingTurn):
            // The sweep's look is as new as the waiting record or newer (packets after its
            // change): the record goes with it, so that a worker's sweep, which does not hand
            // a connection over again until its packets move (WorkerSync), has been heard.
            let slot = position(of: waitingTurn)
            let waitingPackets = waiting[slot].connection.packetsOriginal &+ waiting[slot].connection.packetsReply
            if change.connection.packetsOriginal &+ change.connection.packetsReply >= waitingPackets {
                waiting[slot].connection = change.connection
            }
        }
    }

    /// What a change (not a removal) does, given what is known of its connection.
    enum Decision {
        case nothing
        /// Its record goes now.
        case sent
        /// Its record waits, from now, at the turn given; whether the peer holds it.
        case waits(peerHolds: Bool)
        /// It replaces the record waiting at this turn.
        case replaces(UInt64)
        /// A refresh while a record waits at this turn: it brings the record up to date (not a
        /// change of its own).
        case catchesUp(UInt64)
    }

    private static func note(_ change: SyncChange, in known: inout Known, turn: UInt64, atOnce: Bool) -> Decision {
        if let waitingTurn = known.waitingTurn {
            return change.kind == .refresh ? .catchesUp(waitingTurn) : .replaces(waitingTurn)
        }
        if change.kind == .refresh || atOnce {
            // A refresh goes at once (the sweep paces them), and only when packets moved.
            let packets = change.connection.packetsOriginal &+ change.connection.packetsReply
            if change.kind == .refresh && known.sentPackets == packets { return .nothing }
            known.sentPackets = packets
            known.sentExpiresAt = change.connection.expiresAt
            return .sent
        }
        known.waitingTurn = turn
        return .waits(peerHolds: known.sentPackets != nil)
    }

    private func position(of turn: UInt64) -> Int { Int(turn &- firstTurn) }

    /// The record at `slot` goes; `index` is its connection's.
    private mutating func release(_ slot: Int, at index: Int) {
        let connection = waiting[slot].connection
        waiting[slot].live = false
        pendingCount -= 1
        connections[index].waitingTurn = nil
        connections[index].sentPackets = connection.packetsOriginal &+ connection.packetsReply
        connections[index].sentExpiresAt = connection.expiresAt
        due.append(SyncEntry(.upsert, connection))
    }

    private mutating func drop(_ turn: UInt64) {
        waiting[position(of: turn)].live = false
        pendingCount -= 1
    }

    /// Every entry due at `now`, oldest first; `flushAll` takes the pending ones too.
    public mutating func take(now: UInt64, flushAll: Bool = false) -> [SyncEntry] {
        // The keys of the records that go, touched first as in add(contentsOf:).
        var sink: UInt64 = 0, ahead = head
        while ahead < waiting.count && (flushAll || now &- waiting[ahead].since >= interval) {
            if waiting[ahead].live { sink ^= connections.touch(waiting[ahead].connection.key) }
            ahead += 1
        }
        touched ^= sink
        while head < waiting.count {
            if waiting[head].live {
                guard flushAll || now &- waiting[head].since >= interval else { break }
                if let index = connections.find(waiting[head].connection.key) {
                    release(head, at: index)
                } else {
                    drop(firstTurn &+ UInt64(head))
                }
            }
            head += 1
        }
        // The records looked at are dropped once they are most of the array, so its storage
        // is reused rather than grown.
        if head == waiting.count {
            waiting.removeAll(keepingCapacity: true)
            firstTurn &+= UInt64(head)
            head = 0
        } else if head > 1024 && head * 2 > waiting.count {
            waiting.removeFirst(head)
            firstTurn &+= UInt64(head)
            head = 0
        }
        if now >= nextForget {
            nextForget = now &+ SyncCoalescer.forgetInterval
            forgetExpired(now: now)
        }
        defer { due.removeAll(keepingCapacity: true) }
        return due
    }

    /// Each node expires connections on its own clock and expiry is not synced: without this,
    /// what the peer is believed to hold would grow with every connection ever sent.
    private mutating func forgetExpired(now: UInt64) {
        connections.update { known in known.waitingTurn != nil || known.sentExpiresAt > now }
    }

    /// Forgets what the peer was believed to hold (it restarted, or a bulk replaces it all).
    public mutating func forgetPeer() {
        connections.update { known in
            known.sentPackets = nil
            return known.waitingTurn != nil
        }
    }

    /// The peer removed this connection: nothing of it is pending or known.
    public mutating func forget(_ key: FlowKey) {
        guard let known = connections.remove(key) else { return }
        if let turn = known.waitingTurn { drop(turn) }
    }

    /// The peer holds this connection as it is (we sent it in a bulk, or it sent it to us).
    public mutating func noteSent(_ connection: Connection) {
        let index = connections.findOrInsert(connection.key, Known())
        connections[index].sentPackets = connection.packetsOriginal &+ connection.packetsReply
        connections[index].sentExpiresAt = connection.expiresAt
    }
}
