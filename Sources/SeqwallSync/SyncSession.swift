import SeqwallControl
import SeqwallCore

/// One node's side of the sync with one peer, without sockets: datagrams in, datagrams out,
/// entries to apply (docs/sync-protocol.md). The daemon's sync thread owns it and gives it
/// the clocks: `now` monotonic (the trackers' clock), `wallNow` the wall clock, nanoseconds.
///
/// Reliability follows conntrackd's FTFW: data messages carry a data sequence and stay in a
/// bounded resend queue until the peer acknowledges them (in its alive messages); the peer
/// asks for a gap with a NACK; what the sender no longer holds it answers with a skip, after
/// which the peer asks for a bulk. A node is in sync once a bulk from the peer's current
/// incarnation has completed.
public struct SyncSession {
    public let node: UInt32
    public let epoch: UInt32
    public let settings: SyncSettings
    private var cipher: SyncCipher
    private var sequence: UInt64 = 0
    private var nextData: UInt32 = 1
    private var resend: SyncResendQueue
    private var receiver = SyncReceiver()
    public private(set) var coalescer: SyncCoalescer
    /// Datagrams to send, in order, one after the other (taken by `takeOutgoing` or
    /// `drainOutgoing`): a turn's datagrams need no array each, made and freed every turn.
    private var outgoing: [UInt8] = []
    /// Where each datagram in `outgoing` ends.
    private var outgoingEnds: [Int] = []
    private var lastSent: UInt64 = 0
    private var lastHeard: UInt64?
    /// Data messages received since the last acknowledgement.
    private var receivedSinceAck = 0
    private var lastAcknowledged: UInt64 = 0
    private var lastNack: UInt64 = 0
    private var lastBulkRequest: UInt64?
    /// The bulk being sent, and how far.
    private var bulk: [Connection] = []
    /// The proxied connections' states of the bulk, sent after its end (their records first).
    private var bulkProxies: [SyncProxyEntry] = []
    private var bulkSent = 0
    private var bulkActive = false
    /// The peer's current incarnation said (`features`) it reads the compact kinds: entries go
    /// to it in those, about twice as many a datagram (docs/sync-protocol.md, Compact entries).
    public private(set) var peerReadsCompact = false
    private var lastFeatures: UInt64?
    public private(set) var status = SyncStatus()

    /// What a received datagram asked for.
    public struct Receipt {
        public init(entries: [SyncEntry] = [], proxies: [SyncProxyEntry] = [], bulkRequested: Bool = false,
                    refused: SyncRefusal? = nil) {
            self.entries = entries
            self.proxies = proxies
            self.bulkRequested = bulkRequested
            self.refused = refused
        }

        /// Entries to apply to the table, in order; deadlines on our clock.
        public var entries: [SyncEntry] = []
        /// Proxied connections' states, to apply after `entries`.
        public var proxies: [SyncProxyEntry] = []
        /// The peer wants every connection (`startBulk`).
        public var bulkRequested = false
        public var refused: SyncRefusal?
    }

    /// `regions`: where the coalescer's table takes its large regions (the daemon's huge
    /// pages); nil, the Swift heap.
    public init(key: SyncKey, node: UInt32, epoch: UInt32, settings: SyncSettings = SyncSettings(),
                regions: RegionProvider? = nil) {
        self.node = node
        self.epoch = epoch
        self.settings = settings
        cipher = SyncCipher(key: key)
        resend = SyncResendQueue(capacity: settings.resendCapacity)
        coalescer = SyncCoalescer(interval: settings.coalesceInterval, maximumChanges: settings.maximumChanges,
                                  regions: regions)
    }

    // MARK: Sending

    public mutating func submit(_ change: SyncChange, now: UInt64) {
        coalescer.add(change, now: now)
    }

    /// A turn's changes, in order (SyncCoalescer.add(contentsOf:)).
    public mutating func submit(contentsOf changes: [SyncChange], now: UInt64) {
        coalescer.add(contentsOf: changes, now: now)
    }

    /// A run of a turn's changes, read where they lie (a worker's ring).
    public mutating func submit(contentsOf changes: UnsafeBufferPointer<SyncChange>, now: UInt64) {
        coalescer.add(contentsOf: changes, now: now)
    }

    /// The datagrams to send, oldest first.
    public mutating func takeOutgoing() -> [[UInt8]] {
        var datagrams: [[UInt8]] = []
        drainOutgoing { datagrams.append(Array($0)) }
        return datagrams
    }

    /// Hands the datagrams to send to `body`, oldest first, where they lie (valid only during
    /// the call), and forgets them.
    public mutating func drainOutgoing(_ body: (UnsafeBufferPointer<UInt8>) -> Void) {
        outgoing.withUnsafeBufferPointer { bytes in
            var start = 0
            for end in outgoingEnds {
                body(UnsafeBufferPointer(rebasing: bytes[start..<end]))
                start = end
            }
        }
        // A bulk's turn may queue up to half the resend queue (megabytes): that room is not
        // kept for the turns after it, a busy turn's (tens of kilobytes) is.
        outgoing.removeAll(keepingCapacity: outgoing.capacity <= SyncSession.outgoingRoomKept)
        outgoingEnds.removeAll(keepingCapacity: true)
    }

    /// The bytes of datagrams `outgoing` keeps room for between turns.
    static let outgoingRoomKept = 64 * 1_500

    /// Seals and queues `message`; `packed`: its entries already in the compact encoding.
    private mutating func send(_ message: SyncMessage, now: UInt64, wallNow: UInt64,
                               packed: (count: Int, records: [UInt8])? = nil) {
        var stamped = message
        stamped.wallTime = wallNow
        // A message of more entries than the plain kinds hold was packed for a peer that read
        // the compact ones: held for resend, it stays compact even if that peer is gone.
        if stamped.kind.carriesEntries && (peerReadsCompact || stamped.entries.count > SyncMessage.maximumEntries) {
            stamped.kind = stamped.kind.compact
        }
        sequence += 1
        let header = SyncHeader(kind: stamped.kind, node: node, epoch: epoch, sequence: sequence)
        let body = if let packed, stamped.kind.isCompact {
            stamped.encoded(count: packed.count, records: packed.records)
        } else {
            stamped.encoded(monotonicNow: now)
        }
        let start = outgoing.count
        cipher.seal(header, body: body, appendingTo: &outgoing)
        outgoingEnds.append(outgoing.count)
        lastSent = now
        status.messages_sent += 1
        status.bytes_sent += UInt64(outgoing.count - start)
    }

    private mutating func sendData(_ message: SyncMessage, now: UInt64, wallNow: UInt64,
                                   packed: (count: Int, records: [UInt8])? = nil) {
        var numbered = message
        numbered.dataSequence = nextData
        nextData &+= 1
        resend.append(numbered)
        status.entries_sent += UInt64(numbered.entries.count)
        send(numbered, now: now, wallNow: wallNow, packed: packed)
    }

    /// Sends `entries` in data messages of `kind` (compact when the peer reads it); returns how
    /// many went in the first one
    /// (with `onlyFirst`, only that message goes).
    @discardableResult
    private mutating func sendEntries(_ entries: ArraySlice<SyncEntry>, kind: SyncMessageKind, now: UInt64,
                                      wallNow: UInt64, onlyFirst: Bool = false) -> Int {
        var start = entries.startIndex, first = 0
        while start < entries.endIndex {
            var message = SyncMessage(kind: kind)
            var count = min(entries.endIndex - start, SyncMessage.maximumEntries)
            var packed: (count: Int, records: [UInt8])?
            if peerReadsCompact {
                let compact = SyncMessage.packCompact(entries[start...], monotonicNow: now)
                count = compact.count
                packed = compact
            }
            message.entries = Array(entries[start..<(start + count)])
            sendData(message, now: now, wallNow: wallNow, packed: packed)
            if start == entries.startIndex { first = count }
            start += count
            if onlyFirst { break }
        }
        return first
    }

    /// Sends proxied connections' states (the workers' own and the sweep's), outside the data
    /// stream: each is sent again at the next sweep, so none is held for resend.
    /// A state whose connection's record is waiting goes right after that record, or not at all
    /// when the record is not sent (SyncCoalescer.hold).
    public mutating func sendProxies(_ proxies: [SyncProxyEntry], now: UInt64, wallNow: UInt64) {
        var loose: [SyncProxyEntry] = []
        for proxy in proxies where !coalescer.hold(proxy) { loose.append(proxy) }
        sendProxyMessages(loose, now: now, wallNow: wallNow)
    }

    private mutating func sendProxyMessages(_ proxies: [SyncProxyEntry], now: UInt64, wallNow: UInt64) {
        var start = 0
        while start < proxies.count {
            var message = SyncMessage(kind: .proxies)
            message.proxies = Array(proxies[start..<min(proxies.count, start + SyncMessage.maximumProxies)])
            send(message, now: now, wallNow: wallNow)
            start += SyncMessage.maximumProxies
        }
    }

    /// Starts sending every connection in `connections` to the peer, paced so that the
    /// resend queue never overflows with it; then the states of those that are proxied.
    public mutating func startBulk(_ connections: [Connection], proxies: [SyncProxyEntry] = []) {
        bulk = connections
        bulkProxies = proxies
        bulkSent = 0
        bulkActive = true
        coalescer.forgetPeer()
        status.bulks_sent += 1
    }

    /// What is due at `now`: coalesced records, the bulk's next chunks, acknowledgements,
    /// NACKs, bulk requests, alive messages.
    public mutating func tick(now: UInt64, wallNow: UInt64) {
        let entries = coalescer.take(now: now)
        if !entries.isEmpty {
            sendEntries(entries[...], kind: .connections, now: now, wallNow: wallNow)
            let proxies = coalescer.takeProxies()
            if !proxies.isEmpty { sendProxyMessages(proxies, now: now, wallNow: wallNow) }
        }
        sendBulkChunks(now: now, wallNow: wallNow)
        if let gap = receiver.gap, now &- lastNack >= settings.nackInterval {
            var nack = SyncMessage(kind: .nack)
            nack.first = gap.first
            nack.last = gap.last
            send(nack, now: now, wallNow: wallNow)
            lastNack = now
            status.nacks_sent += 1
        }
        let alive = isPeerAlive(now: now)
        if alive && !status.in_sync && status.bulk_progress == nil
            && (lastBulkRequest.map { now &- $0 >= settings.bulkRequestInterval } ?? true) {
            send(SyncMessage(kind: .bulkRequest), now: now, wallNow: wallNow)
            lastBulkRequest = now
            status.bulk_requests_sent += 1
        }
        // Acknowledged sooner when many messages came: the sender paces a bulk by what it holds
        // unacknowledged.
        if (receivedSinceAck > 0 && now &- lastAcknowledged >= settings.acknowledgeInterval)
            || receivedSinceAck >= settings.acknowledgeMessages
            || now &- lastSent >= settings.aliveInterval || lastSent == 0 {
            var message = SyncMessage(kind: .alive)
            message.first = receiver.next
            message.last = nextData
            send(message, now: now, wallNow: wallNow)
            receivedSinceAck = 0
            lastAcknowledged = now
        }
        // What this node reads, said as often as it is alive: a peer that restarts learns it
        // within a second, and one that does not know the kind refuses it as malformed without
        // losing its place in the stream (docs/sync-protocol.md, Compact entries).
        if lastFeatures.map({ now &- $0 >= settings.aliveInterval }) ?? true {
            var features = SyncMessage(kind: .features)
            features.first = SyncMessage.readsCompact
            send(features, now: now, wallNow: wallNow)
            lastFeatures = now
        }
        refreshStatus(now: now)
    }

    private mutating func sendBulkChunks(now: UInt64, wallNow: UInt64) {
        guard bulkActive else { return }
        while bulkSent < bulk.count && resend.count < settings.resendCapacity / 2 {
            // As many as one message may hold (at most the compact bound); those sent noted.
            let end = min(bulk.count, bulkSent + SyncMessage.maximumCompactEntries)
            let chunk = bulk[bulkSent..<end].map { SyncEntry(.upsert, $0) }
            let count = sendEntries(chunk[...], kind: .bulkChunk, now: now, wallNow: wallNow, onlyFirst: true)
            for connection in bulk[bulkSent..<(bulkSent + count)] { coalescer.noteSent(connection) }
            bulkSent += count
        }
        if bulkSent == bulk.count {
            var end = SyncMessage(kind: .bulkEnd)
            end.first = UInt32(truncatingIfNeeded: bulk.count)
            sendData(end, now: now, wallNow: wallNow)
            sendProxyMessages(bulkProxies, now: now, wallNow: wallNow)
            bulkProxies = []
            bulk = []
            bulkSent = 0
            bulkActive = false
        }
    }

    // MARK: Receiving

    public mutating func receive(_ datagram: [UInt8], now: UInt64, wallNow: UInt64) -> Receipt {
        var receipt = Receipt()
        switch admit(datagram, now: now, wallNow: wallNow) {
        case .failure(let refusal):
            status.refused[refusal.name, default: 0] += 1
            receipt.refused = refusal
        case .success(let message):
            status.messages_received += 1
            lastHeard = now
            handle(message, into: &receipt, now: now, wallNow: wallNow)
        }
        refreshStatus(now: now)
        return receipt
    }

    /// Authenticates and checks a datagram: the message, or why it is refused.
    private mutating func admit(_ datagram: [UInt8], now: UInt64, wallNow: UInt64) -> Result<SyncMessage, SyncRefusal> {
        let header: SyncHeader, body: [UInt8]
        switch cipher.open(datagram) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let opened): (header, body) = opened
        }
        guard header.node != node else { return .failure(.ownMessage) }
        guard let message = SyncMessage.decode(kind: header.kind, body: body, monotonicNow: now) else {
            return .failure(.malformed)
        }
        let skew = wallNow > message.wallTime ? wallNow - message.wallTime : message.wallTime - wallNow
        guard skew <= settings.maximumClockSkew else { return .failure(.stale) }
        switch receiver.admit(header) {
        case .failure(let refusal): return .failure(refusal)
        case .success(let restarted):
            if restarted {
                // A new incarnation of the peer holds nothing of ours and has a stream of its
                // own: we are out of sync until its bulk, and it will ask for ours.
                status.in_sync = false
                status.bulk_progress = nil
                lastBulkRequest = nil
                peerReadsCompact = false
                coalescer.forgetPeer()
            }
        }
        return .success(message)
    }

    private mutating func handle(_ message: SyncMessage, into receipt: inout Receipt, now: UInt64, wallNow: UInt64) {
        switch message.kind {
        case .connections, .bulkChunk, .bulkEnd, .compactConnections, .compactBulkChunk:
            receivedSinceAck += 1
            if receiver.accept(message) {
                deliver(message, into: &receipt)
                while let following = receiver.nextHeld() { deliver(following, into: &receipt) }
            }
        case .bulkRequest:
            receipt.bulkRequested = true
        case .alive:
            resend.acknowledge(before: message.first)
            receiver.announce(message.last)
        case .nack:
            status.nacks_received += 1
            let (found, missing) = resend.messages(from: message.first, through: message.last)
            if missing {
                // The resend queue holds a contiguous run up to the newest: everything before
                // its oldest is gone.
                var skip = SyncMessage(kind: .skip)
                skip.first = resend.oldest ?? nextData
                send(skip, now: now, wallNow: wallNow)
            }
            for held in found {
                send(held, now: now, wallNow: wallNow)
                status.resends += 1
            }
        case .proxies:
            receipt.proxies += message.proxies
        case .features:
            peerReadsCompact = message.first & SyncMessage.readsCompact != 0
        case .skip:
            // What the sender dropped is lost: only a bulk can bring it back.
            status.in_sync = false
            status.bulk_progress = nil
            lastBulkRequest = nil
            receiver.skip(to: message.first)
            while let following = receiver.nextHeld() { deliver(following, into: &receipt) }
        }
    }

    private mutating func deliver(_ message: SyncMessage, into receipt: inout Receipt) {
        switch message.kind {
        case .bulkChunk, .compactBulkChunk:
            status.bulk_progress = (status.bulk_progress ?? 0) + UInt64(message.entries.count)
            fallthrough
        case .connections, .compactConnections:
            // Nearly always the datagram's only message: its entries taken as they are, not copied.
            if receipt.entries.isEmpty { receipt.entries = message.entries } else { receipt.entries += message.entries }
            // What the peer sent, it holds: our copy, unchanged, is never sent back to it.
            for entry in message.entries {
                if entry.operation == .upsert { coalescer.noteSent(entry.connection) } else { coalescer.forget(entry.connection.key) }
            }
            status.entries_applied += UInt64(message.entries.count)
        case .bulkEnd:
            status.in_sync = true
            status.bulk_progress = nil
            status.bulks_received += 1
        default:
            break
        }
    }

    // MARK: Status

    /// Counts a refusal decided outside the session (a datagram from another address).
    public mutating func countRefusal(_ refusal: SyncRefusal) {
        status.refused[refusal.name, default: 0] += 1
    }

    public func isPeerAlive(now: UInt64) -> Bool {
        lastHeard.map { now &- $0 < settings.peerTimeout } ?? false
    }

    private mutating func refreshStatus(now: UInt64) {
        status.peer_alive = isPeerAlive(now: now)
        status.last_heard_ms = lastHeard.map { (now &- $0) / 1_000_000 }
        status.unacknowledged = resend.count
        status.resend_dropped = resend.dropped
        status.coalescing = coalescer.pendingCount
        status.bulk_remaining = bulk.count - bulkSent
    }

    /// The status at `now`, with the figures the daemon keeps (lost changes, send errors), and
    /// the coalescer's count of connections left out (read here, not kept in `status` too).
    public func status(now: UInt64) -> SyncStatus {
        var copy = status
        copy.peer_alive = isPeerAlive(now: now)
        copy.last_heard_ms = lastHeard.map { (now &- $0) / 1_000_000 }
        copy.closed_unsent = coalescer.closedUnsent
        return copy
    }
}
