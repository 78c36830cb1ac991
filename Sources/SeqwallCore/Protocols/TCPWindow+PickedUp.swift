/// Picked-up connections (`set pickup on`, TCPStateMachine.pickUp). The kernel marks both sides "be liberal" and so
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
extension TCPWindow {
    /// A connection picked up mid-stream, checked as far as what was seen allows (above).
    static func checkPickedUp(_ sender: inout TCPPeerState, _ receiver: inout TCPPeerState, direction: FlowDirection,
                              segment: TCPSegment, state: TCPState) -> Result {
        if sender.maxWindow == 0 && !segment.flags.contains(.syn) { learnOtherSide(&sender, segment: segment) }
        var seen = Seen(segment, receiver: receiver)
        if !seen.isPlainAck
            && !adjust(&seen, &sender, &receiver, direction: direction, segment: segment, state: state) {
            return .accept
        }
        return checkLearning(&sender, &receiver, seen, segment: segment, receiverUnseen: receiver.maxWindow == 0)
    }

    /// The other side's first segment since the pickup. Its `end` may already have been
    /// learned from the ACKs of the side picked up; its upper bound `maxEnd` is the right edge
    /// that side offered, kept for condition I.
    static func learnOtherSide(_ sender: inout TCPPeerState, segment: TCPSegment) {
        if SequenceNumber.after(segment.end, sender.end) { sender.end = segment.end }
        sender.maxWindow = max(UInt32(segment.window) << UInt32(sender.scale), 1)
    }

    /// The bounds and the record for a side whose data may be incomplete: condition I is left
    /// out while the receiver has sent nothing (`receiverUnseen`), and III learns the end of a
    /// receiver whose end is unknown instead of dropping.
    static func checkLearning(_ sender: inout TCPPeerState, _ receiver: inout TCPPeerState, _ seen: Seen,
                              segment: TCPSegment, receiverUnseen: Bool) -> Result {
        if !receiverUnseen, let result = checkUpperBoundForData(sender, receiver, seen) {
            if result == .ignore { recordOverrun(&sender, seen) }
            return result
        }
        // III. Upper bound for ACKs. A picked-up side may have sent, unseen, what this
        // acknowledges: learn it.
        if !SequenceNumber.before(seen.sack, receiver.end &+ 1) {
            guard receiver.flags.contains(.endUnknown) else { return .invalid(.ackAboveSent) }
            receiver.end = seen.sack
        }
        if let result = checkLowerBounds(sender, receiver, seen) { return result }
        recordAccepted(&sender, &receiver, seen)
        if sender.flags.contains(.endUnknown) { proveEnd(&sender, segment: segment) }
        if receiverUnseen && SequenceNumber.after(sender.end, sender.maxEnd) {
            // Until the receiver's window is known, what this side was seen to send is the
            // least its upper bound can be.
            sender.maxEnd = sender.end
        }
        return .accept
    }

    /// A picked-up side shows where it stands (see above): a FIN ends its sequence space
    /// exactly; a segment with nothing in it (no data, SYN or FIN) carries SND.NXT, or
    /// SND.NXT - 1 when it is a keepalive, so one more is allowed for that. One behind what the
    /// side was seen to send proves nothing: a stack that winds SND.NXT back to retransmit
    /// after a timeout may put that in its ACKs (BSD takes care not to).
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
}
