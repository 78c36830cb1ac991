/// Connections restored from a state file (ConnectionTracker.restore) when seqwall starts
/// again, and the grace that lets their window data catch up with what moved while seqwall
/// was down.
///
/// With --queue-bypass, packets pass unchecked while no process holds the queue, so a
/// restored connection's sequence numbers are as old as the snapshot: both sides may have
/// sent megabytes since. Checked as they are, the first packets would fail condition I (data
/// beyond the restored maxEnd: seq-above-window) and III (an ACK of data the restored end
/// has not seen: ack-above-sent), and cut every busy connection.
///
/// So each side of a restored connection is marked `relearning` until its grace ends (below).
/// While the receiver of a segment is relearning, its end and the sender's maxEnd (which
/// comes from the receiver's ACKs) may be stale, and they move forward to what the segment
/// shows, like the kernel's pickup learns a connection from its first packets
/// (tcp_in_window, td_maxwin == 0), but:
///
/// - only forward: the segment must pass II and IV against the restored data (it is not
///   older than what the snapshot saw), so an old or far-off segment is judged as usual;
/// - never for an RST: an RST is checked against the data as restored (RFC 5961), and the
///   RST rules (exact sequence, RFC 1337) all apply;
/// - the window scale, SACK-permitted and maxWindow stay as the handshake set them, unlike
///   pickup, which must guess them and so checks the connection liberally for ever.
///
/// The grace ends for a side when two things have happened (RelearnProgress):
///
/// - it has sent a segment that was accepted: from then on its ACKs and window are current,
///   so the other side's data is checked against them in full (I);
/// - the other side has acknowledged no more than its end, without moving it: from then on
///   its end is what seqwall saw, so the other side's ACKs are checked against it in full
///   (III).
///
/// A segment of its own does not prove where a side's data stands: after a failover or a
/// restart, a sender that lost its ACKs in the gap retransmits from its oldest unacknowledged
/// byte, well below what it sent, while the receiver, which got everything, acknowledges the
/// top. Ending the grace on that retransmission would drop every ACK after it as
/// ack-above-sent, and the sender, which never hears one, would retransmit the same segment
/// for ever. A busy connection is fully checked again a round trip or two after the restart
/// or the takeover; a side that only sends data and never a bare ACK keeps its end relearned
/// forward by the other side's ACKs until one of those confirms it.
extension TCPWindow {
    /// A restored connection while either side is relearning: as `checkFull`, or as
    /// `checkPickedUp` for a connection that had been picked up, with a relearning receiver's
    /// data moved forward first (`relearn`).
    static func checkRelearning(_ sender: inout TCPPeerState, _ receiver: inout TCPPeerState,
                                _ progress: inout RelearnProgress, pickedUp: Bool, direction: FlowDirection,
                                segment: TCPSegment, state: TCPState) -> Result {
        if sender.maxWindow == 0 && !segment.flags.contains(.syn) {
            if pickedUp {
                learnOtherSide(&sender, segment: segment)
            } else {
                learnUnseenSender(&sender, &receiver, segment: segment)
            }
        }
        var seen = Seen(segment, receiver: receiver)
        if !seen.isPlainAck
            && !adjust(&seen, &sender, &receiver, direction: direction, segment: segment, state: state) {
            return .accept
        }
        let receiverUnseen = pickedUp && receiver.maxWindow == 0
        let receiverEnd = receiver.end
        let other = direction.opposite
        if receiver.flags.contains(.relearning) {
            relearn(&sender, &receiver, receiverSpoke: progress.contains(.spoke(other)),
                    receiverEndConfirmed: progress.contains(.endConfirmed(other)), seen)
        }
        let result = checkLearning(&sender, &receiver, seen, segment: segment, receiverUnseen: receiverUnseen)
        if result == .accept {
            if sender.flags.contains(.relearning) { advance(&sender, &progress, .spoke(direction), direction) }
            if receiver.flags.contains(.relearning) && seen.flags.contains(.ack)
                && !seen.flags.contains(.rst) && !SequenceNumber.after(seen.sack, receiverEnd) {
                advance(&receiver, &progress, .endConfirmed(other), other)
            }
        }
        return result
    }

    /// Records a step of a side's grace and ends it once both steps are done.
    static func advance(_ side: inout TCPPeerState, _ progress: inout RelearnProgress, _ step: RelearnProgress,
                        _ sideDirection: FlowDirection) {
        progress.insert(step)
        let complete = RelearnProgress.complete(sideDirection)
        if progress.isSuperset(of: complete) {
            side.flags.remove(.relearning)
            progress.subtract(complete)
        }
    }

    /// Moves a relearning receiver's end and the sender's maxEnd forward to what the segment
    /// shows, so that conditions I and III hold for a segment that is not older than the
    /// restored data.
    static func relearn(_ sender: inout TCPPeerState, _ receiver: inout TCPPeerState,
                        receiverSpoke: Bool, receiverEndConfirmed: Bool, _ seen: Seen) {
        guard !seen.flags.contains(.rst) else { return }
        // II and IV, as the checks will make them.
        let notOldData = receiver.maxWindow == 0
            || SequenceNumber.after(seen.end, sender.end &- receiver.maxWindow &- 1)
        let notOldAck = SequenceNumber.after(seen.sack, receiver.end &- maximumAckWindow(sender) &- 1)
        guard notOldData && notOldAck else { return }
        // I: data the receiver's window (as its ACKs set it before the snapshot) did not
        // cover yet, until the receiver's own ACKs are current. Moving maxEnd rather than
        // skipping the check keeps the window-overrun rule from growing the receiver's
        // maxWindow by the whole gap.
        if !receiverSpoke && SequenceNumber.after(seen.end, sender.maxEnd) {
            sender.maxEnd = seen.end
        }
        // III: an ACK of data the receiver sent while seqwall was down (or through the node
        // that failed), until an ACK has confirmed the receiver's end.
        if !receiverEndConfirmed && SequenceNumber.after(seen.sack, receiver.end) {
            receiver.end = seen.sack
        }
    }
}
