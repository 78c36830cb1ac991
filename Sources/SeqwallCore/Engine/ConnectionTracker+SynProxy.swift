/// The SYN proxy on the packet path (docs/synproxy.md): the handshakes of SynProxyHandshake
/// and the translation of SynProxyTranslation, called from `open` (a SYN or an ACK for no
/// connection on a `synproxy` rule) and from `decide` (a packet of a proxied connection).
/// What seqwall sends goes into `synProxyOutbox`. Nothing here runs for a policy without a
/// `synproxy` rule, nor for a connection that is not proxied.
extension ConnectionTracker {
    /// Reads a policy's SYN proxy settings, at start and on reload.
    func configureSynProxy(_ policy: Policy) {
        let any = policy.hasSynProxyRules
        hot.pointee.synProxyRules = any
        if any {
            table.makeProxyStates()
            if closedPorts == nil { closedPorts = ClosedPortMemory() }
        }
        synProxySwitch = SynProxySwitch(mode: policy.synProxyMode, tableLimit: table.limit)
    }

    /// Whether this tracker's queue proxies the `synproxy` rules' connections (true unless
    /// `seqwall run --synproxy-queue` names other queues for them). Where it does not, their
    /// SYNs are dropped as `synproxy-wrong-queue` and their ACKs for no connection are judged
    /// as any other: its copies are headers only, so a connection proxied here would lose
    /// every packet to `synproxy-short-copy` (docs/synproxy.md).
    public var proxiesSynProxyRules: Bool {
        get { !hot.pointee.synProxyElsewhere }
        set { hot.pointee.synProxyElsewhere = !newValue }
    }

    /// Takes the keys the daemon rotated (SynCookieSecret), between packets.
    public func useCookies(_ cookies: SynCookie) {
        self.cookies = cookies
    }

    /// `forEachConnection(from:examining:)` with each proxied connection's state, which the
    /// state file and the sync carry (StateSnapshot+SynProxy.swift).
    public func forEachConnection(from cursor: ConnectionCursor, examining limit: Int,
                                  _ body: (Connection, SynProxyState?) -> Void) -> ConnectionCursor? {
        forEachConnectionInSlot(from: cursor, examining: limit) { _, connection, proxy in body(connection, proxy) }
    }

    /// Makes the connection in `slot` a proxied one with `state` (a restored or synced one).
    func adoptProxyState(_ state: SynProxyState, slot: Int) {
        table.makeProxyStates()
        guard let states = table.proxyStates else { return }
        let connection = table.connection(at: slot)
        if connection.pointee.proxied {
            states[slot] = state
        } else {
            (states + slot).initialize(to: state)
            connection.pointee.proxied = true
        }
    }

    /// The `synproxy` clause of the rule a decision names, if it has one.
    func synProxyRule(_ ruleIndex: Int?) -> SynProxyRule? {
        guard let ruleIndex, ruleIndex < policy.rules.count else { return nil }
        return policy.rules[ruleIndex].synProxy
    }

    /// The clock of the timestamps seqwall's SYN-ACKs carry: milliseconds of the tracker's clock
    /// (RFC 7323 5.4 asks for a clock between 1 ms and 1 s per tick).
    static func timestampClock(_ now: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: now / 1_000_000) }

    /// Queues one of seqwall's own segments; counted lost when the outbox is full.
    func send(_ segment: TCPSegment) {
        if !synProxyOutbox.append(segment) { hot.pointee.counters.synProxySegmentsLost += 1 }
    }

    /// Takes back the counting of a verdict the tracker reached on the way to another one for
    /// the same packet (a handshake segment seqwall consumed after tracking it), so that each
    /// packet is counted once.
    func uncount(_ verdict: Verdict) {
        switch verdict {
        case .accept, .acceptRewritten:
            hot.pointee.counters.accepted -= 1
        case .drop(let reason):
            hot.pointee.counters.dropped -= 1
            hot.pointee.counters.drops[Int(reason.rawValue)] -= 1
        case .reject:
            hot.pointee.counters.dropped -= 1
            hot.pointee.counters.drops[Int(DropReason.rule.rawValue)] -= 1
        }
    }

    /// A SYN a `synproxy` rule passed. While the proxy is engaged it is answered with the
    /// cookie SYN-ACK (`answerSyn`), unless the server has refused a proxied handshake to its
    /// port lately (ClosedPortMemory): then, as when the proxy is not engaged, it goes to the
    /// server as any passed SYN, so that the server's own RST answers it. Such a connection is
    /// marked, so that the server's SYN-ACK, which shows the port open, clears the port's mark.
    // Never inlined: it keeps `open`, every SYN's path, as small as without the proxy.
    @inline(never)
    func openSynProxied(_ segment: TCPSegment, key: FlowKey, rule: SynProxyRule, direction: Direction,
                        ruleIndex: Int?, now: UInt64) -> Verdict {
        if synProxySwitch.update(halfOpen: halfOpenCount) {
            guard let closedPorts, closedPorts.isClosed(segment.destination, port: segment.destinationPort, now: now)
            else {
                // Answered by seqwall, nothing stored; not a connection the rule passed (yet).
                return answerSyn(segment, rule: rule, now: now)
            }
            hot.pointee.counters.synProxyClosedPortsPassed += 1
        }
        let verdict = admitPassed(segment, key: key, direction: direction, ruleIndex: ruleIndex, now: now)
        hot.pointee.rules.count(verdict, ruleIndex: ruleIndex, direction: direction, now: now)
        if verdict == .accept, let (slot, _) = table.find(key) {
            table.connection(at: slot).pointee.halfOpenCharges.insert(.synProxyPassed)
        }
        return verdict
    }

    /// A connection `openSynProxied` passed changed state. Into SYN_RECV (or on to
    /// ESTABLISHED), the server has answered its SYN: the port is open, and its mark goes at
    /// once so that its next SYNs are proxied again.
    func synProxyPassedStateChanged(slot: Int, to newState: TCPState) {
        guard newState == .synRecv || newState == .established else { return }
        let connection = table.connection(at: slot)
        connection.pointee.halfOpenCharges.remove(.synProxyPassed)
        closedPorts?.forget(connection.pointee.key.destination, port: connection.pointee.key.destinationPort)
    }

    /// A SYN a `synproxy` rule passed while the proxy is engaged: answered with the cookie
    /// SYN-ACK and dropped. Nothing is stored, so a flood of spoofed SYNs costs no table entry.
    func answerSyn(_ segment: TCPSegment, rule: SynProxyRule, now: UInt64) -> Verdict {
        send(SynProxyHandshake.synAck(answering: segment, rule: rule, cookies: cookies,
                                      counter: cookies.counter(now: now),
                                      timestampClock: ConnectionTracker.timestampClock(now)))
        hot.pointee.counters.synProxyCookiesSent += 1
        return dropped(.synProxyHandshake)
    }

    /// An ACK for no connection: nil when no `synproxy` rule passes its flow (it is judged as
    /// any such ACK), or when its cookie is bad but pickup may adopt it. A good cookie opens the
    /// proxied connection, tracked from the SYN seqwall sends the server in the client's name;
    /// the ACK itself is dropped (it carries no data: the SYN-ACK's window was 0). Checked
    /// whether or not the adaptive switch is engaged now: the SYN-ACK went out while it was.
    func cookieAck(_ segment: TCPSegment, key: FlowKey, hook: PacketHook, now: UInt64) -> Verdict? {
        let decision = self.decision(for: segment, hook: hook, openedBySender: true)
        guard decision.action == .pass, let rule = synProxyRule(decision.ruleIndex) else { return nil }
        guard let state = cookieState(segment, rule: rule, now: now) else {
            if picksUp(now: now) { return nil }
            hot.pointee.counters.synProxyInvalidAcks += 1
            return dropped(.synProxyBadCookie)
        }
        hot.pointee.counters.synProxyValidAcks += 1
        let syn = SynProxyHandshake.serverSyn(for: state, ack: segment)
        var connection = Connection(key: key, direction: decision.direction)
        guard TCPStateMachine.begin(&connection, with: syn, pickup: false) else { return dropped(.noConnection) }
        let verdict = store(&connection, firstSegment: syn, sender: .original, ruleIndex: decision.ruleIndex, now: now)
        hot.pointee.rules.count(verdict, ruleIndex: decision.ruleIndex, direction: decision.direction, now: now)
        guard verdict == .accept, let (slot, _) = table.find(key), let states = table.proxyStates else { return verdict }
        uncount(verdict)
        table.connection(at: slot).pointee.proxied = true
        (states + slot).initialize(to: state)
        // `store` recorded the opening before the mark (the mark needs the state, and the state
        // its slot): the event says proxied too, for `conntrack watch` and the sync (WorkerSync).
        if recordsEvents { events.markProxied(openingOf: key) }
        hot.pointee.counters.synProxyConnections += 1
        send(syn)
        return dropped(.synProxyHandshake)
    }

    /// The proxied connection a cookie ACK opens, nil when its cookie is bad. The client's ISN
    /// is taken as the sequence number less one (its first ACK); for an ACK without payload,
    /// failing that, as the sequence number itself: after its first ACK is lost, a client
    /// facing the cookie SYN-ACK's zero window sends only window probes, whose sequence number
    /// is one below the next (tcp_xmit_probe_skb: snd_una - 1, the ISN), and would otherwise
    /// never get through. The kernel's SYNPROXY checks the first reading only
    /// (__cookie_v4_check), and such a client times out behind it.
    private func cookieState(_ segment: TCPSegment, rule: SynProxyRule, now: UInt64) -> SynProxyState? {
        let counter = cookies.counter(now: now)
        if let state = SynProxyHandshake.accept(ack: segment, rule: rule, cookies: cookies, counter: counter) {
            return state
        }
        guard segment.payloadLength == 0 else { return nil }
        var probe = segment
        probe.sequence &+= 1
        return SynProxyHandshake.accept(ack: probe, rule: rule, cookies: cookies, counter: counter)
    }

    /// A packet of a proxied connection. Before the server has answered, only its SYN-ACK or
    /// RST is expected (SynProxyHandshake). After, the packet is translated and tracked in the
    /// server half's numbers: from the client after translation, from the server before, so
    /// the window tracking needs no change; it is accepted rewritten, which needs it whole.
    // Never inlined: it keeps the established path of every other connection as small as it was.
    @inline(never)
    func trackProxied(slot: Int, direction: FlowDirection, segment: TCPSegment, packet: UnsafeRawBufferPointer?,
                      hook: PacketHook, now: UInt64) -> Verdict {
        guard let states = table.proxyStates else { return dropped(.noConnection) }
        let connection = table.connection(at: slot)
        let state = states[slot]
        guard state.serverAnswered else {
            return proxiedHandshake(slot: slot, connection: connection, direction: direction, segment: segment,
                                    hook: hook, now: now)
        }
        if direction == .reply && segment.flags.contains([.syn, .ack]) {
            // The server repeats its SYN-ACK: seqwall's ACK was lost. It is answered again.
            var again = state
            if let (toServer, _) = SynProxyHandshake.serverAnswered(&again, synAck: segment) { send(toServer) }
            return dropped(.synProxyHandshake)
        }
        guard let packet, packet.count >= segment.wireLength else { return dropped(.synProxyShortCopy) }
        // Where the TCP header starts is read again here rather than carried from the parse,
        // which would keep it alive on every other connection's path too.
        var network = PacketParser.NetworkLayer()
        guard PacketParser.parseNetwork(packet, wireLength: segment.wireLength, into: &network) == nil else {
            return dropped(.badHeader)
        }
        let tcpOffset = network.offset
        let bytes = UnsafeMutableRawBufferPointer(mutating: packet)
        let scales = (server: state.serverWindowScale ?? 0, client: state.advertisedWindowScale ?? 0)
        if direction == .original {
            guard SynProxyTranslation.translate(bytes, tcpOffset: tcpOffset, fromClient: true,
                                                sequenceOffset: state.sequenceOffset,
                                                timestampOffset: state.timestampOffset, windowScale: scales) else {
                return dropped(.badOptions)
            }
            var translated = segment
            if translated.flags.contains(.ack) { translated.acknowledgment &+= state.sequenceOffset }
            if translated.options.hasSACK { translated.options.sackRightEdge &+= state.sequenceOffset }
            if translated.options.hasTimestamps { translated.options.timestampEcho &+= state.timestampOffset }
            let verdict = track(slot: slot, connection: connection, direction: direction, segment: translated,
                                hook: hook, now: now)
            return verdict == .accept ? .acceptRewritten : verdict
        }
        let verdict = track(slot: slot, connection: connection, direction: direction, segment: segment, hook: hook,
                            now: now)
        guard verdict == .accept else { return verdict }
        _ = SynProxyTranslation.translate(bytes, tcpOffset: tcpOffset, fromClient: false,
                                          sequenceOffset: state.sequenceOffset, timestampOffset: state.timestampOffset,
                                          windowScale: scales)
        return .acceptRewritten
    }

    /// A proxied connection's packet before the server answered seqwall's SYN. The server's
    /// SYN-ACK: the offsets are learned, the SYN-ACK and seqwall's ACK to the server are
    /// tracked (the connection is then established in the server half's numbers), the ACK and
    /// the client's window update go out, the SYN-ACK is dropped. The server's RST that
    /// answers the SYN (a closed port): an RST to the client, and the connection goes.
    /// Anything else waits for the server: the client's window is still closed.
    private func proxiedHandshake(slot: Int, connection: UnsafeMutablePointer<Connection>, direction: FlowDirection,
                                  segment: TCPSegment, hook: PacketHook, now: UInt64) -> Verdict {
        let states = table.proxyStates!
        guard direction == .reply else {
            // The client has the connection (its ACK proved the cookie) but sees a window of 0
            // until the server answers, so it sends only window probes. Nothing but the client
            // would retransmit the SYN seqwall sent the server: each probe sends it again, so a
            // SYN lost on the way (or to a full outbox) costs one probe interval, not the
            // connection. Paced by the client's probe backoff, one SYN a probe.
            if !segment.flags.contains(.rst) && !segment.flags.contains(.syn) {
                send(SynProxyHandshake.serverSyn(for: states[slot], ack: segment))
            }
            return dropped(.synProxyHandshake)
        }
        if segment.flags.contains(.rst) {
            // RFC 9293 3.10.7.3: an RST in SYN-SENT is taken when it acknowledges the SYN.
            guard segment.flags.contains(.ack), segment.acknowledgment == states[slot].clientISN &+ 1 else {
                return dropped(.rstOutOfWindow)
            }
            send(SynProxyHandshake.refusal(states[slot], reset: segment))
            hot.pointee.counters.synProxyRefused += 1
            // The port is closed: its next SYNs go to the server, whose RST answers them.
            closedPorts?.remember(connection.pointee.key.destination, port: connection.pointee.key.destinationPort,
                                  now: now)
            destroy(slot: slot)
            return dropped(.synProxyHandshake)
        }
        var answered = states[slot]
        guard let (toServer, toClient) = SynProxyHandshake.serverAnswered(&answered, synAck: segment) else {
            return dropped(.badTransition)
        }
        let key = connection.pointee.key
        let synAckVerdict = track(slot: slot, connection: connection, direction: .reply, segment: segment, hook: hook,
                                  now: now)
        // Tracking may have ended the connection (its slot then holds another, or none).
        guard synAckVerdict == .accept, table.isOccupied(slot), connection.pointee.key == key else {
            return synAckVerdict
        }
        uncount(synAckVerdict)
        states[slot] = answered
        uncount(track(slot: slot, connection: connection, direction: .original, segment: toServer, hook: hook,
                      now: now))
        send(toServer)
        send(toClient)
        return dropped(.synProxyHandshake)
    }
}
