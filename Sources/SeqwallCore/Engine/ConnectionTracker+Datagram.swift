/// UDP and ICMP echo flows, and ICMP errors about tracked flows (docs/design.md, UDP and ICMP
/// flows, ICMP errors).
///
/// UDP and echo flows live in the same table as TCP connections, keyed by their FlowKey
/// (ICMPEcho explains the echo key), with state NONE and only the status bits conntrack shows
/// for them: `[UNREPLIED]` until the other side answers, `[ASSURED]` for a UDP stream. They
/// are never half-open: only TCP handshakes count toward the half-open limits, and a UDP flood
/// competes for room in a full table like any connection that is not assured (early drop).
///
/// An ICMP error never creates or changes state: it passes when it is related to a tracked
/// flow, else it is dropped (`icmp-unrelated`).
extension ConnectionTracker {
    /// How long after a UDP flow begins traffic both ways makes it a stream (the kernel's
    /// stream_ts, nf_conntrack_udp_packet: "still active after two seconds? Extend timeout").
    static let udpStreamDelay: UInt64 = 2_000_000_000

    /// Decides one UDP datagram or ICMP echo request or reply.
    public func process(_ datagram: Datagram, hook: PacketHook, now: UInt64) -> Verdict {
        hot.pointee.counters.seen += 1
        if let (slot, direction) = table.find(datagram.key) {
            let connection = table.connection(at: slot)
            if connection.pointee.expiresAt > now {
                return refresh(slot: slot, connection: connection, direction: direction, datagram: datagram, now: now)
            }
            destroy(slot: slot)
        }
        return open(datagram, hook: hook, now: now)
    }

    /// A datagram of a flow the table holds.
    func refresh(slot: Int, connection: UnsafeMutablePointer<Connection>, direction: FlowDirection,
                 datagram: Datagram, now: UInt64) -> Verdict {
        if connection.pointee.status.contains(.rejected) {
            // A retransmitted request is refused again; nothing answers a refusal.
            return direction == .original ? rejectedByRule() : dropped(.noConnection)
        }
        // A request belongs to the original direction, a reply to the reply direction. The
        // other way round happens only when two hosts ping each other with identifiers that
        // equal each other's type-and-code half of the key (ICMPEcho): conntrack would keep two
        // flows, seqwall has one key for both, so the second host's request is refused rather
        // than let in as a reply without a rule.
        if datagram.kind == .echoRequest && direction == .reply || datagram.kind == .echoReply && direction == .original {
            return dropped(.noConnection)
        }
        let oldStatus = connection.pointee.status
        let timeouts = policy.datagramTimeouts
        let seconds: UInt32
        switch datagram.kind {
        case .udp:
            // nf_conntrack_udp_packet: a flow that has seen a reply and is still active 2 s after
            // it began is a stream, with the long timeout, and assured. The reply itself is
            // noted after the timeout is chosen (nf_conntrack_in sets IPS_SEEN_REPLY after the
            // protocol's handler), so the first reply keeps the short one.
            if oldStatus.contains(.seenReply) && now &- connection.pointee.createdAt >= ConnectionTracker.udpStreamDelay {
                seconds = timeouts.udpStream
                connection.pointee.status.insert(.assured)
            } else {
                seconds = timeouts.udpSingle
            }
        case .echoRequest, .echoReply:
            seconds = timeouts.icmp
        }
        connection.pointee.expiresAt = now &+ UInt64(seconds) &* 1_000_000_000
        table.deadlineChanged(at: slot)
        connection.pointee.count(direction, wireLength: datagram.wireLength)
        if recordsEvents && oldStatus != connection.pointee.status { events.append(.update, connection.pointee) }
        return accepted()
    }

    /// The first datagram of a flow the table does not hold.
    func open(_ datagram: Datagram, hook: PacketHook, now: UInt64) -> Verdict {
        // Only a request opens an echo flow (the kernel's icmp_new refuses every other type).
        guard datagram.kind != .echoReply else { return dropped(.noConnection) }
        let key = datagram.key
        let protocolName = TrackedProtocol(protocolNumber: key.protocolNumber) ?? .udp
        let direction = self.direction(of: hook, source: key.source, destination: key.destination)
        let decision = policy.decide(protocolName: protocolName, direction: direction, source: key.source,
                                     destination: key.destination,
                                     destinationPort: protocolName.hasPorts ? key.destinationPort : 0)
        let verdict: Verdict
        switch decision.action {
        case .block:
            verdict = dropped(.rule)
        case .reject:
            // A rejected UDP datagram is answered with a port unreachable; an echo request has
            // no such answer, so a `reject` (a default one: rules refuse it) drops it.
            if protocolName == .udp {
                rememberRejection(key, direction: direction, state: .none, now: now)
                verdict = rejectedByRule()
            } else {
                verdict = dropped(.rule)
            }
        case .pass:
            verdict = admitPassed(datagram, protocolName: protocolName, direction: direction,
                                  ruleIndex: decision.ruleIndex, now: now)
        }
        hot.pointee.rules.count(verdict, ruleIndex: decision.ruleIndex, direction: direction, now: now)
        return verdict
    }

    /// A new flow a rule (or the default) passed: into the table, unless there is no room.
    /// Inlined into `open`, which reads the policy too: one access to it instead of two.
    @inline(__always)
    func admitPassed(_ datagram: Datagram, protocolName: TrackedProtocol, direction: Direction, ruleIndex: Int?,
                     now: UInt64) -> Verdict {
        let key = datagram.key
        var connection = Connection(key: key, direction: direction)
        let seconds = protocolName == .udp ? policy.datagramTimeouts.udpSingle : policy.datagramTimeouts.icmp
        connection.expiresAt = now &+ UInt64(seconds) &* 1_000_000_000
        connection.createdAt = now
        connection.packetsOriginal = 1
        connection.bytesOriginal = UInt64(datagram.wireLength)
        // Not half-open, so only the room in the table is checked (and made, by early drop).
        if let reason = admit(&connection, ruleIndex: ruleIndex, now: now) { return dropped(reason) }
        guard table.insert(connection) != nil else { return dropped(.tableFull) }
        hot.pointee.counters.created += 1
        if recordsEvents { events.append(.new, connection) }
        return accepted()
    }

    // MARK: ICMP errors

    /// Decides one ICMP or ICMPv6 error: it passes when the packet it quotes belongs to a
    /// tracked flow, the error goes back to that packet's sender, and a quoted TCP sequence
    /// number lies in the sender's window. It never creates, refreshes or counts toward a flow.
    public func process(_ error: ICMPError, now: UInt64) -> Verdict {
        hot.pointee.counters.seen += 1
        guard let (slot, direction) = table.find(error.quoted) else { return dropped(.icmpUnrelated) }
        let connection = table.connection(at: slot)
        guard connection.pointee.expiresAt > now else { return dropped(.icmpUnrelated) }
        // The error reports what happened to the quoted packet to whoever sent it: its
        // destination is the quoted source. Otherwise a host that can reach one side of a
        // tracked flow could send errors to any third host as "related" (the kernel's
        // nf_conntrack_inet_error checks the outer destination against the connection's
        // tuple, pf_icmp_state_lookup likewise).
        guard error.destination == error.quoted.source else { return dropped(.icmpUnrelated) }
        if error.quoted.protocolNumber == TrackedProtocol.tcpNumber {
            guard !connection.pointee.status.contains(.rejected),
                  ConnectionTracker.quotedSequenceFits(error.quotedSequence, sender: connection.pointee.peer(direction),
                                                       receiver: connection.pointee.peer(direction.opposite))
            else { return dropped(.icmpUnrelated) }
        } else if connection.pointee.status.contains(.rejected) {
            // The port unreachable seqwall sends for a refused UDP datagram (host mode queues
            // it on OUTPUT): let it out and forget the refusal, as for the RST.
            guard direction == .original else { return dropped(.icmpUnrelated) }
            destroy(slot: slot)
        }
        return accepted()
    }

    /// Whether the sequence number of a quoted TCP segment is one its sender may have sent:
    /// at most the sender's highest acceptable sequence (maxEnd), and at least its end minus
    /// the receiver's largest window, the furthest back a segment still in flight can start
    /// (pf_test_state_icmp: seq <= src->seqhi and seq >= src->seqlo - dst->max_win, the lower
    /// bound being TCPWindow's condition II). A sender whose data may be behind what it really
    /// sent (picked up mid-stream, or restored from a state file) is held to the lower bound
    /// only. An error cannot be forged blindly for a connection then: the forger must guess a
    /// sequence number within a window, as for an RST (RFC 5927 4.1 and 5.1).
    @inline(__always)
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
