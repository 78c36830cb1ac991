/// The receiving half of one peer's stream: which incarnation is current, replay protection,
/// and data messages handed on in order, with the gaps to ask for (FTFW's NACK).
struct SyncReceiver {
    /// The incarnation heard last (node number, epoch), nil before any.
    private(set) var node: UInt32?
    private(set) var epoch: UInt32 = 0
    private var window = SyncReplayWindow()
    /// The next data sequence to hand on.
    private(set) var next: UInt32 = 1
    /// Data messages that came before a gap was filled, by data sequence.
    private var early: [UInt32: SyncMessage] = [:]
    static let earlyLimit = 256
    /// The peer's next data sequence as its last alive message said: what it sent is before.
    private var announced: UInt32 = 1
    /// The data sequences missing: before the earliest held message, or, when none is held,
    /// up to what the peer says it sent.
    var gap: (first: UInt32, last: UInt32)? {
        if let lowest = early.keys.min() { return (next, lowest &- 1) }
        guard announced != next, announced &- next < UInt32.max / 2 else { return nil }
        return (next, announced &- 1)
    }

    /// An alive message: the peer has sent every data sequence before `sent`.
    mutating func announce(_ sent: UInt32) {
        if sent &- announced < UInt32.max / 2 { announced = sent }
    }

    /// Whether a message with this header is admitted; `restarted` when it comes from a new
    /// incarnation of the peer (the stream begins again).
    mutating func admit(_ header: SyncHeader) -> Result<Bool, SyncRefusal> {
        if let node, node == header.node {
            guard header.epoch == epoch else { return .failure(.oldEpoch) }
            return window.admit(header.sequence) ? .success(false) : .failure(.replay)
        }
        // A sender's epoch grows at every start (docs/sync-protocol.md, Replay): another node
        // number with the same epoch is an earlier start's message replayed.
        if node != nil && header.epoch <= epoch { return .failure(.oldEpoch) }
        var fresh = SyncReplayWindow()
        guard fresh.admit(header.sequence) else { return .failure(.replay) }
        node = header.node
        epoch = header.epoch
        window = fresh
        next = 1
        announced = 1
        early.removeAll()
        return .success(true)
    }

    /// Takes a data message: true when it is the next in order, to hand on now, followed by
    /// those `nextHeld` gives. One that came early is held (FTFW: the gap is asked for); one
    /// already handed on (a duplicate resend) is ignored. The in-order case, nearly every
    /// message, builds no list: the sync thread takes every datagram the peer sends through here.
    mutating func accept(_ message: SyncMessage) -> Bool {
        let sequence = message.dataSequence
        if sequence &- next > UInt32.max / 2 { return false }
        if sequence != next {
            if early.count < SyncReceiver.earlyLimit { early[sequence] = message }
            return false
        }
        next &+= 1
        return true
    }

    /// The held message that is now next in order, if any (after `accept` or `skip`).
    mutating func nextHeld() -> SyncMessage? {
        guard !early.isEmpty, let following = early.removeValue(forKey: next) else { return nil }
        next &+= 1
        return following
    }

    /// The sender no longer holds what comes before `oldest`: go on from there (what was
    /// lost must come by a bulk). The held messages now in order follow by `nextHeld`.
    mutating func skip(to oldest: UInt32) {
        guard oldest &- next < UInt32.max / 2, oldest != next else { return }
        next = oldest
        for key in early.keys where key &- next > UInt32.max / 2 { early.removeValue(forKey: key) }
    }
}
