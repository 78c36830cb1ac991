/// Connections put back from a state file (StateSnapshot) when seqwall starts again, and the
/// grace that lets their window data catch up with what moved while seqwall was down.
///
/// With --queue-bypass, packets pass unchecked while no process holds the queue, so a
/// restored connection's sequence numbers are as old as the snapshot: both sides may have
/// sent megabytes since. Checked as they are, the first packets would fail condition I (data
/// beyond the restored maxEnd: seq-above-window) and III (an ACK of data the restored end
/// has not seen: ack-above-sent), and cut every busy connection.
///
/// So each side of a restored connection is marked `relearning` until it has sent a segment
/// that was accepted. While the receiver of a segment is relearning, its end and the
/// sender's maxEnd (which comes from the receiver's ACKs) may be stale, and they move
/// forward to what the segment shows, like the kernel's pickup learns a connection from its
/// first packets (tcp_in_window, td_maxwin == 0), but:
///
/// - only forward: the segment must pass II and IV against the restored data (it is not
///   older than what the snapshot saw), so an old or far-off segment is judged as usual;
/// - never for an RST: an RST is checked against the data as restored (RFC 5961), and the
///   RST rules (exact sequence, RFC 1337) all apply;
/// - the window scale, SACK-permitted and maxWindow stay as the handshake set them, unlike
///   pickup, which must guess them and so checks the connection liberally for ever.
///
/// The grace ends for a side with its first accepted segment: from then on its data is what
/// seqwall saw, and the other side's segments are checked against it in full. A busy
/// connection is fully checked again one round trip after the restart.
extension TCPWindow {
    /// Moves a relearning receiver's end and the sender's maxEnd forward to what `segment`
    /// shows, so that conditions I and III hold for a segment that is not older than the
    /// restored data. Called only when the receiver is relearning.
    @inline(__always)
    static func relearn(_ sender: inout TCPPeerState, _ receiver: inout TCPPeerState, flags: TCPFlags,
                        end: UInt32, sack: UInt32) {
        guard !flags.contains(.rst) else { return }
        // II and IV, as the checks below will make them.
        let notOldData = receiver.maxWindow == 0 || SequenceNumber.after(end, sender.end &- receiver.maxWindow &- 1)
        let notOldAck = SequenceNumber.after(sack, receiver.end &- maximumAckWindow(sender) &- 1)
        guard notOldData && notOldAck else { return }
        // I: data the receiver's window (as its ACKs set it before the snapshot) did not
        // cover yet. Moving maxEnd rather than skipping the check keeps the window-overrun
        // rule below from growing the receiver's maxWindow by the whole gap.
        if SequenceNumber.after(end, sender.maxEnd) { sender.maxEnd = end }
        // III: an ACK of data the receiver sent while seqwall was down.
        if SequenceNumber.after(sack, receiver.end) { receiver.end = sack }
    }
}

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
    /// relearning (see above). `connection.expiresAt` and `createdAt` must already be on this
    /// tracker's clock (StateSnapshot.decode ages them). A restored half-open connection
    /// counts toward the half-open limits as a new one would: in the half-open count, in its
    /// source's count and in the count of the rule that passes it under the current policy
    /// (rule ids are per process, so the file cannot say), and, never answered, as a
    /// candidate for eviction. Restoring checks no limit: these connections were admitted
    /// before, as a reload keeps connections whatever the new limits.
    @discardableResult
    public func restore(_ connection: Connection, now: UInt64) -> RestoreOutcome {
        guard connection.expiresAt > now else { return .expired }
        guard table.find(connection.key) == nil else { return .duplicate }
        guard !table.isFull else { return .tableFull }
        var restored = connection
        if restored.key.protocolNumber == TrackedProtocol.tcpNumber {
            restored.original.flags.insert(.relearning)
            restored.reply.flags.insert(.relearning)
        }
        restored.halfOpenCharges = []
        restored.chargedRule = 0
        if restored.state.isHalfOpen { chargeRestored(&restored, now: now) }
        guard table.insert(restored) != nil else {
            releaseCharges(of: &restored)
            return .tableFull
        }
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
        let decision = policy.decide(direction: connection.direction, source: connection.key.source,
                                     destination: connection.key.destination,
                                     destinationPort: connection.key.destinationPort)
        if decision.action == .pass, let ruleIndex = decision.ruleIndex,
           policy.rules[ruleIndex].halfOpenPerSource != nil,
           let slot = sources.slot(for: prefix, limiter.ruleIDs[ruleIndex], now: now, keeping: sourceSlot) {
            sources.charge(slot: slot)
            connection.halfOpenCharges.insert(.rule)
            connection.chargedRule = limiter.ruleIDs[ruleIndex]
        }
    }
}
