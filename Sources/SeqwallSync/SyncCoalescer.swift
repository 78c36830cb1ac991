import SeqwallCore

/// Gathers a connection's changes over a short interval so that a burst of them (a handshake,
/// a close) leaves as one record (pfsync's maxupd): a connection's record goes when it has
/// changed `maximumChanges` times or `interval` after its first unsent change, whichever comes
/// first. A connection removed before anything of it was sent is never sent at all, nor is a
/// TCP connection already closed (TIME_WAIT or CLOSE) when its first record would go: the peer
/// needs nothing of a connection that ended before it heard of it (`isClosedUnheard`).
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

    /// What is known of one connection: 16 bytes, so that with its key and tag it fills one
    /// cache line of the table (SyncFlowTable).
    struct Known {
        static let notSent = UInt64.max
        /// Its packets when its last record went, `notSent` when the peer is not believed to
        /// hold it: a refresh with the same count carries nothing new.
        var sentPackets: UInt64 = Known.notSent
        /// Its deadline when its last record went (SyncCoalescer.expiryUnits): past it, with no
        /// packet since (which a refresh would have sent), it has expired here too and is
        /// forgotten.
        var sentExpiry: UInt32 = 0
        /// Its place in `waiting`: the turn's low 31 bits, shifted left, bit 0 set; 0 when no
        /// record of it waits. `waiting` never holds 2^31 records (at most one live record a
        /// connection, and what is looked at is dropped), so 31 bits tell the turns apart.
        var waitingMark: UInt32 = 0

        var peerHolds: Bool { sentPackets != Known.notSent }
        var isWaiting: Bool { waitingMark != 0 }
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
        /// The connection's SYN proxy state, held to go right after the record (`hold`).
        var proxy: SynProxyState? = nil
    }

    private var connections: SyncFlowTable<Known>
    /// Records in the order of their first change; `waiting[i]` is turn `firstTurn + i`.
    private var waiting: [Waiting] = []
    private var firstTurn: UInt64 = 0
    /// The first live or not yet looked at record in `waiting`.
    private var head = 0
    public private(set) var pendingCount = 0
    /// Connections that were over before the peer heard of them, not sent (`isClosedUnheard`).
    public private(set) var closedUnsent: UInt64 = 0
    /// Entries due now, in the order they became due.
    private var due: [SyncEntry] = []
    /// The held SYN proxy states of the records that went (`takeProxies`).
    private var dueProxies: [SyncProxyEntry] = []
    /// When `connections` is next looked through for expired ones.
    private var nextForget: UInt64 = 0
    static let forgetInterval: UInt64 = 10_000_000_000

    /// Room made at the start: a busy node soon knows tens of thousands of connections (those
    /// in TIME_WAIT too, until their deadline), and growing to that rehashes every one.
    static let initialCapacity = 16384

    /// `regions`: where its table's large regions come from (SyncFlowTable.Storage).
    public init(interval: UInt64, maximumChanges: Int, regions: RegionProvider? = nil) {
        self.interval = interval
        self.maximumChanges = max(1, maximumChanges)
        connections = SyncFlowTable(capacity: SyncCoalescer.initialCapacity, placeholder: Known(), regions: regions)
    }

    /// What the touches read (SyncFlowTable.touch), kept so that they are not optimized away.
    private var touched: UInt64 = 0

    /// The tags (SyncFlowTable.tag) of the keys being touched, kept for their lookups: each
    /// key is hashed once.
    private var tags: [UInt32] = []

    /// A turn's changes, in order: their keys touched first (SyncFlowTable.touch).
    public mutating func add(contentsOf changes: [SyncChange], now: UInt64) {
        changes.withUnsafeBufferPointer { add(contentsOf: $0, now: now) }
    }

    /// As `add(contentsOf:)` for an array, for changes read where they lie (a worker's ring,
    /// SyncService): not copied into an array first.
    public mutating func add(contentsOf changes: UnsafeBufferPointer<SyncChange>, now: UInt64) {
        var sink: UInt64 = 0
        tags.removeAll(keepingCapacity: true)
        for change in changes {
            let tag = connections.tag(of: change.connection.key)
            tags.append(tag)
            sink ^= connections.touch(tag: tag)
        }
        touched ^= sink
        for index in changes.indices { add(changes[index], now: now, tag: tags[index]) }
    }

    public mutating func add(_ change: SyncChange, now: UInt64) {
        add(change, now: now, tag: connections.tag(of: change.connection.key))
    }

    /// `tag` is the table's tag of the change's key.
    private mutating func add(_ change: SyncChange, now: UInt64, tag: UInt32) {
        let key = change.connection.key
        if change.kind == .removed {
            guard let known = connections.remove(key, tag: tag) else { return }
            var peerHolds = known.peerHolds
            if known.isWaiting {
                let slot = position(of: known.waitingMark)
                peerHolds = waiting[slot].known
                drop(slot)
            }
            if peerHolds { due.append(SyncEntry(.delete, SyncCoalescer.deletion(of: change.connection))) }
            return
        }
        let turn = firstTurn &+ UInt64(waiting.count)
        // One lookup: the connection's entry is found, or made, and updated in place.
        let index = connections.findOrInsert(key, tag: tag, Known())
        switch SyncCoalescer.note(change, in: &connections[index], turn: turn, firstTurn: firstTurn,
                                  atOnce: maximumChanges == 1) {
        case .nothing:
            return
        case .sent:
            due.append(SyncEntry(.upsert, change.connection))
        case .waits(let peerHolds):
            waiting.append(Waiting(connection: change.connection, changes: 1, since: now, known: peerHolds,
                                   live: true))
            pendingCount += 1
        case .replaces(let slot):
            // Only the latest state goes: this change replaces the waiting one.
            waiting[slot].connection = change.connection
            waiting[slot].changes += 1
            if waiting[slot].changes >= maximumChanges { release(slot, at: index) }
        case .catchesUp(let slot):
            // The sweep's look is as new as the waiting record or newer (packets after its
            // change): the record goes with it, so that a worker's sweep, which does not hand
            // a connection over again until its packets move (WorkerSync), has been heard.
            let waitingPackets = waiting[slot].connection.packetsOriginal &+ waiting[slot].connection.packetsReply
            if change.connection.packetsOriginal &+ change.connection.packetsReply >= waitingPackets {
                waiting[slot].connection = change.connection
            }
        }
    }

    /// What a delete carries (docs/sync-protocol.md, Bodies): the connection's tuple, protocol
    /// and direction, every other field zero, since a receiver removes by tuple. Under port
    /// reuse every new connection on a tuple in TIME_WAIT costs a delete as well as its record
    /// (BENCHMARKS.md, State sync end to end), and a compact delete of a whole record is about
    /// as long as the record. Opened at the latest instant, it is written with an age of 0.
    static func deletion(of connection: Connection) -> Connection {
        var deleted = Connection(key: connection.key, direction: connection.direction)
        deleted.createdAt = .max
        return deleted
    }

    /// What a change (not a removal) does, given what is known of its connection.
    enum Decision {
        case nothing
        /// Its record goes now.
        case sent
        /// Its record waits, from now, at the turn given; whether the peer holds it.
        case waits(peerHolds: Bool)
        /// It replaces the record waiting at this position of `waiting`.
        case replaces(Int)
        /// A refresh while a record waits at this position: it brings the record up to date
        /// (not a change of its own).
        case catchesUp(Int)
    }

    private static func note(_ change: SyncChange, in known: inout Known, turn: UInt64, firstTurn: UInt64,
                             atOnce: Bool) -> Decision {
        if known.isWaiting {
            let slot = position(of: known.waitingMark, firstTurn: firstTurn)
            return change.kind == .refresh ? .catchesUp(slot) : .replaces(slot)
        }
        if change.kind == .refresh || atOnce {
            // A refresh goes at once (the sweep paces them), and only when packets moved.
            let packets = change.connection.packetsOriginal &+ change.connection.packetsReply
            if change.kind == .refresh && known.sentPackets == packets { return .nothing }
            if isClosedUnheard(change.connection, peerHolds: known.peerHolds) { return .nothing }
            known.sentPackets = packets
            known.sentExpiry = SyncCoalescer.expiryUnits(change.connection.expiresAt)
            return .sent
        }
        known.waitingMark = SyncCoalescer.mark(of: turn)
        return .waits(peerHolds: known.peerHolds)
    }

    /// Whether a record would tell the peer only of a connection that is over: a TCP connection
    /// closed (TIME_WAIT, or CLOSE after a reset) that the peer has not heard of. Not sent: a
    /// node taking over carries live connections, and a connection that opened and closed
    /// within the coalescing interval (connrate's, a health check's, an HTTP/1.0 fetch's)
    /// would otherwise cost a record, and under port reuse a delete too (BENCHMARKS.md, State
    /// sync end to end). What the peer then lacks is that connection's TIME_WAIT entry: a
    /// straggler of it (a FIN sent again because the last ACK was lost beyond this node) meets
    /// a node that took over with no entry, as it would a node that restarted without a state
    /// file (docs/ha.md, Limits). A new SYN on the tuple opens a connection
    /// either way. A connection the peer holds is always sent its close.
    static func isClosedUnheard(_ connection: Connection, peerHolds: Bool) -> Bool {
        !peerHolds && connection.key.protocolNumber == TrackedProtocol.tcpNumber
            && (connection.state == .timeWait || connection.state == .close)
    }

    private static func mark(of turn: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: turn) << 1 | 1 }

    /// The position in `waiting` of the record a Known's `waitingMark` names.
    private func position(of mark: UInt32) -> Int { SyncCoalescer.position(of: mark, firstTurn: firstTurn) }

    private static func position(of mark: UInt32, firstTurn: UInt64) -> Int {
        Int(((mark >> 1) &- UInt32(truncatingIfNeeded: firstTurn)) & 0x7FFF_FFFF)
    }

    /// A deadline in units of 2^30 ns (about a second), rounded up, so that a Known is 16
    /// bytes: a connection is forgotten at most that much after its deadline, never before.
    static func expiryUnits(_ deadline: UInt64) -> UInt32 {
        UInt32(clamping: (deadline >> 30) &+ (deadline & ((1 << 30) - 1) == 0 ? 0 : 1))
    }

    /// The record at `slot` goes, unless it is of a connection that is over and the peer has not
    /// heard of (`isClosedUnheard`); `index` is its connection's.
    private mutating func release(_ slot: Int, at index: Int) {
        let connection = waiting[slot].connection
        waiting[slot].live = false
        pendingCount -= 1
        connections[index].waitingMark = 0
        // Either says the peer heard of it: the record's start, or a bulk since (noteSent).
        let peerHolds = waiting[slot].known || connections[index].peerHolds
        if SyncCoalescer.isClosedUnheard(connection, peerHolds: peerHolds) {
            // Still unheard of: removed later, it costs no delete; its entry is forgotten at
            // the next look for expired ones (its deadline as sent is 0).
            closedUnsent &+= 1
            return
        }
        if let proxy = waiting[slot].proxy { dueProxies.append(SyncProxyEntry(key: connection.key, state: proxy)) }
        connections[index].sentPackets = connection.packetsOriginal &+ connection.packetsReply
        connections[index].sentExpiry = SyncCoalescer.expiryUnits(connection.expiresAt)
        due.append(SyncEntry(.upsert, connection))
    }

    private mutating func drop(_ slot: Int) {
        waiting[slot].live = false
        pendingCount -= 1
    }

    /// Holds a proxied connection's SYN proxy state to go right after the connection's record
    /// when one waits (`takeProxies`): the peer can apply a state only to a connection it holds
    /// (ConnectionTracker.applySyncedProxy), and a record the peer is not sent
    /// (`isClosedUnheard`), or a connection removed first, takes its state with it. False when
    /// no record of it waits: the state goes at once. A state whose server has not answered
    /// never replaces a held one whose server has (the handshake only moves forward).
    public mutating func hold(_ entry: SyncProxyEntry) -> Bool {
        guard let index = connections.find(entry.key), connections[index].isWaiting else { return false }
        let slot = position(of: connections[index].waitingMark)
        if let held = waiting[slot].proxy, !entry.state.mayReplace(held) { return true }
        waiting[slot].proxy = entry.state
        return true
    }

    /// The held SYN proxy states (`hold`) of the records `take` returned, to go after them.
    public mutating func takeProxies() -> [SyncProxyEntry] {
        defer { dueProxies.removeAll(keepingCapacity: true) }
        return dueProxies
    }

    /// Every entry due at `now`, oldest first; `flushAll` takes the pending ones too.
    public mutating func take(now: UInt64, flushAll: Bool = false) -> [SyncEntry] {
        // The keys of the records that go, touched first as in add(contentsOf:).
        // Their tags in `tags` from `first` on, 0 for a record that is not live.
        var sink: UInt64 = 0, ahead = head
        let first = head
        tags.removeAll(keepingCapacity: true)
        while ahead < waiting.count && (flushAll || now &- waiting[ahead].since >= interval) {
            var tag: UInt32 = 0
            if waiting[ahead].live {
                tag = connections.tag(of: waiting[ahead].connection.key)
                sink ^= connections.touch(tag: tag)
            }
            tags.append(tag)
            ahead += 1
        }
        touched ^= sink
        while head < waiting.count {
            if waiting[head].live {
                guard flushAll || now &- waiting[head].since >= interval else { break }
                let key = waiting[head].connection.key
                let known = head - first < tags.count ? tags[head - first] : 0
                if let index = connections.find(key, tag: known != 0 ? known : connections.tag(of: key)) {
                    release(head, at: index)
                } else {
                    drop(head)
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
        let unitsNow = UInt32(clamping: now >> 30)
        connections.update { known in known.isWaiting || known.sentExpiry > unitsNow }
    }

    /// Forgets what the peer was believed to hold (it restarted, or a bulk replaces it all).
    public mutating func forgetPeer() {
        connections.update { known in
            known.sentPackets = Known.notSent
            return known.isWaiting
        }
    }

    /// The peer removed this connection: nothing of it is pending or known.
    public mutating func forget(_ key: FlowKey) {
        guard let known = connections.remove(key) else { return }
        if known.isWaiting { drop(position(of: known.waitingMark)) }
    }

    /// The peer holds this connection as it is (we sent it in a bulk, or it sent it to us).
    public mutating func noteSent(_ connection: Connection) {
        let index = connections.findOrInsert(connection.key, Known())
        connections[index].sentPackets = connection.packetsOriginal &+ connection.packetsReply
        connections[index].sentExpiry = SyncCoalescer.expiryUnits(connection.expiresAt)
    }
}
