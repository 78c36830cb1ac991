/// The engine: the whole per-packet decision (parse, find the connection, run the state
/// machine, apply the policy to new connections, keep the table and counters) and what the
/// rest of seqwall may ask of the table. One per worker; not thread-safe by design (no locks
/// on the packet path).
///
/// Its public contract:
/// - deciding packets: `process(_:wireLength:hook:now:)`, one packet; `process(batch:verdicts:now:)`,
///   up to `batchCapacity` at once, decided exactly as one by one (ConnectionTracker+Batch.swift);
///   `passOwnAnswer(insteadOf:)` for seqwall's own reject answers;
/// - upkeep between packets: `expire(now:budget:)`, `replacePolicy(_:)`, `startPickupGrace(now:)`;
/// - queries and mutations of the table, all by value (ConnectionTracker+Table.swift): lookup by
///   tuple, listing whole or in chunks, removal by tuple or by predicate, sizes, the limiters'
///   figures;
/// - the state file: `restore(_:now:)` puts a saved connection back (ConnectionTracker+Restore.swift);
///   a listing feeds StateSnapshot.Encoder;
/// - figures: `counters`, `ruleCounters`, `halfOpenCount`, and the `events` of `conntrack watch`
///   while `recordsEvents` is on.
///
/// Slots, index positions and pointers stay inside the engine.
public final class ConnectionTracker {
    public internal(set) var policy: Policy
    let table: ConnectionTable
    /// What the packet path reads and writes on every packet, behind a pointer: every access
    /// to a stored `var` of a class is checked for exclusivity at run time (swift_beginAccess,
    /// a cost on every packet, BENCHMARKS.md), memory reached through an UnsafeMutablePointer
    /// is not, and a tracker belongs to one thread, so no two accesses can overlap anyway.
    let hot: UnsafeMutablePointer<TrackerHotState>
    public var counters: TrackerCounters { hot.pointee.counters }
    /// What each rule of the policy decided, in file order, then `default in` and `default
    /// out` (RuleCounterTable): a copy, for the owner's thread to hand out.
    public var ruleCounters: [RuleCounter] { hot.pointee.rules.snapshot }
    /// Connections that have not completed their handshake (SYN_SENT, SYN_SENT2, SYN_RECV).
    public internal(set) var halfOpenCount: Int {
        get { hot.pointee.halfOpenCount }
        set { hot.pointee.halfOpenCount = newValue }
    }
    /// Table changes for `conntrack watch`, recorded only while `recordsEvents` is on (someone
    /// is watching); the owner collects and resets them.
    public let events = ConnectionEventBuffer(capacity: 4096)
    /// Sources that went over a connection limit with `overload` (ConnectionTracker+Overload.swift),
    /// for the owner to collect between packet batches and reset.
    public let overloads = FixedBuffer<OverloadEvent>(capacity: 256)
    public var recordsEvents: Bool {
        get { hot.pointee.recordsEvents }
        set { hot.pointee.recordsEvents = newValue }
    }
    /// The half-open, per-source and SYN-rate limits (ConnectionTracker+Limits.swift).
    let limiter: HalfOpenLimiter
    /// Scratch room for the warm-up of one batch (ConnectionTracker+Batch.swift), allocated
    /// once: the packet path allocates nothing.
    let batchProbes: UnsafeMutablePointer<BatchProbe>
    /// The table answers of a batch's new flows (ConnectionTracker+DecisionWarmup.swift), in
    /// the order of `batchProbes`' `newFlow`; allocated once, like it.
    let batchAnswers: UnsafeMutablePointer<TableAnswers>
    /// The segments the SYN proxy sends (SynProxyOutbox), for the owner to send after each
    /// batch and reset.
    public let synProxyOutbox = SynProxyOutbox()
    /// The SYN proxy's cookie keys (random until the daemon hands it the keys of its secret,
    /// SynCookieSecret) and, for `set synproxy adaptive`, whether it is engaged.
    var cookies = SynCookie()
    var synProxySwitch = SynProxySwitch(mode: .always, tableLimit: 1)
    /// Server ports seen refusing proxied handshakes, made with the proxy's side table.
    var closedPorts: ClosedPortMemory?

    /// `capacity` overrides the policy's `limit states` (a worker gets its share of it);
    /// `shares` is how many trackers divide the global half-open limit the same way.
    /// `wheelBuckets` sizes the expiry wheel and `regionProvider` provides the table's large
    /// arrays (ConnectionTable).
    public init(policy: Policy, capacity: Int? = nil, shares: Int = 1, hasher: FlowHasher = FlowHasher(),
                wheelBuckets: Int = ConnectionTable.defaultWheelBuckets,
                regionProvider: RegionProvider? = nil) {
        self.policy = policy
        hot = .allocate(capacity: 1)
        hot.initialize(to: TrackerHotState(timeouts: policy.timeouts,
                                           rules: RuleCounterTable(ruleCount: policy.rules.count)))
        batchProbes = .allocate(capacity: ConnectionTracker.batchCapacity)
        batchProbes.initialize(repeating: BatchProbe(tag: 0, position: 0, loaded: 0, newFlow: 0), count: ConnectionTracker.batchCapacity)
        batchAnswers = .allocate(capacity: ConnectionTracker.batchCapacity)
        batchAnswers.initialize(repeating: TableAnswers(source: IPAddress(high: 0, low: 0), destination: IPAddress(high: 0, low: 0)),
                                count: ConnectionTracker.batchCapacity)
        self.table = ConnectionTable(limit: max(1, capacity ?? policy.limits.states), hasher: hasher,
                                     wheelBuckets: wheelBuckets, regionProvider: regionProvider)
        let seeds = hasher.seeds
        limiter = HalfOpenLimiter(policy: policy, tableLimit: table.limit, shares: shares,
                                  seeds: (seeds.1 ^ seeds.4, seeds.2 ^ seeds.0, seeds.3 ^ seeds.1))
        configureSynProxy(policy)
    }

    deinit {
        hot.pointee.rules.deallocate()
        hot.deinitialize(count: 1)
        hot.deallocate()
        batchProbes.deallocate()
        batchAnswers.deallocate()
    }

    /// Swaps in a new policy between packets. The table and its connections stay; the new table
    /// limit applies when a tracker is made anew. Connections keep the per-source counts they
    /// were charged to (HalfOpenCharges), whatever the new limits are. `carry` is the plan of
    /// rule counters and per-source limit ids for this pair of policies, worked out beforehand
    /// off the packet thread (the daemon does, once for all its workers); without one it is
    /// worked out here.
    public func replacePolicy(_ newPolicy: Policy, carry: RuleCounterCarry? = nil) {
        var plan = carry ?? RuleCounterCarry(from: policy.rules, to: newPolicy.rules)
        if plan.oldCount != policy.rules.count || plan.sources.count != newPolicy.rules.count {
            plan = RuleCounterCarry(from: policy.rules, to: newPolicy.rules)
        }
        let counters = hot.pointee.rules.carried(by: plan)
        hot.pointee.rules.deallocate()
        hot.pointee.rules = counters
        policy = newPolicy
        // A reload never starts a grace period; `set pickup grace 0` ends a running one.
        if newPolicy.pickupGrace == 0 { hot.pointee.pickupGraceEnds = 0 }
        limiter.configure(newPolicy, plan: plan, tableLimit: table.limit, now: limiter.now)
        hot.pointee.timeouts = newPolicy.timeouts
        hot.pointee.timeoutsPressure = nil
        configureSynProxy(newPolicy)
    }

    // MARK: Packets

    /// Decides one raw IP packet.
    public func process(_ bytes: UnsafeRawBufferPointer, wireLength: Int, hook: PacketHook, now: UInt64) -> Verdict {
        // TCP, the common case, is parsed straight into `segment` (no ParsedPacket to copy out of).
        var network = PacketParser.NetworkLayer()
        var segment = TCPSegment()
        switch PacketParser.parse(bytes, wireLength: wireLength, network: &network, tcp: &segment) {
        case .tcp:
            return decide(segment, packet: bytes, hook: hook, now: now)
        case .invalid(let reason):
            hot.pointee.counters.seen += 1
            return dropped(reason)
        case .otherTransport:
            break
        }
        switch PacketParser.parseTransport(bytes, network) {
        case .tcp(let segment):
            return decide(segment, packet: bytes, hook: hook, now: now)
        case .datagram(let datagram):
            return process(datagram, hook: hook, now: now)
        case .icmpError(let error):
            return process(error, now: now)
        case .neighbourDiscovery:
            // Without it IPv6 has no neighbours; it is link-local and never forwarded.
            hot.pointee.counters.seen += 1
            return accepted()
        case .other(_, let source, let destination):
            hot.pointee.counters.seen += 1
            let direction = self.direction(of: hook, source: source, destination: destination)
            let decision = policy.decideUntracked(direction: direction, source: source, destination: destination)
            guard let ruleIndex = decision.ruleIndex else {
                return decision.action == .pass ? accepted() : dropped(.unsupportedProtocol)
            }
            // A rule written without a protocol decided: counted as its rule, as pf does. A
            // `reject` has no answer for an unknown protocol; it drops.
            let verdict = decision.action == .pass ? accepted() : dropped(.rule)
            hot.pointee.rules.count(verdict, ruleIndex: ruleIndex, direction: direction, now: now)
            return verdict
        case .invalid(let reason):
            hot.pointee.counters.seen += 1
            return dropped(reason)
        }
    }

    /// Decides one parsed TCP segment. Without its bytes, a proxied connection's segment cannot
    /// be translated: it is dropped (`synproxy-short-copy`).
    public func process(_ segment: TCPSegment, hook: PacketHook, now: UInt64) -> Verdict {
        decide(segment, packet: nil, hook: hook, now: now)
    }

    /// Decides one parsed TCP segment; `packet` is the packet it came in, which a proxied
    /// connection's segment is translated in, in place: the caller's memory must be writable.
    // Always inlined: the segment parsed by the raw-packet `process` stays in its frame instead of being
    // copied into a call.
    @inline(__always)
    func decide(_ segment: TCPSegment, packet: UnsafeRawBufferPointer?, hook: PacketHook, now: UInt64) -> Verdict {
        hot.pointee.counters.seen += 1
        guard segment.flags.isValidCombination else { return dropped(.badFlags) }
        let key = FlowKey(segment)
        if let (slot, direction) = table.find(key) {
            let connection = table.connection(at: slot)
            if connection.pointee.expiresAt > now {
                if connection.pointee.status.contains(.rejected) {
                    return rejected(slot: slot, direction: direction, segment: segment)
                }
                if connection.pointee.proxied {
                    return trackProxied(slot: slot, direction: direction, segment: segment, packet: packet, hook: hook,
                                        now: now)
                }
                return track(slot: slot, connection: connection, direction: direction, segment: segment,
                             hook: hook, now: now)
            }
            destroy(slot: slot)
        }
        return open(segment, key: key, hook: hook, now: now)
    }

    /// A segment of a connection the table holds, through the state machine; the engine's
    /// bookkeeping of the outcome (half-open count, deadline, counters, events).
    // Always inlined: the one call site is every established packet's path, and a call would
    // spill the slot, pointer and segment `process` holds in registers.
    @inline(__always)
    func track(slot: Int, connection: UnsafeMutablePointer<Connection>, direction: FlowDirection,
               segment: TCPSegment, hook: PacketHook, now: UInt64) -> Verdict {
        let oldState = connection.pointee.state
        let outcome = TCPStateMachine.track(&connection.pointee, direction: direction, segment: segment,
                                            timeouts: currentTimeouts, now: now)
        switch outcome {
        case .accept:
            let newState = connection.pointee.state
            // Nearly every packet leaves the state as it was: one comparison then skips both.
            if oldState != newState {
                if oldState.isHalfOpen != newState.isHalfOpen { halfOpenCount += newState.isHalfOpen ? 1 : -1 }
                // Only a half-open connection, or one counted by `limit conn`, holds charges
                // (admit, chargeRestored, handshakeCompleted): they are read on a change of
                // state only, never by established traffic, and sit on the connection's last
                // cache line.
                if !connection.pointee.halfOpenCharges.isEmpty,
                   let reason = chargedStateChanged(slot: slot, from: oldState, to: newState, now: now) {
                    return dropped(reason)
                }
            }
            table.deadlineChanged(at: slot)
            let oldStatus = connection.pointee.status
            connection.pointee.count(direction, wireLength: segment.wireLength)
            if recordsEvents {
                let noticed: ConnectionStatus = [.seenReply, .assured]
                if oldState != newState
                    || oldStatus.intersection(noticed) != connection.pointee.status.intersection(noticed) {
                    events.append(.update, connection.pointee)
                }
            }
            return accepted()
        case .drop(let reason):
            // A dropped segment may still shorten the timeout (nf_tcp_handle_invalid): the wheel
            // must see the earlier deadline, or the slot is freed only at the old one.
            table.deadlineChanged(at: slot)
            return dropped(reason)
        case .destroy:
            // The state machine already moved the connection on (to CLOSE): count it out of
            // the half-open set from the state it had, not the one destroy(slot:) would see.
            let newState = connection.pointee.state
            if oldState.isHalfOpen != newState.isHalfOpen { halfOpenCount += newState.isHalfOpen ? 1 : -1 }
            destroy(slot: slot)
            return accepted()
        case .reopen:
            destroy(slot: slot)
            // The new connection is judged by the rules like any other.
            return open(segment, key: FlowKey(segment), hook: hook, now: now)
        }
    }

    /// The first packet of a connection the table does not hold.
    func open(_ segment: TCPSegment, key: FlowKey, hook: PacketHook, now: UInt64) -> Verdict {
        let index = TCPFlagIndex(segment.flags)
        guard index == .syn else {
            if index == .ack, hot.pointee.synProxyRules, !hot.pointee.synProxyElsewhere,
               let verdict = cookieAck(segment, key: key, hook: hook, now: now) {
                return verdict
            }
            guard index == .ack, picksUp(now: now) else {
                return dropped(.noConnection)
            }
            return pickUp(segment, key: key, hook: hook, now: now)
        }

        let decision = self.decision(for: segment, hook: hook, openedBySender: true)
        let direction = decision.direction
        let verdict: Verdict
        switch decision.action {
        case .block:
            verdict = dropped(.rule)
        case .reject:
            rememberRejection(key, direction: direction, state: .close, now: now)
            verdict = rejectedByRule()
        case .pass:
            if hot.pointee.synProxyRules, let rule = synProxyRule(decision.ruleIndex) {
                if hot.pointee.synProxyElsewhere { return dropped(.synProxyWrongQueue) }
                return openSynProxied(segment, key: key, rule: rule, direction: direction,
                                      ruleIndex: decision.ruleIndex, now: now)
            }
            verdict = admitPassed(segment, key: key, direction: direction, ruleIndex: decision.ruleIndex, now: now)
        }
        hot.pointee.rules.count(verdict, ruleIndex: decision.ruleIndex, direction: direction, now: now)
        return verdict
    }

    /// A new connection a rule (or the default) passed: into the table, unless the state
    /// machine or a limit refuses it.
    // Always inlined: into `open`, which reads the policy too: one access to it instead of two.
    @inline(__always)
    func admitPassed(_ segment: TCPSegment, key: FlowKey, direction: Direction, ruleIndex: Int?,
                     now: UInt64) -> Verdict {
        // The connection is made up and checked on the side; nothing is stored (and nothing
        // evicted) until it has passed every limit.
        var connection = Connection(key: key, direction: direction)
        guard TCPStateMachine.begin(&connection, with: segment, pickup: false) else {
            return dropped(.noConnection)
        }
        return store(&connection, firstSegment: segment, sender: .original, ruleIndex: ruleIndex, now: now)
    }

    /// Tracks a new connection's first segment, going `sender`, and stores the connection if
    /// the segment passes and every limit lets it in.
    // Always inlined: the tail of every SYN's path (`open`): the new connection is built in the caller's
    // frame, not copied into a call.
    @inline(__always)
    func store(_ connection: inout Connection, firstSegment segment: TCPSegment, sender: FlowDirection,
               ruleIndex: Int?, now: UInt64) -> Verdict {
        let outcome = TCPStateMachine.track(&connection, direction: sender, segment: segment,
                                            timeouts: currentTimeouts, now: now)
        guard outcome == .accept else {
            if case .drop(let reason) = outcome { return dropped(reason) }
            return dropped(.badTransition)
        }
        connection.count(sender, wireLength: segment.wireLength)
        connection.createdAt = now
        if let reason = admit(&connection, ruleIndex: ruleIndex, now: now) { return dropped(reason) }
        guard table.insert(connection) != nil else {
            releaseCharges(of: &connection)
            return dropped(.tableFull)
        }
        hot.pointee.counters.created += 1
        if connection.state.isHalfOpen {
            halfOpenCount += 1
            rememberUnreplied(connection)
        }
        if connection.status.contains(.pickedUp) { hot.pointee.counters.pickedUp += 1 }
        if recordsEvents { events.append(.new, connection) }
        return accepted()
    }

    /// Which way a new connection goes (docs/design.md, Direction): host mode by hook, gateway
    /// mode by `inside`.
    /// Packets that neither enter nor leave the inside networks count as inbound: the
    /// stricter side.
    public func direction(of hook: PacketHook, source: IPAddress, destination: IPAddress) -> Direction {
        switch hook {
        case .input: return .inbound
        case .output: return .outbound
        case .forward, .other:
            if policy.isInside(source) && !policy.isInside(destination) { return .outbound }
            return .inbound
        }
    }

    /// A packet of a connection a `reject` rule refused: the RST answering it passes and ends
    /// the entry; a retransmitted SYN is refused again; anything else has no connection.
    func rejected(slot: Int, direction: FlowDirection, segment: TCPSegment) -> Verdict {
        if direction == .reply && segment.flags.contains(.rst) {
            destroy(slot: slot)
            return accepted()
        }
        if direction == .original && TCPFlagIndex(segment.flags) == .syn { return rejectedByRule() }
        return dropped(.noConnection)
    }

    /// Remembers a refusal briefly, so the answer seqwall sends (RejectAnswer: a TCP RST, an
    /// ICMP port unreachable) is let out when the queue sees it (it has no connection
    /// otherwise) and a retransmission is refused again.
    func rememberRejection(_ key: FlowKey, direction: Direction, state: TCPState, now: UInt64) {
        guard !table.isFull else { return }
        var refused = Connection(key: key, direction: direction)
        refused.state = state
        refused.status = .rejected
        refused.expiresAt = now &+ UInt64(policy.timeouts.close) &* 1_000_000_000
        if table.insert(refused) != nil {
            hot.pointee.counters.created += 1
            if recordsEvents { events.append(.new, refused) }
        }
    }

    func rejectedByRule() -> Verdict {
        _ = dropped(.rule)
        return .reject
    }

    /// seqwall's own answer to a rejected packet, back through the queue, that the tracker
    /// dropped (no connection, or an ICMP error it could not relate) because the refusal's
    /// entry was not there: it passes after all, and is counted as accepted instead.
    public func passOwnAnswer(insteadOf verdict: Verdict) {
        guard case .drop(let reason) = verdict else { return }
        hot.pointee.counters.dropped -= 1
        hot.pointee.counters.drops[Int(reason.rawValue)] -= 1
        hot.pointee.counters.accepted += 1
    }

    func accepted() -> Verdict {
        hot.pointee.counters.accepted += 1
        return .accept
    }

    func dropped(_ reason: DropReason) -> Verdict {
        hot.pointee.counters.dropped += 1
        hot.pointee.counters.drops[Int(reason.rawValue)] += 1
        return .drop(reason)
    }

    // MARK: Table upkeep

    func destroy(slot: Int) {
        if table.connection(at: slot).pointee.state.isHalfOpen { halfOpenCount -= 1 }
        releaseCharges(of: &table.connection(at: slot).pointee)
        if recordsEvents { events.append(.destroy, table.connection(at: slot).pointee) }
        table.remove(at: slot)
        hot.pointee.counters.destroyed += 1
    }
}
