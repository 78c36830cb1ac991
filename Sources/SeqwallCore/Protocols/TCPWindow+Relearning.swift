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
    /// A restored connection while either side is relearning: as `checkFull`, or as
    /// `checkPickedUp` for a connection that had been picked up, with a relearning receiver's
    /// data moved forward first (`relearn`).
    static func checkRelearning(_ sender: inout TCPPeerState, _ receiver: inout TCPPeerState, pickedUp: Bool,
                                direction: FlowDirection, segment: TCPSegment, state: TCPState) -> Result {
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
        if receiver.flags.contains(.relearning) { relearn(&sender, &receiver, seen) }
        let result = checkLearning(&sender, &receiver, seen, segment: segment, receiverUnseen: receiverUnseen)
        if result == .accept { sender.flags.remove(.relearning) }
        return result
    }

    /// Moves a relearning receiver's end and the sender's maxEnd forward to what the segment
    /// shows, so that conditions I and III hold for a segment that is not older than the
    /// restored data.
    static func relearn(_ sender: inout TCPPeerState, _ receiver: inout TCPPeerState, _ seen: Seen) {
        guard !seen.flags.contains(.rst) else { return }
        // II and IV, as the checks will make them.
        let notOldData = receiver.maxWindow == 0
            || SequenceNumber.after(seen.end, sender.end &- receiver.maxWindow &- 1)
        let notOldAck = SequenceNumber.after(seen.sack, receiver.end &- maximumAckWindow(sender) &- 1)
        guard notOldData && notOldAck else { return }
        // I: data the receiver's window (as its ACKs set it before the snapshot) did not
        // cover yet. Moving maxEnd rather than skipping the check keeps the window-overrun
        // rule from growing the receiver's maxWindow by the whole gap.
        if SequenceNumber.after(seen.end, sender.maxEnd) { sender.maxEnd = seen.end }
        // III: an ACK of data the receiver sent while seqwall was down.
        if SequenceNumber.after(seen.sack, receiver.end) { receiver.end = seen.sack }
    }
}
