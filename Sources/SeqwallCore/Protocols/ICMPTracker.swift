/// ICMP and ICMPv6 echo flows, and ICMP errors about tracked flows, as the kernel's
/// nf_conntrack_proto_icmp.c and nf_conntrack_proto_icmpv6.c track them (docs/design.md,
/// UDP and ICMP flows, ICMP errors). An echo flow is keyed as ICMPEcho explains; an error
/// never creates or changes state.
public enum ICMPTracker {
    /// Whether a datagram of `kind` may open a flow: an echo reply never does (the kernel's
    /// icmp_new refuses every type but a request).
    static func mayOpen(_ kind: DatagramKind) -> Bool {
        kind != .echoReply
    }

    /// A new echo flow's request: the echo timeout.
    static func begin(_ connection: inout Connection, now: UInt64, timeouts: DatagramTimeouts) {
        connection.expiresAt = now &+ UInt64(timeouts.icmp) &* TCPStateMachine.nanosecondsPerSecond
    }

    /// An echo request or reply of a flow the table holds, going `direction`. False when it
    /// does not belong to the flow: a request belongs to the original direction, a reply to
    /// the reply direction. The other way round happens only when two hosts ping each other
    /// with identifiers that equal each other's type-and-code half of the key (ICMPEcho):
    /// conntrack would keep two flows, seqwall has one key for both, so the second host's
    /// request is refused rather than let in as a reply without a rule.
    static func track(_ connection: inout Connection, kind: DatagramKind, direction: FlowDirection, now: UInt64,
                      timeouts: DatagramTimeouts) -> Bool {
        if kind == .echoRequest && direction == .reply || kind == .echoReply && direction == .original {
            return false
        }
        connection.expiresAt = now &+ UInt64(timeouts.icmp) &* TCPStateMachine.nanosecondsPerSecond
        return true
    }

    /// Whether `error` relates to `connection`, the flow of the packet it quotes, which went
    /// `direction`. The error reports what happened to the quoted packet to whoever sent it:
    /// its destination is the quoted source. Otherwise a host that can reach one side of a
    /// tracked flow could send errors to any third host as "related" (the kernel's
    /// nf_conntrack_inet_error checks the outer destination against the connection's tuple,
    /// pf_icmp_state_lookup likewise). A quoted TCP segment must lie in its sender's window
    /// and belong to a connection that was not refused; for a refused UDP datagram only the
    /// port unreachable that answers it relates.
    static func relates(_ error: ICMPError, to connection: Connection, direction: FlowDirection) -> Bool {
        guard error.destination == error.quoted.source else { return false }
        if error.quoted.protocolNumber == TrackedProtocol.tcpNumber {
            return !connection.status.contains(.rejected)
                && quotedSequenceFits(error.quotedSequence, sender: connection.peer(direction),
                                      receiver: connection.peer(direction.opposite))
        }
        return !connection.status.contains(.rejected) || direction == .original
    }

    /// Whether the sequence number of a quoted TCP segment is one its sender may have sent:
    /// at most the sender's highest acceptable sequence (maxEnd), and at least its end minus
    /// the receiver's largest window, the furthest back a segment still in flight can start
    /// (pf_test_state_icmp: seq <= src->seqhi and seq >= src->seqlo - dst->max_win, the lower
    /// bound being TCPWindow's condition II). A sender whose data may be behind what it really
    /// sent (picked up mid-stream, or restored from a state file) is held to the lower bound
    /// only. An error cannot be forged blindly for a connection then: the forger must guess a
    /// sequence number within a window, as for an RST (RFC 5927 4.1 and 5.1).
    public static func quotedSequenceFits(_ sequence: UInt32, sender: TCPPeerState, receiver: TCPPeerState) -> Bool {
        // A side never seen sending has sent nothing an error could quote, unless it was
        // picked up and its end learned from the other side's ACKs.
        guard sender.maxWindow != 0 || sender.flags.contains(.endUnknown) else { return false }
        // A SYN not yet answered: the receiver has no window, the SYN is the one sequence number.
        let window = max(receiver.maxWindow, 1)
        guard SequenceNumber.after(sequence, sender.end &- window &- 1) else { return false }
        if sender.flags.contains(.relearning) || sender.flags.contains(.endUnknown) { return true }
        return !SequenceNumber.after(sequence, sender.maxEnd)
    }
}
