import SeqwallCore
import SeqwallSync

/// A worker's side of the state sync (docs/ha.md): its table's changes go into a ring the
/// sync thread drains, so the worker never locks, calls the kernel or allocates for them; and
/// a sweep hands over a slice of its connections now and then, so the peer's deadlines and
/// windows keep up with connections whose state does not change.
final class WorkerSync: @unchecked Sendable {
    let ring: SingleProducerRing<SyncChange>
    /// Proxied connections' SYN proxy states, as they open and as the sweep passes them, for
    /// the peer to translate them after a failover (SyncSession.sendProxies).
    let proxyRing: SingleProducerRing<SyncProxyEntry>
    /// How often the sweep takes its next slice, and the slots it examines in a slice: the
    /// whole table in about `sweepPeriod`, within the ring's room.
    static let sliceInterval: UInt64 = 100_000_000
    static let sweepPeriod: UInt64 = 2_000_000_000
    private var cursor: ConnectionCursor? = .start
    private var nextSlice: UInt64 = 0
    /// By table slot, what the sweep last handed over from it (SyncSweepMark): a connection
    /// in TIME_WAIT is looked at many times and has nothing new after its first.
    private var marks: [SyncSweepMark] = []
    /// The peer's proxy states whose connections have not arrived yet (`apply`), with when
    /// each stops being tried. Touched by the worker's thread only.
    private var waitingProxies: [(entry: SyncProxyEntry, until: UInt64)] = []
    static let waitingLimit = 4096
    /// Seeded as the tables' own: the flows are chosen by whoever sends packets.
    private let hasher = FlowHasher()

    init(capacity: Int = 65536) {
        ring = SingleProducerRing(capacity: capacity)
        proxyRing = SingleProducerRing(capacity: capacity / 2)
    }

    /// The table's recorded events, as changes: opened or changed, and removed. Called before
    /// expiry runs: a connection expiring is not sent (each node expires on its own clock).
    /// A proxied connection's SYN proxy state goes too when it opens (the cookie's ACK) and
    /// when its server answers (its SYN_RECV; the state does not change after): the peer
    /// cannot translate the connection without it, and the sweep would bring it only up to
    /// `sweepPeriod` later, so a failover in between would stall every connection opened since
    /// (docs/ha.md). The sweep still makes up for a state lost on the way.
    func take(_ events: ConnectionEventBuffer, from tracker: ConnectionTracker) {
        let proxying = tracker.keepsProxyStates
        for index in 0..<events.count {
            let event = events[index]
            ring.push(SyncChange(event.kind == .destroy ? .removed : .changed, event.connection))
            guard proxying, event.connection.proxied, event.kind == .new || event.connection.state == .synRecv,
                  let state = tracker.proxyState(of: event.connection.key) else { continue }
            proxyRing.push(SyncProxyEntry(key: event.connection.key, state: state))
        }
        ring.addLost(events.lost)
    }

    /// The sweep's next slice, when it is due.
    func sweep(_ tracker: ConnectionTracker, now: UInt64) {
        guard now >= nextSlice else { return }
        nextSlice = now &+ WorkerSync.sliceInterval
        let slices = Int(WorkerSync.sweepPeriod / WorkerSync.sliceInterval)
        let budget = min(ring.capacity / 2, max(1024, tracker.connectionLimit / slices))
        cursor = tracker.forEachConnectionInSlot(from: cursor ?? .start, examining: budget) { slot, connection, proxy in
            guard connection.expiresAt > now else { return }
            if let proxy { proxyRing.push(SyncProxyEntry(key: connection.key, state: proxy)) }
            let mark = SyncSweepMark(fingerprint: hasher.hash(connection.key), createdAt: connection.createdAt,
                                     packets: connection.packetsOriginal &+ connection.packetsReply)
            if slot < marks.count && marks[slot] == mark { return }
            // Remembered only once in the ring: a change lost to a full ring is handed over
            // at the next look.
            guard ring.push(SyncChange(.refresh, connection)) else { return }
            if slot >= marks.count { marks += repeatElement(SyncSweepMark(), count: slot + 1 - marks.count) }
            marks[slot] = mark
        }
    }

    /// The peer's entries, then its proxied connections' states, applied between batches (a
    /// mailbox job). The peer sends a state right after its connection's record when one was
    /// waiting to go (SyncCoalescer.hold), but a state may still come first (the record's
    /// message was lost and is sent again): it waits here and is tried again at each later
    /// job, for up to `sweepPeriod` (after which the peer's sweep sends it again), at most
    /// `waitingLimit` of them.
    func apply(_ entries: [SyncEntry], proxies: [SyncProxyEntry], to tracker: ConnectionTracker, now: UInt64) {
        for entry in entries {
            switch entry.operation {
            case .upsert: tracker.applySynced(entry.connection, now: now)
            case .delete: tracker.removeSynced(entry.connection.key)
            }
        }
        if !waitingProxies.isEmpty {
            waitingProxies.removeAll { waiting in
                waiting.until <= now || tracker.applySyncedProxy(waiting.entry.state, key: waiting.entry.key)
            }
        }
        for proxy in proxies where !tracker.applySyncedProxy(proxy.state, key: proxy.key) {
            guard waitingProxies.count < WorkerSync.waitingLimit else { continue }
            waitingProxies.append((proxy, now &+ WorkerSync.sweepPeriod))
        }
    }

    /// The peer's proxy states waiting for their connections (`apply`).
    var waitingProxyCount: Int { waitingProxies.count }
}
