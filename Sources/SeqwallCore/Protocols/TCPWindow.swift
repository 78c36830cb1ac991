/// Sequence and acknowledgment window checks, after Guido van Rooij's "Real Stateful TCP Packet
/// Filtering in IP Filter" as the kernel refines it (tcp_in_window). Per direction:
///
///     end    = max(seq + len)                     sent by this side
///     maxEnd = max(ack + max(win, 1))             advertised by the other side
///     maxWin = max(max(win, 1) + (sack - ack))    sent by this side
///
/// A segment is in window when
///
///     I.   seq <= sender.maxEnd                              (not above the receiver's window)
///     II.  seq + len >= sender.end - receiver.maxWin         (not an old retransmission)
///     III. sack <= receiver.end                              (acks nothing unsent)
///     IV.  sack >= receiver.end - max(sender.maxWin, 66000)  (acks nothing long gone)
///
/// where sack is the highest SACK right edge, or the ACK itself. I and III failing are
/// drops; II and IV failing are old segments that pass without changing state (the kernel's
/// NFCT_TCP_IGNORE), so `ack-below-window` is never the verdict on anything the kernel passes.
///
/// Picked-up connections (`set pickup on`). The kernel marks both sides "be liberal" and so
/// never judges such a connection again. Seqwall checks it, with two unknowns made safe:
///
/// - The window scale was in the SYNs, which were not seen. Both sides are given the largest
///   legal scale, 14 (RFC 7323 2.3): every window is then at least as large as the real one, so
///   the upper bound I can only be too generous, never too tight. The lower bounds II and IV
///   only ever decide "old segment, pass unchanged", so a window too large there costs no drop.
/// - Before the pickup a side may have sent data the tracker never saw (it was down, or the
///   entry had gone), so its `end` is only a lower bound: an ACK above it may acknowledge that
///   unseen data, above all while the side is recovering from a loss. Until the side proves
///   where it stands, III raises its `end` to the ACK instead of dropping (`.endUnknown`). A
///   segment with nothing in it proves it: an acknowledgment is <SEQ=SND.NXT><ACK=RCV.NXT>
///   (RFC 9293 3.10.7.4; Linux tcp_acceptable_seq, BSD tcp_output "snd_max for ACK-only"), a
///   keepalive is SND.NXT - 1 (RFC 9293 3.8.4), so `end` becomes its sequence number + 1. A FIN
///   proves it exactly: nothing follows a FIN. Such a loss: the side sent 1-10 unseen, 3 was
///   lost, the first segment seen is 3 again; the receiver then acknowledges 10, which is not
///   "unsent" although the tracker never saw it.
///
/// So, in a picked-up connection:
///
/// - Until the other side's first segment: nothing about the receiver is known, so I and III
///   cannot be checked for the side that was picked up; II and IV apply as always. What the
///   segments show is learned: the side's `end` and largest window, its ACKs as a lower bound
///   of the other side's `end`, and the right edge of the window it offers the other side. An
///   RST from it cannot be judged either: it passes and, as in the kernel, ends the entry.
/// - From the other side's first segment on (that segment included): I is checked for both
///   sides (with scale 14), the RST rules of RFC 5961 apply as in any connection, and III is
///   checked for ACKs of a side once that side has proved its `end`. A side that only ever
///   sends data (one-way bulk transfer) never proves it, and ACKs of its data stay unchecked
///   by III; I still bounds it.
///
/// These rest on what the kernel already assumes for condition I (a receiver's right edge never
/// moves left, RFC 9293 3.8.6; Linux senders then also put SND.NXT in every ACK), and on
/// segments not overtaking each other across the moment of the pickup.
public enum TCPWindow {
    public enum Result: Equatable, Sendable {
        case accept
        /// Not in window, but harmless (old retransmission, delayed ACK): pass, change nothing.
        case ignore
        case invalid(DropReason)
    }

    @inline(__always)
    static func maximumAckWindow(_ sender: TCPPeerState) -> UInt32 {
        max(sender.maxWindow, TCPStateMachine.minimumAckWindow)
    }

    /// Checks `segment`, going `direction` in `connection` whose state was `state`, and unless
    /// it is invalid, updates both directions' window data. A segment that is dropped leaves
    /// the connection as it was, so a forged segment cannot teach the tracker anything.
    public static func check(_ connection: inout Connection, direction: FlowDirection, index: TCPFlagIndex,
                             segment: TCPSegment, state: TCPState) -> Result {
        // Both directions are worked on in place (two stored properties of one inout value may
        // be borrowed at once), not copied out and back in: on the packet path that was ~50
        // instructions. What is left is the undo, for a segment found invalid part way through.
        let before = (original: connection.original, reply: connection.reply)
        let pickedUp = connection.status.contains(.pickedUp)
        let result = direction == .original
            ? check(&connection.original, &connection.reply, pickedUp: pickedUp, direction: direction,
                    segment: segment, state: state)
            : check(&connection.reply, &connection.original, pickedUp: pickedUp, direction: direction,
                    segment: segment, state: state)
        switch result {
        case .invalid:
            connection.original = before.original
            connection.reply = before.reply
        case .ignore:
            break
        case .accept:
            if index == .ack { countRetransmission(&connection, direction: direction, segment: segment) }
        }
        return result
    }

    /// Counts identical ACK segments in a row: a side retransmitting into silence (the kernel's
    /// tcp_in_window, retrans). An ACK segment's sequence, ACK and end are the segment's own.
    @inline(__always)
    static func countRetransmission(_ connection: inout Connection, direction: FlowDirection, segment: TCPSegment) {
        let sequence = segment.sequence, ack = segment.acknowledgment, end = segment.end
        if connection.lastDirection == direction && connection.lastSequence == sequence
            && connection.lastAcknowledgment == ack && connection.lastEnd == end
            && connection.lastWindow == segment.window {
            if connection.retransmissions < UInt8.max { connection.retransmissions += 1 }
        } else {
            connection.lastDirection = direction
            connection.lastSequence = sequence
            connection.lastAcknowledgment = ack
            connection.lastEnd = end
            connection.lastWindow = segment.window
            connection.retransmissions = 0
        }
    }

    /// The window check proper, on the sending and the receiving side's data; `pickedUp` is
    /// the connection's `.pickedUp` status.
    static func check(_ sender: inout TCPPeerState, _ receiver: inout TCPPeerState, pickedUp: Bool,
                      direction: FlowDirection, segment: TCPSegment, state: TCPState) -> Result {
        let flags = segment.flags
        var sequence = segment.sequence
        var ack = segment.acknowledgment
        var sack = ack
        var end = segment.end
        var window = UInt32(segment.window)

        if receiver.flags.contains(.sackPermitted) && segment.options.hasSACK
            && SequenceNumber.after(segment.options.sackRightEdge, sack) {
            sack = segment.options.sackRightEdge
        }

        if sender.maxWindow == 0 {
            if flags.contains(.syn) {
                // SYN-ACK answering the SYN, or the reply side's SYN in a simultaneous open.
                initializeSender(&sender, &receiver, segment: segment, end: end, direction: direction)
                if !flags.contains(.ack) { return .accept }
            } else if pickedUp {
                // The other side's first segment since the pickup. Its `end` may already have
                // been learned from the ACKs of the side picked up; its upper bound `maxEnd` is
                // the right edge that side offered, kept for condition I below.
                if SequenceNumber.after(end, sender.end) { sender.end = end }
                sender.maxWindow = max(window << UInt32(sender.scale), 1)
            } else {
                // Mid-stream without pickup (the kernel's tcp_in_window does the same; the
                // state machine leaves no segment that reaches here): learn what it shows.
                sender.end = end
                sender.maxWindow = max(window << UInt32(sender.scale), 1)
                sender.maxEnd = end &+ sender.maxWindow
                if sack == receiver.end &+ 1 {
                    // Likely the answer to a keepalive.
                    receiver.end &+= 1
                }
            }
        } else if flags.contains(.syn) && SequenceNumber.after(end, sender.end)
                    && (state == .synSent || state == .synRecv) {
            // RFC 9293 3.4.1: a restarted side only needs larger sequence numbers. Start this
            // direction over, as for its first SYN.
            initializeSender(&sender, &receiver, segment: segment, end: end, direction: direction)
            if direction == .reply && !flags.contains(.ack) { return .accept }
        }

        if !flags.contains(.ack) {
            // No ACK: treat it as acking exactly what was sent.
            ack = receiver.end
            sack = receiver.end
        } else if flags.contains(.rst) && segment.acknowledgment == 0 {
            // Stacks that send RST|ACK with a zero ACK.
            ack = receiver.end
            sack = receiver.end
        }

        if flags.contains(.rst) && sequence == 0 && state == .synSent {
            // An RST answering a SYN carries the SYN's ACK as its sequence number.
            sequence = sender.end
            end = sender.end
        }

        // A picked-up side whose receiver has sent nothing yet: the receiver's window, and so
        // this side's upper bound, is unknown.
        let receiverUnseen = pickedUp && receiver.maxWindow == 0
        // A connection restored from a state file catches up first (ConnectionTracker+Restore).
        if receiver.flags.contains(.relearning) { relearn(&sender, &receiver, flags: flags, end: end, sack: sack) }

        // I. Upper bound for data.
        if !receiverUnseen && !SequenceNumber.before(sequence, sender.maxEnd &+ 1) {
            let overshot = end &- sender.maxEnd &+ 1
            let ackInRange = SequenceNumber.after(sack, receiver.end &- maximumAckWindow(sender) &- 1)
            let inReceiveWindow = receiver.maxWindow != 0
                && SequenceNumber.after(end, sender.end &- receiver.maxWindow &- 1)
            if inReceiveWindow && ackInRange && overshot <= receiver.maxWindow
                && SequenceNumber.before(sack, receiver.end &+ 1) {
                // A sender that slightly overruns the advertised window: let the receiver
                // decide, and remember the data so the ACK that follows is not "unsent".
                sender.end = end
                sender.flags.insert(.dataUnacknowledged)
                return .ignore
            }
            return .invalid(.seqAboveWindow)
        }

        // III. Upper bound for ACKs.
        if !SequenceNumber.before(sack, receiver.end &+ 1) {
            // A picked-up side may have sent, unseen, what this acknowledges: learn it.
            guard receiver.flags.contains(.endUnknown) else { return .invalid(.ackAboveSent) }
            receiver.end = sack
        }

        // II. Lower bound for data: an old retransmission.
        let inReceiveWindow = receiver.maxWindow == 0
            || SequenceNumber.after(end, sender.end &- receiver.maxWindow &- 1)
        if !inReceiveWindow { return .ignore }

        // IV. Lower bound for ACKs: a very delayed ACK.
        if !SequenceNumber.after(sack, receiver.end &- maximumAckWindow(sender) &- 1) {
            return .ignore
        }

        // RFC 7323 2.2: the window of a SYN is never scaled.
        if !flags.contains(.syn) { window <<= UInt32(sender.scale) }

        let senderWindow = window &+ (sack &- ack)
        if sender.maxWindow < senderWindow { sender.maxWindow = senderWindow }
        if SequenceNumber.after(end, sender.end) {
            sender.end = end
            sender.flags.insert(.dataUnacknowledged)
        }
        if flags.contains(.ack) {
            if !sender.flags.contains(.maxAckSet) {
                sender.maxAck = ack
                sender.flags.insert(.maxAckSet)
            } else if SequenceNumber.after(ack, sender.maxAck) {
                sender.maxAck = ack
            }
        }
        if sender.flags.contains(.endUnknown) { proveEnd(&sender, segment: segment) }
        if receiverUnseen && SequenceNumber.after(sender.end, sender.maxEnd) {
            // Until the receiver's window is known, what this side was seen to send is the
            // least its upper bound can be.
            sender.maxEnd = sender.end
        }

        if receiver.maxWindow != 0 && SequenceNumber.after(end, sender.maxEnd) {
            receiver.maxWindow &+= end &- sender.maxEnd
        }
        if SequenceNumber.after(sack &+ window, receiver.maxEnd &- 1) {
            receiver.maxEnd = sack &+ window
            if window == 0 { receiver.maxEnd &+= 1 }
        }
        if ack == receiver.end { receiver.flags.remove(.dataUnacknowledged) }

        sender.flags.remove(.relearning)
        return .accept
    }

    /// A picked-up side shows where it stands (see "Picked-up connections" above): a FIN ends
    /// its sequence space exactly; a segment with nothing in it (no data, SYN or FIN) carries
    /// SND.NXT, or SND.NXT - 1 when it is a keepalive, so one more is allowed for that. One
    /// behind what the side was seen to send proves nothing: a stack that winds SND.NXT back
    /// to retransmit after a timeout may put that in its ACKs (BSD takes care not to).
    static func proveEnd(_ sender: inout TCPPeerState, segment: TCPSegment) {
        let proven: UInt32
        if segment.flags.contains(.fin) {
            proven = segment.end
        } else if segment.payloadLength == 0 && !segment.flags.contains(.syn) && !segment.flags.contains(.rst) {
            proven = segment.sequence &+ 1
            if SequenceNumber.before(proven, sender.end) { return }
        } else {
            return
        }
        if SequenceNumber.after(proven, sender.end) { sender.end = proven }
        sender.flags.remove(.endUnknown)
    }

    /// This side's first SYN or SYN-ACK (tcp_init_sender).
    static func initializeSender(_ sender: inout TCPPeerState, _ receiver: inout TCPPeerState,
                                 segment: TCPSegment, end: UInt32, direction: FlowDirection) {
        sender.end = end
        sender.maxEnd = end
        sender.maxWindow = max(UInt32(segment.window), 1)
        TCPStateMachine.applySynOptions(segment.options, to: &sender)
        // RFC 7323 2.2: scaling applies only when both sides sent the option.
        if direction == .reply
            && !(sender.flags.contains(.windowScale) && receiver.flags.contains(.windowScale)) {
            sender.scale = 0
            receiver.scale = 0
        }
    }
}
