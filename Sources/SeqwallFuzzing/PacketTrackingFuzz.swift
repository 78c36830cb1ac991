import SeqwallCore

/// Fuzz target (a): a sequence of raw IPv4/IPv6 packets, hooks and clock steps through one
/// ConnectionTracker with a small table, small timeouts and limits, so that the fuzzer reaches
/// table-full, early drop, half-open eviction, expiry and reopen paths within a few packets.
///
/// Input layout (bytes past the end read as 0):
///
///     header (8 bytes)
///       0  bit 0 pickup on, bit 1 default in pass (else block), bit 2 record events,
///          bit 3 the rules below (else defaults only: they then decide UDP and echo too)
///       1  limit states: 1 + byte % 64
///       2  limit half-open: none when 0, else byte % 32 (0 after the modulo is a real limit of 0)
///       3  limit half-open per-source: none when 0, else byte % 16
///       4  syn-rate per source: none when 0, else rate 1 + low nibble, burst 1 + high nibble
///       5  base timeout: 1 + byte % 16 seconds (every state timeout is built from it)
///       6  established timeout: base + byte % 32 seconds
///       7  expiry wheel: 2^(1 + byte % 5) one-second buckets (short turns)
///     then records until the input ends, each starting with an op byte:
///       op & 3 == 0 or 1  a packet: hook = op >> 2 & 3 (input, output, forward, other), length
///                         (2 bytes, big-endian; capped by what is left), and when op & 0x10 one
///                         more byte: the wire length exceeds the captured length by byte * 8
///                         (a copy range cutting the packet short); then the packet's bytes
///       op & 3 == 2       clock step: 2 bytes, in milliseconds, or seconds when op & 4
///       op & 3 == 3       upkeep by op >> 2 & 3: 0 expire (budget 1 + next byte), 1 delete the
///                         connections in state next byte % 10, and when that byte's top bit is
///                         set start a pickup grace period (60 s) as `conntrack flush` does,
///                         2 reload with pickup flipped, 3 collect the recorded events
public enum PacketTrackingFuzz {
    /// The inside networks of the fuzz policy (the documentation ranges of docs/design.md, Test lab
    /// addresses).
    static let insideNetworks = [
        IPNetwork(address: IPAddress("203.0.113.0")!, prefixLength: 24),
        IPNetwork(address: IPAddress("2001:db8:2::")!, prefixLength: 64),
    ]

    static func policy(from header: inout FuzzInput) -> (Policy, wheelBuckets: Int, recordsEvents: Bool) {
        let options = header.byte()
        var policy = Policy()
        policy.pickup = options & 1 != 0
        policy.inside = insideNetworks
        policy.defaultInbound = options & 2 != 0 ? .pass : .block
        policy.defaultOutbound = .pass
        if options & 8 != 0 {
            let location = SourceLocation(file: "fuzz.rules", line: 1, column: 1)
            policy.rules = [
                Rule(action: .reject, direction: .inbound, ports: [PortRange(23)], location: location),
                Rule(action: .block, direction: .inbound,
                     from: [IPNetwork(address: IPAddress("198.51.100.66")!, prefixLength: 32)], location: location),
                Rule(action: .pass, direction: .inbound, ports: [PortRange(22), PortRange(80), PortRange(443)],
                     location: location),
                Rule(action: .pass, direction: .inbound, ports: [PortRange(8000, 8100)], halfOpenPerSource: 2,
                     location: location),
                Rule(action: .pass, direction: .inbound, protocolName: .udp, ports: [PortRange(53)], location: location),
                Rule(action: .reject, direction: .inbound, protocolName: .udp, ports: [PortRange(69)],
                     location: location),
                Rule(action: .pass, direction: .inbound, protocolName: .icmp, location: location),
                Rule(action: .pass, direction: .inbound, protocolName: .icmp6, location: location),
            ]
        }
        policy.limits.states = 1 + Int(header.byte() % 64)
        let halfOpen = header.byte()
        policy.limits.halfOpen = halfOpen == 0 ? nil : Int(halfOpen % 32)
        let perSource = header.byte()
        policy.limits.halfOpenPerSource = perSource == 0 ? nil : Int(perSource % 16)
        let synRate = header.byte()
        policy.limits.synRatePerSource = synRate == 0 ? nil : (rate: 1 + Int(synRate & 0x0F), burst: 1 + Int(synRate >> 4))
        let base = 1 + UInt32(header.byte() % 16)
        let established = base + UInt32(header.byte() % 32)
        for state in TCPState.allCases { policy.timeouts[state] = base }
        policy.timeouts.established = established
        policy.timeouts.timeWait = base + 1
        policy.timeouts.close = 1 + base / 4
        policy.timeouts.retransmit = base * 2
        policy.timeouts.unacknowledged = base * 2
        policy.datagramTimeouts.udpSingle = base
        policy.datagramTimeouts.udpStream = base * 4
        policy.datagramTimeouts.icmp = base
        let wheelBuckets = 1 << (1 + Int(header.byte() % 5))
        return (policy, wheelBuckets, options & 4 != 0)
    }

    /// Runs one input; throws when the tracker breaks one of its invariants. A crash inside the
    /// tracker (a trap, an out-of-bounds access under ASan) is the other kind of finding.
    ///
    /// Packets go through `process(batch:verdicts:now:)`, the path the daemon runs: consecutive
    /// packet records form a batch of up to `ConnectionTracker.batchCapacity`, decided when it is
    /// full or when any other record comes. A second tracker with the same policy and seeds
    /// takes the same packets one at a time: the batch path promises the verdicts of one packet
    /// after the other, so every verdict, counter and recorded event must agree.
    public static func run(_ data: UnsafeRawBufferPointer) throws(FuzzFailure) {
        var input = FuzzInput(data)
        let (policy, wheelBuckets, recordsEvents) = self.policy(from: &input)
        // Fixed seeds: an input replays the same way every time.
        func makeTracker() -> ConnectionTracker {
            let tracker = ConnectionTracker(policy: policy, hasher: FlowHasher(seeds: (3, 5, 7, 11, 13)),
                                            wheelBuckets: wheelBuckets)
            tracker.recordsEvents = recordsEvents
            return tracker
        }
        let tracker = makeTracker()
        let oneByOne = makeTracker()
        var now: UInt64 = 1_000 * 1_000_000_000
        let hooks: [PacketHook] = [.input, .output, .forward, .other]
        var packets = 0
        var batch: [QueuedPacket] = []
        batch.reserveCapacity(ConnectionTracker.batchCapacity)
        let verdicts = UnsafeMutablePointer<Verdict>.allocate(capacity: ConnectionTracker.batchCapacity)
        verdicts.initialize(repeating: .accept, count: ConnectionTracker.batchCapacity)
        defer { verdicts.deallocate() }

        func decideBatch() throws(FuzzFailure) {
            guard !batch.isEmpty else { return }
            batch.withUnsafeBufferPointer { tracker.process(batch: $0, verdicts: verdicts, now: now) }
            for (member, packet) in batch.enumerated() {
                let before = oneByOne.counters
                let verdict = oneByOne.process(packet.bytes, wireLength: packet.wireLength, hook: packet.hook, now: now)
                try check(verdict: verdict, before: before, after: oneByOne.counters, packet: packets)
                guard verdicts[member] == verdict else {
                    throw FuzzFailure("packet \(packets): \(verdicts[member]) in a batch, \(verdict) on its own")
                }
                // The drop log reads a fragment's fields from the same bytes (IPFragment).
                if verdict == .drop(.fragment) && IPFragment(packet.bytes, wireLength: packet.wireLength) == nil {
                    throw FuzzFailure("packet \(packets): dropped as a fragment, but IPFragment reads none")
                }
                packets += 1
            }
            batch.removeAll(keepingCapacity: true)
            guard tracker.counters == oneByOne.counters else {
                throw FuzzFailure("after packet \(packets): batch counters \(tracker.counters), "
                    + "one by one \(oneByOne.counters)")
            }
            try checkTable(tracker, now: now)
        }

        while !input.isAtEnd {
            let op = input.byte()
            if op & 3 <= 1 {
                let hook = hooks[Int(op >> 2 & 3)]
                let length = min(Int(input.bigEndianUInt16()), input.remaining)
                let cut = op & 0x10 != 0 ? Int(input.byte()) * 8 : 0
                let packet = input.take(length)
                batch.append(QueuedPacket(bytes: packet, wireLength: packet.count + cut, hook: hook))
                if batch.count == ConnectionTracker.batchCapacity { try decideBatch() }
                continue
            }
            try decideBatch()
            switch (op & 3, op >> 2 & 3) {
            case (2, _):
                let step = UInt64(input.bigEndianUInt16())
                now &+= op & 4 != 0 ? step * 1_000_000_000 : step * 1_000_000
            case (_, 0):
                let budget = 1 + Int(input.byte())
                guard tracker.expire(now: now, budget: budget) == oneByOne.expire(now: now, budget: budget) else {
                    throw FuzzFailure("after packet \(packets): expiry left work in one tracker only")
                }
            case (_, 1):
                let byte = input.byte()
                let state = TCPState.allCases[Int(byte) % TCPState.allCases.count]
                for each in [tracker, oneByOne] {
                    each.removeConnections { $0.state == state }
                    if byte & 0x80 != 0 { each.startPickupGrace(now: now) }
                }
            case (_, 2):
                for each in [tracker, oneByOne] {
                    var reloaded = each.policy
                    reloaded.pickup.toggle()
                    each.replacePolicy(reloaded)
                }
            default:
                guard tracker.events.count == oneByOne.events.count else {
                    throw FuzzFailure("after packet \(packets): \(tracker.events.count) events recorded in batches, "
                        + "\(oneByOne.events.count) one by one")
                }
                for index in 0..<tracker.events.count where tracker.events[index] != oneByOne.events[index] {
                    throw FuzzFailure("after packet \(packets): event \(index) differs from the one recorded one by one")
                }
                tracker.events.reset()
                oneByOne.events.reset()
            }
            try checkTable(tracker, now: now)
        }
        try decideBatch()
        try checkTable(oneByOne, now: now)
        // Everything expires in the end: the table and the half-open count come back to zero.
        now &+= 1_000_000 * 1_000_000_000
        for each in [tracker, oneByOne] {
            while each.expire(now: now, budget: 64) {}
            try checkTable(each, now: now)
            guard each.connectionCount == 0, each.halfOpenCount == 0 else {
                throw FuzzFailure("after every deadline: \(each.connectionCount) connections, "
                    + "\(each.halfOpenCount) half-open left")
            }
        }
    }

    /// Each verdict is counted once, under its own reason.
    static func check(verdict: Verdict, before: TrackerCounters, after: TrackerCounters, packet: Int) throws(FuzzFailure) {
        guard after.seen == before.seen + 1 else { throw FuzzFailure("packet \(packet): seen moved by \(after.seen - before.seen)") }
        switch verdict {
        case .accept, .acceptRewritten:
            guard after.accepted == before.accepted + 1, after.dropped == before.dropped else {
                throw FuzzFailure("packet \(packet): accepted but counted otherwise")
            }
        case .drop(let reason):
            guard after.dropped == before.dropped + 1, after[reason] == before[reason] + 1 else {
                throw FuzzFailure("packet \(packet): dropped (\(reason)) but not counted under it")
            }
        case .reject:
            guard after.dropped == before.dropped + 1, after[.rule] == before[.rule] + 1 else {
                throw FuzzFailure("packet \(packet): rejected but not counted as a rule drop")
            }
        }
        guard after.seen == after.accepted + after.dropped, after.drops.reduce(0, +) == after.dropped else {
            throw FuzzFailure("packet \(packet): counters disagree: \(after)")
        }
    }

    /// The table holds at most its limit, its counts agree with what it holds, and every entry is
    /// found again from both directions of its key.
    static func checkTable(_ tracker: ConnectionTracker, now: UInt64) throws(FuzzFailure) {
        let count = tracker.connectionCount, limit = tracker.connectionLimit
        guard count <= limit else { throw FuzzFailure("table holds \(count) over its limit \(limit)") }
        guard tracker.counters.created - tracker.counters.destroyed == UInt64(count) else {
            throw FuzzFailure("created \(tracker.counters.created) - destroyed \(tracker.counters.destroyed) != \(count) held")
        }
        var occupied = 0
        var halfOpen = 0
        var lost: FlowKey?
        tracker.forEachConnection { connection in
            occupied += 1
            if connection.state.isHalfOpen { halfOpen += 1 }
            guard let original = tracker.connection(for: connection.key), original.connection == connection,
                  original.direction == .original,
                  let reply = tracker.connection(for: connection.key.reversed), reply.connection == connection,
                  reply.direction == .reply
            else {
                lost = connection.key
                return
            }
        }
        if let lost { throw FuzzFailure("connection \(lost) is not found again from both directions") }
        guard occupied == count else { throw FuzzFailure("\(occupied) connections held, count says \(count)") }
        guard halfOpen == tracker.halfOpenCount else {
            throw FuzzFailure("\(halfOpen) half-open connections held, halfOpenCount says \(tracker.halfOpenCount)")
        }
    }
}
