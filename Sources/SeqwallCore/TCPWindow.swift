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
/// drops; II and IV failing are old segments that pass without changing state.
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

    /// Checks `segment`, going `direction` in `connection` whose state was `state`, and on
    /// success updates both directions' window data.
    public static func check(_ connection: inout Connection, direction: FlowDirection, index: TCPFlagIndex,
                             segment: TCPSegment, state: TCPState) -> Result {
        var sender = connection.peer(direction)
        var receiver = connection.peer(direction.opposite)
        let result = check(&sender, &receiver, connection: &connection, direction: direction, index: index,
                           segment: segment, state: state)
        connection.setPeer(direction, sender)
        connection.setPeer(direction.opposite, receiver)
        return result
    }

    static func check(_ sender: inout TCPPeerState, _ receiver: inout TCPPeerState, connection: inout Connection,
                      direction: FlowDirection, index: TCPFlagIndex, segment: TCPSegment,
                      state: TCPState) -> Result {
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
            } else {
                // Picked up mid-stream: learn what this segment shows.
                sender.end = end
                let scaled = window << UInt32(sender.scale)
                sender.maxWindow = max(scaled, 1)
                sender.maxEnd = end &+ sender.maxWindow
                if receiver.maxWindow == 0 {
                    // Nothing seen the other way yet: let III and IV pass until it is.
                    receiver.end = sack
                    receiver.maxEnd = sack
                } else if sack == receiver.end &+ 1 {
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

        // A connection restored from a state file catches up first (ConnectionTracker+Restore).
        if receiver.flags.contains(.relearning) { relearn(&sender, &receiver, flags: flags, end: end, sack: sack) }

        let liberal = sender.flags.contains(.beLiberal)

        // I. Upper bound for data.
        if !SequenceNumber.before(sequence, sender.maxEnd &+ 1) {
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
                return liberal ? .accept : .ignore
            }
            return liberal ? .accept : .invalid(.seqAboveWindow)
        }

        // III. Upper bound for ACKs.
        if !SequenceNumber.before(sack, receiver.end &+ 1) {
            return liberal ? .accept : .invalid(.ackAboveSent)
        }

        // II. Lower bound for data: an old retransmission.
        let inReceiveWindow = receiver.maxWindow == 0
            || SequenceNumber.after(end, sender.end &- receiver.maxWindow &- 1)
        if !inReceiveWindow { return liberal ? .accept : .ignore }

        // IV. Lower bound for ACKs: a very delayed ACK.
        if !SequenceNumber.after(sack, receiver.end &- maximumAckWindow(sender) &- 1) {
            return liberal ? .accept : .ignore
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

        if receiver.maxWindow != 0 && SequenceNumber.after(end, sender.maxEnd) {
            receiver.maxWindow &+= end &- sender.maxEnd
        }
        if SequenceNumber.after(sack &+ window, receiver.maxEnd &- 1) {
            receiver.maxEnd = sack &+ window
            if window == 0 { receiver.maxEnd &+= 1 }
        }
        if ack == receiver.end { receiver.flags.remove(.dataUnacknowledged) }

        // Count identical ACK segments: a side retransmitting into silence.
        if index == .ack {
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
        sender.flags.remove(.relearning)
        return .accept
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
