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
/// NFCT_TCP_IGNORE), as the kernel's "ignored ACK under lower bound (possible overly
/// delayed)" does: no drop reason exists for them.
///
/// As pf has pf_tcp_track_full and pf_tcp_track_sloppy, each way of knowing a connection has
/// its own function: `checkFull` for a connection seen from its SYN (the kernel's
/// tcp_in_window), `checkPickedUp` for one picked up mid-stream (TCPWindow+PickedUp.swift),
/// `checkRelearning` for one restored from a state file (TCPWindow+Relearning.swift). They
/// share the steps that are the same: `Seen` and `adjust` (what the segment says), the bounds, and
/// `recordAccepted` (what a segment in window teaches).
public enum TCPWindow {
    public enum Result: Equatable, Sendable {
        case accept
        /// Not in window, but harmless (old retransmission, delayed ACK): pass, change nothing.
        case ignore
        case invalid(DropReason)
    }

    /// Checks `segment`, going `direction` in `connection` whose state was `state`, and unless
    /// it is invalid, updates both directions' window data. A segment that is dropped leaves
    /// the connection as it was, so a forged segment cannot teach the tracker anything.
    static func check(_ connection: inout Connection, direction: FlowDirection, index: TCPFlagIndex,
                      segment: TCPSegment, state: TCPState) -> Result {
        let result: Result
        if connection.status.contains(.pickedUp)
            || connection.original.flags.union(connection.reply.flags).contains(.relearning) {
            result = checkLearning(&connection, direction: direction, segment: segment, state: state)
        } else {
            // Both directions are worked on in place (two stored properties of one inout value
            // may be borrowed at once) rather than copied out and back.
            result = direction == .original
                ? checkFull(&connection.original, &connection.reply, direction: direction, segment: segment,
                            state: state)
                : checkFull(&connection.reply, &connection.original, direction: direction, segment: segment,
                            state: state)
        }
        if result == .accept && index == .ack { countRetransmission(&connection, direction: direction, segment: segment) }
        return result
    }

    /// The modes that learn what they check (picked up, relearning): they change the window
    /// data as they go, so what is kept is the undo, for a segment found invalid part way.
    // Never inlined: picked-up and restored connections only, kept out of `check`, which every
    // established segment runs.
    @inline(never)
    static func checkLearning(_ connection: inout Connection, direction: FlowDirection, segment: TCPSegment,
                              state: TCPState) -> Result {
        let before = (original: connection.original, reply: connection.reply)
        let result: Result
        if connection.original.flags.union(connection.reply.flags).contains(.relearning) {
            let pickedUp = connection.status.contains(.pickedUp)
            result = direction == .original
                ? checkRelearning(&connection.original, &connection.reply, &connection.relearned,
                                  pickedUp: pickedUp, direction: direction, segment: segment, state: state)
                : checkRelearning(&connection.reply, &connection.original, &connection.relearned,
                                  pickedUp: pickedUp, direction: direction, segment: segment, state: state)
        } else {
            result = direction == .original
                ? checkPickedUp(&connection.original, &connection.reply, direction: direction, segment: segment,
                                state: state)
                : checkPickedUp(&connection.reply, &connection.original, direction: direction, segment: segment,
                                state: state)
        }
        if case .invalid = result {
            connection.original = before.original
            connection.reply = before.reply
        }
        return result
    }

    /// Counts identical ACK segments in a row: a side retransmitting into silence (the kernel's
    /// tcp_in_window, retrans). An ACK segment's sequence, ACK and end are the segment's own.
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

    // MARK: Full tracking

    /// A connection seen from its SYN: every condition is checked (tcp_in_window). A plain ACK
    /// from a side already seen changes nothing before it is judged in window, so only the
    /// segments that set a side up (`setUp`) need an undo.
    static func checkFull(_ sender: inout TCPPeerState, _ receiver: inout TCPPeerState, direction: FlowDirection,
                          segment: TCPSegment, state: TCPState) -> Result {
        var seen = Seen(segment, receiver: receiver)
        var before: (sender: TCPPeerState, receiver: TCPPeerState)?
        if !seen.isPlainAck || sender.maxWindow == 0 {
            before = (sender, receiver)
            guard let adjusted = setUp(&sender, &receiver, direction: direction, segment: segment, state: state)
            else { return .accept }
            seen = adjusted
        }
        let result: Result
        if let bound = checkUpperBoundForData(sender, receiver, seen) {
            if bound == .ignore { recordOverrun(&sender, seen) }
            result = bound
        } else if !SequenceNumber.before(seen.sack, receiver.end &+ 1) {
            // III. Upper bound for ACKs.
            result = .invalid(.ackAboveSent)
        } else if let bound = checkLowerBounds(sender, receiver, seen) {
            result = bound
        } else {
            recordAccepted(&sender, &receiver, seen)
            result = .accept
        }
        if case .invalid = result, let before {
            sender = before.sender
            receiver = before.receiver
        }
        return result
    }

    /// What `checkFull` does before the bounds for a segment that may set a side up (a SYN, an
    /// RST, a side's first segment): the segment as the bounds then judge it, or nil when it is
    /// accepted already (a SYN without ACK that only sets its side up).
    // Never inlined: the handshake and the close only, kept out of the established path.
    @inline(never)
    static func setUp(_ sender: inout TCPPeerState, _ receiver: inout TCPPeerState, direction: FlowDirection,
                      segment: TCPSegment, state: TCPState) -> Seen? {
        if sender.maxWindow == 0 && !segment.flags.contains(.syn) {
            // Mid-stream without pickup (as the kernel's tcp_in_window does; the state machine
            // leaves no segment that reaches here): learn what the segment shows.
            learnUnseenSender(&sender, &receiver, segment: segment)
        }
        var seen = Seen(segment, receiver: receiver)
        if !seen.isPlainAck
            && !adjust(&seen, &sender, &receiver, direction: direction, segment: segment, state: state) {
            return nil
        }
        return seen
    }

    /// The kernel's learning of a side whose first segment is not a SYN (tcp_in_window with
    /// td_maxwin == 0): its end and window are what it shows.
    static func learnUnseenSender(_ sender: inout TCPPeerState, _ receiver: inout TCPPeerState,
                                  segment: TCPSegment) {
        let end = segment.end
        sender.end = end
        sender.maxWindow = max(UInt32(segment.window) << UInt32(sender.scale), 1)
        sender.maxEnd = end &+ sender.maxWindow
        if sackOrAck(segment, receiver: receiver) == receiver.end &+ 1 {
            // Likely the answer to a keepalive.
            receiver.end &+= 1
        }
    }

    // MARK: Steps every mode shares

    /// What the window check reads of a segment, with the kernel's adjustments applied.
    struct Seen {
        var flags: TCPFlags
        var sequence: UInt32
        var end: UInt32
        var ack: UInt32
        /// The highest SACK right edge, or the ACK itself.
        var sack: UInt32
        /// The raw window field.
        var window: UInt16

        /// What the segment says, before `adjust`.
        init(_ segment: TCPSegment, receiver: TCPPeerState) {
            flags = segment.flags
            sequence = segment.sequence
            end = segment.end
            ack = segment.acknowledgment
            sack = TCPWindow.sackOrAck(segment, receiver: receiver)
            window = segment.window
        }

        /// ACK set, SYN and RST not: nothing of `adjust` applies, which is most segments.
        var isPlainAck: Bool {
            flags.intersection([.syn, .ack, .rst]) == .ack
        }
    }

    static func sackOrAck(_ segment: TCPSegment, receiver: TCPPeerState) -> UInt32 {
        let ack = segment.acknowledgment
        if receiver.flags.contains(.sackPermitted) && segment.options.hasSACK
            && SequenceNumber.after(segment.options.sackRightEdge, ack) {
            return segment.options.sackRightEdge
        }
        return ack
    }

    /// The first part of tcp_in_window for a segment that is not a plain ACK: a side's first
    /// SYN or SYN-ACK sets it up, and the sequence numbers the bounds compare are adjusted for
    /// a missing ACK and for RSTs. False when the segment is accepted already (a SYN without
    /// ACK that only sets its side up).
    static func adjust(_ seen: inout Seen, _ sender: inout TCPPeerState, _ receiver: inout TCPPeerState,
                       direction: FlowDirection, segment: TCPSegment, state: TCPState) -> Bool {
        let flags = seen.flags
        if flags.contains(.syn) {
            if sender.maxWindow == 0 {
                // SYN-ACK answering the SYN, or the reply side's SYN in a simultaneous open.
                initializeSender(&sender, &receiver, segment: segment, direction: direction)
                if !flags.contains(.ack) { return false }
            } else if SequenceNumber.after(seen.end, sender.end) && (state == .synSent || state == .synRecv) {
                // RFC 9293 3.4.1: a restarted side only needs larger sequence numbers. Start
                // this direction over, as for its first SYN.
                initializeSender(&sender, &receiver, segment: segment, direction: direction)
                if direction == .reply && !flags.contains(.ack) { return false }
            }
        }
        if !flags.contains(.ack) || (flags.contains(.rst) && segment.acknowledgment == 0) {
            // No ACK, or the zero ACK of stacks that send RST|ACK so: take it as acknowledging
            // exactly what was sent.
            seen.ack = receiver.end
            seen.sack = receiver.end
        }
        if flags.contains(.rst) && seen.sequence == 0 && state == .synSent {
            // An RST answering a SYN carries the SYN's ACK as its sequence number.
            seen.sequence = sender.end
            seen.end = sender.end
        }
        return true
    }

    /// I. Upper bound for data. Nil when in window; `.ignore` for an overrun of at most a
    /// window, which the receiver judges (`recordOverrun`).
    static func checkUpperBoundForData(_ sender: TCPPeerState, _ receiver: TCPPeerState, _ seen: Seen) -> Result? {
        guard !SequenceNumber.before(seen.sequence, sender.maxEnd &+ 1) else { return nil }
        let overshot = seen.end &- sender.maxEnd &+ 1
        let ackInRange = SequenceNumber.after(seen.sack, receiver.end &- maximumAckWindow(sender) &- 1)
        let inReceiveWindow = receiver.maxWindow != 0
            && SequenceNumber.after(seen.end, sender.end &- receiver.maxWindow &- 1)
        if inReceiveWindow && ackInRange && overshot <= receiver.maxWindow
            && SequenceNumber.before(seen.sack, receiver.end &+ 1) {
            return .ignore
        }
        return .invalid(.seqAboveWindow)
    }

    /// II and IV: an old segment passes without changing state (NFCT_TCP_IGNORE).
    static func checkLowerBounds(_ sender: TCPPeerState, _ receiver: TCPPeerState, _ seen: Seen) -> Result? {
        // II. Lower bound for data: an old retransmission.
        let inReceiveWindow = receiver.maxWindow == 0
            || SequenceNumber.after(seen.end, sender.end &- receiver.maxWindow &- 1)
        if !inReceiveWindow { return .ignore }
        // IV. Lower bound for ACKs: a very delayed ACK.
        if !SequenceNumber.after(seen.sack, receiver.end &- maximumAckWindow(sender) &- 1) { return .ignore }
        return nil
    }

    /// The smallest distance below the receiver's end an ACK may lie (MAXACKWINDOW).
    static func maximumAckWindow(_ sender: TCPPeerState) -> UInt32 {
        max(sender.maxWindow, TCPStateMachine.minimumAckWindow)
    }

    /// A sender that slightly overran the advertised window (condition I): the receiver
    /// decides, and the data is remembered so that the ACK that follows is not "unsent".
    static func recordOverrun(_ sender: inout TCPPeerState, _ seen: Seen) {
        sender.end = seen.end
        sender.flags.insert(.dataUnacknowledged)
    }

    /// What a segment in window teaches about both sides (the end of tcp_in_window).
    static func recordAccepted(_ sender: inout TCPPeerState, _ receiver: inout TCPPeerState, _ seen: Seen) {
        var window = UInt32(seen.window)
        // RFC 7323 2.2: the window of a SYN is never scaled.
        if !seen.flags.contains(.syn) { window <<= UInt32(sender.scale) }
        let end = seen.end, ack = seen.ack, sack = seen.sack

        let senderWindow = window &+ (sack &- ack)
        if sender.maxWindow < senderWindow { sender.maxWindow = senderWindow }
        if SequenceNumber.after(end, sender.end) {
            sender.end = end
            sender.flags.insert(.dataUnacknowledged)
        }
        if seen.flags.contains(.ack) {
            if !sender.flags.contains(.maxAckSet) {
                sender.maxAck = ack
                sender.flags.insert(.maxAckSet)
            } else if SequenceNumber.after(ack, sender.maxAck) {
                sender.maxAck = ack
            }
        }

        if receiver.maxWindow != 0 && SequenceNumber.after(end, sender.maxEnd) {
            receiver.maxWindow &+= end &- sender.maxEnd
        }
        if SequenceNumber.after(sack &+ window, receiver.maxEnd &- 1) {
            receiver.maxEnd = sack &+ window
            if window == 0 { receiver.maxEnd &+= 1 }
        }
        if ack == receiver.end { receiver.flags.remove(.dataUnacknowledged) }
    }

    /// This side's first SYN or SYN-ACK (tcp_init_sender).
    static func initializeSender(_ sender: inout TCPPeerState, _ receiver: inout TCPPeerState,
                                 segment: TCPSegment, direction: FlowDirection) {
        sender.end = segment.end
        sender.maxEnd = segment.end
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
