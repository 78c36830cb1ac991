/// UDP and ICMP echo flows, and ICMP errors about tracked flows, in the table: lookup, insert
/// and charging here; what a datagram or an error means is UDPTracker's and ICMPTracker's.
///
/// UDP and echo flows live in the same table as TCP connections, keyed by their FlowKey
/// (ICMPEcho explains the echo key). They are never half-open: only TCP handshakes count
/// toward the half-open limits, and a UDP flood competes for room in a full table like any
/// connection that is not assured (early drop).
///
/// An ICMP error never creates or changes state: it passes when it is related to a tracked
/// flow, else it is dropped (`icmp-unrelated`).
extension ConnectionTracker {
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
        let oldStatus = connection.pointee.status
        let timeouts = policy.datagramTimeouts
        switch datagram.kind {
        case .udp:
            UDPTracker.track(&connection.pointee, now: now, timeouts: timeouts)
        case .echoRequest, .echoReply:
            guard ICMPTracker.track(&connection.pointee, kind: datagram.kind, direction: direction, now: now,
                                    timeouts: timeouts) else { return dropped(.noConnection) }
        }
        table.deadlineChanged(at: slot)
        connection.pointee.count(direction, wireLength: datagram.wireLength)
        if recordsEvents && oldStatus != connection.pointee.status { events.append(.update, connection.pointee) }
        return accepted()
    }

    /// The first datagram of a flow the table does not hold.
    func open(_ datagram: Datagram, hook: PacketHook, now: UInt64) -> Verdict {
        guard ICMPTracker.mayOpen(datagram.kind) else { return dropped(.noConnection) }
        let key = datagram.key
        let protocolName = TrackedProtocol(protocolNumber: key.protocolNumber) ?? .udp
        let direction = self.direction(of: hook, source: key.source, destination: key.destination)
        let decision = policy.decide(protocolName: protocolName, direction: direction, source: key.source,
                                     destination: key.destination,
                                     destinationPort: protocolName.hasPorts ? key.destinationPort : 0,
                                     answers: hot.pointee.tableAnswers)
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
        if protocolName == .udp {
            UDPTracker.begin(&connection, now: now, timeouts: policy.datagramTimeouts)
        } else {
            ICMPTracker.begin(&connection, now: now, timeouts: policy.datagramTimeouts)
        }
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
        guard connection.pointee.expiresAt > now,
              ICMPTracker.relates(error, to: connection.pointee, direction: direction) else {
            return dropped(.icmpUnrelated)
        }
        if connection.pointee.status.contains(.rejected) {
            // The port unreachable seqwall sends for a refused UDP datagram (host mode queues
            // it on OUTPUT): let it out and forget the refusal, as for the RST.
            destroy(slot: slot)
        }
        return accepted()
    }
}
