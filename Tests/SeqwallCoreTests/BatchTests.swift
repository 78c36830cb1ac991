import SeqwallTestSupport
@testable import SeqwallCore
import Testing

// ConnectionTracker.process(batch:verdicts:now:) against the one-packet path: the warm-up of a
// batch (BatchLookahead.swift) is a hint only, so a batch must give exactly the verdicts,
// counters, events and final table that the same packets give one by one. Plus the huge-page
// seam of ConnectionTable (regionProvider).

/// One packet of a generated trace: its bytes, how much of it the kernel copied, and its hook.
struct TracePacket {
    var bytes: [UInt8]
    var captured: Int
    var hook: PacketHook

    /// The whole packet, as copied.
    init(_ bytes: [UInt8], hook: PacketHook = .forward) {
        self.bytes = bytes
        captured = bytes.count
        self.hook = hook
    }
}

/// Two trackers built the same way (same policy, same hash seeds): one fed one packet at a
/// time, the other in batches.
final class BatchTwins {
    let oneByOne: ConnectionTracker
    let batched: ConnectionTracker

    init(policy: Policy, capacity: Int) {
        func make() -> ConnectionTracker {
            let tracker = ConnectionTracker(policy: policy, capacity: capacity,
                                            hasher: FlowHasher(seeds: (11, 23, 35, 47, 59)), wheelBuckets: 64)
            tracker.recordsEvents = true
            return tracker
        }
        oneByOne = make()
        batched = make()
    }

    /// Runs `packets` through both at `now`: one by one, and as one batch. Returns the verdicts
    /// of the batch after checking them against the one-by-one ones.
    @discardableResult
    func run(_ packets: [TracePacket], now: UInt64, context: String = "",
             sourceLocation: Testing.SourceLocation = #_sourceLocation) -> [Verdict] {
        precondition(packets.count <= ConnectionTracker.batchCapacity)
        let expected = packets.map { packet in
            packet.bytes.withUnsafeBytes {
                oneByOne.process(UnsafeRawBufferPointer(rebasing: $0.prefix(packet.captured)),
                                 wireLength: packet.bytes.count, hook: packet.hook, now: now)
            }
        }
        // Every packet's bytes stay alive for the whole call, as in the daemon's receive buffer.
        let stride = 1600
        var arena = [UInt8](repeating: 0, count: max(1, packets.count) * stride)
        var verdicts = [Verdict](repeating: .accept, count: packets.count)
        arena.withUnsafeMutableBytes { arena in
            var queued: [QueuedPacket] = []
            for (index, packet) in packets.enumerated() {
                let start = arena.baseAddress! + index * stride
                packet.bytes.withUnsafeBytes { bytes in
                    if let source = bytes.baseAddress { start.copyMemory(from: source, byteCount: bytes.count) }
                }
                queued.append(QueuedPacket(bytes: UnsafeRawBufferPointer(start: start, count: packet.captured),
                                           wireLength: packet.bytes.count, hook: packet.hook))
            }
            queued.withUnsafeBufferPointer { queued in
                verdicts.withUnsafeMutableBufferPointer { verdicts in
                    batched.process(batch: queued, verdicts: verdicts.baseAddress!, now: now)
                }
            }
        }
        #expect(verdicts == expected, "verdicts \(context)", sourceLocation: sourceLocation)
        return verdicts
    }

    /// Both trackers expire with the same budget; they must agree on whether more is due.
    func expire(now: UInt64, budget: Int, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        let more = oneByOne.expire(now: now, budget: budget)
        #expect(batched.expire(now: now, budget: budget) == more, sourceLocation: sourceLocation)
    }

    /// Counters, half-open count, events and the table slot by slot (the dense array's order
    /// follows every insertion and removal, so it must match too).
    func expectSameState(sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(batched.counters == oneByOne.counters, "counters", sourceLocation: sourceLocation)
        #expect(batched.halfOpenCount == oneByOne.halfOpenCount, "half-open count", sourceLocation: sourceLocation)
        #expect(batched.events.count == oneByOne.events.count, "events", sourceLocation: sourceLocation)
        for index in 0..<min(batched.events.count, oneByOne.events.count) where batched.events[index] != oneByOne.events[index] {
            Issue.record("event \(index) differs", sourceLocation: sourceLocation)
            break
        }
        #expect(batched.table.count == oneByOne.table.count, "table count", sourceLocation: sourceLocation)
        for slot in 0..<min(batched.table.count, oneByOne.table.count)
        where batched.table.connection(at: slot).pointee != oneByOne.table.connection(at: slot).pointee {
            Issue.record("slot \(slot) differs", sourceLocation: sourceLocation)
            break
        }
    }
}

/// Seeded traffic over a few flows: handshakes, data both ways, FINs, RSTs, reuse of ports after
/// close, UDP and ICMP echo, other protocols, and damage (bad flags, sequence numbers out of
/// window, truncated and garbled packets). The trace does not depend on the verdicts, so the
/// same trace goes to both trackers.
struct TrafficGenerator {
    struct Flow {
        var family: Family
        var client: IPAddress
        var server: IPAddress
        var clientPort: UInt16
        var serverPort: UInt16
        var isUDP: Bool
        /// 0: closed, 1: SYN sent, 2: SYN-ACK sent, 3: established, 4: one FIN sent.
        var phase = 0
        var clientNext: UInt32 = 0
        var serverNext: UInt32 = 0
    }

    var random: SplitMix64
    var flows: [Flow] = []

    init(seed: UInt64, flowCount: Int) {
        random = SplitMix64(seed: seed)
        for index in 0..<flowCount {
            let family: Family = index % 3 == 2 ? .ipv6 : .ipv4
            // Mostly port 80 (passes); some 23 (blocked) and 25 (rejected); a few UDP flows.
            let serverPort: UInt16 = [80, 80, 80, 80, 23, 25, 53][index % 7]
            flows.append(Flow(family: family, client: index % 2 == 0 ? family.client : family.otherClient,
                              server: family.server, clientPort: UInt16(40000 + index), serverPort: serverPort,
                              isUDP: serverPort == 53))
        }
    }

    mutating func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }

    mutating func pick(_ count: Int) -> Int { Int(random.next() % UInt64(count)) }

    func tcp(_ flow: Flow, fromClient: Bool, _ flags: TCPFlags, seq: UInt32, ack: UInt32, payload: Int = 0) -> [UInt8] {
        var packet = PacketBuilder(source: fromClient ? flow.client : flow.server,
                                   destination: fromClient ? flow.server : flow.client)
        packet.sourcePort = fromClient ? flow.clientPort : flow.serverPort
        packet.destinationPort = fromClient ? flow.serverPort : flow.clientPort
        packet.flags = flags
        packet.sequence = seq
        packet.acknowledgment = ack
        packet.payloadLength = payload
        packet.window = 64240
        return packet.build()
    }

    /// The next packet of the trace.
    mutating func next() -> TracePacket {
        let hook: PacketHook = chance(90) ? .forward : [.input, .output, .other][pick(3)]
        let roll = pick(100)
        if roll < 4 { return TracePacket(garbled(), hook: hook) }
        if roll < 7 { return TracePacket(other(), hook: hook) }
        var packet = flowPacket()
        if roll < 11 {
            // Cut short, as a small copy range or a broken sender would.
            packet.captured = pick(packet.bytes.count + 1)
        }
        packet.hook = hook
        return packet
    }

    /// Random bytes, or a packet with a wrong version nibble.
    mutating func garbled() -> [UInt8] {
        let length = pick(72)
        var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        if length > 0 && chance(50) { bytes[0] = (chance(50) ? 0x45 : 0x60) | (bytes[0] & 0x0F) }
        return bytes
    }

    /// ICMP echo, another protocol, or an IPv4 fragment of a flow.
    mutating func other() -> [UInt8] {
        let flow = flows[pick(flows.count)]
        switch pick(3) {
        case 0:
            return Datagrams.echo(flow.family, from: flow.client, to: flow.server, reply: chance(30),
                                  identifier: UInt16(pick(4))).build()
        case 1:
            var packet = PacketBuilder(source: flow.client, destination: flow.server)
            packet.protocolNumber = 47
            packet.transport = [0, 0, 0x08, 0x00]
            return packet.build()
        default:
            var packet = PacketBuilder(source: flow.client, destination: flow.server)
            packet.sourcePort = flow.clientPort
            packet.destinationPort = flow.serverPort
            packet.fragmentField = chance(50) ? 0x2000 : 0x0010
            return packet.build()
        }
    }

    mutating func flowPacket() -> TracePacket {
        let index = pick(flows.count)
        var flow = flows[index]
        defer { flows[index] = flow }
        if flow.isUDP {
            let fromClient = chance(60)
            let packet = fromClient
                ? Datagrams.udp(flow.family, from: flow.client, to: flow.server, sport: flow.clientPort,
                                dport: flow.serverPort)
                : Datagrams.udp(flow.family, from: flow.server, to: flow.client, sport: flow.serverPort,
                                dport: flow.clientPort)
            return TracePacket(packet.build())
        }
        // Damage: flags no state accepts, or sequence numbers far from the window.
        if chance(6) {
            let flags = [TCPFlags(rawValue: 0), [.syn, .fin], [.syn, .rst], .fin, [.fin, .psh, .urg]][pick(5)]
            return TracePacket(tcp(flow, fromClient: chance(50), flags, seq: flow.clientNext, ack: flow.serverNext))
        }
        if chance(5) {
            return TracePacket(tcp(flow, fromClient: chance(50), .ack, seq: flow.clientNext &+ 0x4000_0000,
                                   ack: flow.serverNext &+ 0x2000_0000, payload: 100))
        }
        let bytes: [UInt8]
        switch flow.phase {
        case 0:
            flow.clientNext = UInt32(truncatingIfNeeded: random.next())
            flow.serverNext = UInt32(truncatingIfNeeded: random.next())
            bytes = tcp(flow, fromClient: true, .syn, seq: flow.clientNext, ack: 0)
            flow.clientNext &+= 1
            flow.phase = 1
        case 1:
            if chance(15) {
                // A retransmitted SYN.
                bytes = tcp(flow, fromClient: true, .syn, seq: flow.clientNext &- 1, ack: 0)
            } else {
                bytes = tcp(flow, fromClient: false, [.syn, .ack], seq: flow.serverNext, ack: flow.clientNext)
                flow.serverNext &+= 1
                flow.phase = 2
            }
        case 2:
            bytes = tcp(flow, fromClient: true, .ack, seq: flow.clientNext, ack: flow.serverNext)
            flow.phase = 3
        case 3:
            switch pick(10) {
            case 0, 1, 2:
                let length = pick(1400)
                bytes = tcp(flow, fromClient: true, [.ack, .psh], seq: flow.clientNext, ack: flow.serverNext,
                            payload: length)
                flow.clientNext &+= UInt32(length)
            case 3, 4, 5:
                let length = pick(1400)
                bytes = tcp(flow, fromClient: false, [.ack, .psh], seq: flow.serverNext, ack: flow.clientNext,
                            payload: length)
                flow.serverNext &+= UInt32(length)
            case 6:
                bytes = tcp(flow, fromClient: chance(50), .ack, seq: flow.clientNext, ack: flow.serverNext)
            case 7, 8:
                bytes = tcp(flow, fromClient: true, [.fin, .ack], seq: flow.clientNext, ack: flow.serverNext)
                flow.clientNext &+= 1
                flow.phase = 4
            default:
                let fromClient = chance(50)
                bytes = tcp(flow, fromClient: fromClient, .rst, seq: fromClient ? flow.clientNext : flow.serverNext,
                            ack: 0)
                flow.phase = 0
            }
        default:
            if chance(50) {
                bytes = tcp(flow, fromClient: false, [.fin, .ack], seq: flow.serverNext, ack: flow.clientNext)
                flow.serverNext &+= 1
            } else {
                bytes = tcp(flow, fromClient: false, .ack, seq: flow.serverNext, ack: flow.clientNext)
            }
            if chance(60) { flow.phase = 0 }
        }
        return TracePacket(bytes)
    }
}

@Suite struct BatchTests {
    /// Outside clients may reach port 80 inside; 23 is blocked, 25 rejected (RST), UDP to 53
    /// passes; a small half-open limit so that evictions happen.
    static func policy() -> Policy {
        var policy = Policy()
        policy.inside = [Family.ipv4.insideNetwork, Family.ipv6.insideNetwork]
        policy.defaultInbound = .block
        policy.defaultOutbound = .pass
        let at = SeqwallCore.SourceLocation(file: "batch.rules", line: 1, column: 1)
        policy.rules = [
            Rule(action: .pass, direction: .inbound, ports: [PortRange(80)], location: at),
            Rule(action: .block, direction: .inbound, ports: [PortRange(23)], location: at),
            Rule(action: .reject, direction: .inbound, ports: [PortRange(25)], location: at),
            Rule(action: .pass, direction: .inbound, protocolName: .udp, ports: [PortRange(53)], location: at),
            Rule(action: .pass, direction: .inbound, protocolName: .icmp, location: at),
            Rule(action: .pass, direction: .inbound, protocolName: .icmp6, location: at),
        ]
        policy.limits.halfOpen = 6
        return policy
    }

    /// `batches` batches of random traffic (TrafficGenerator, 20 flows), `fullBatches` percent
    /// of them full, the others of random size, with the clock moving between batches
    /// (sometimes past every timeout) and expiry runs with small budgets; then the two
    /// trackers' whole states are compared.
    static func runRandomTraffic(_ twins: BatchTwins, seed: UInt64, batches: Int, fullBatches: UInt64) {
        var generator = TrafficGenerator(seed: seed, flowCount: 20)
        var now: UInt64 = 10_000 * nanosecondsPerSecond
        for batchNumber in 0..<batches {
            let size = generator.chance(fullBatches) ? ConnectionTracker.batchCapacity
                : 1 + generator.pick(ConnectionTracker.batchCapacity)
            let packets = (0..<size).map { _ in generator.next() }
            twins.run(packets, now: now, context: "seed \(seed) batch \(batchNumber)")
            now += generator.chance(8) ? UInt64(30 + generator.pick(300)) * nanosecondsPerSecond
                : UInt64(generator.pick(2_000_000_000))
            if generator.chance(50) { twins.expire(now: now, budget: 1 + generator.pick(8)) }
        }
        twins.expectSameState()
    }

    /// Randomized mixed traffic in batches of random size, with the clock moving between
    /// batches (sometimes past every timeout) and expiry runs with small budgets: the batch
    /// path must agree with the one-by-one path on every verdict and on the whole state.
    @Test(arguments: 0..<12)
    func randomizedTrafficMatchesOneByOne(seed: Int) {
        // Fewer slots than flows: the table fills up and new connections are refused or evict.
        let twins = BatchTwins(policy: BatchTests.policy(), capacity: 12)
        BatchTests.runRandomTraffic(twins, seed: 0xBA7C_0000 + UInt64(seed), batches: 120, fullBatches: 10)
        // The trace reached the paths it is meant to cover.
        let counters = twins.oneByOne.counters
        #expect(counters.accepted > 500)
        #expect(counters.created > 50 && counters.destroyed > 20)
        for reason: DropReason in [.tableFull, .noConnection, .badFlags, .truncated, .rule] {
            #expect(counters[reason] > 0, "no \(reason) drop in the trace")
        }
    }

    /// The same traffic with a large address table in front of port 80 (the other client is
    /// in it): each batch warms the table lookups of its new flows and SYNs
    /// (ConnectionTracker+DecisionWarmup.swift), garbled and foreign packets among them, and
    /// must still agree with one by one.
    @Test(arguments: 0..<4)
    func decisionWarmupMatchesOneByOne(seed: Int) {
        var policy = BatchTests.policy()
        var entries = [TableEntry(IPNetwork(address: Family.ipv4.otherClient, prefixLength: 32)),
                       TableEntry(IPNetwork(address: Family.ipv6.otherClient, prefixLength: 128))]
        // Enough flips in each family for the table's directory, which makes it worth warming.
        for host in stride(from: 1, to: 256, by: 2) {
            entries.append(TableEntry(IPNetwork(address: ip("192.0.2.\(host)"), prefixLength: 32)))
            entries.append(TableEntry(IPNetwork(address: ip("2001:db8:3::\(String(host, radix: 16))"), prefixLength: 128)))
        }
        policy.tables = [AddressTable(name: "drop", entries: entries)]
        let at = SeqwallCore.SourceLocation(file: "batch.rules", line: 1, column: 1)
        policy.rules.insert(Rule(action: .block, direction: .inbound, fromTables: [TableReference(name: "drop", index: 0)],
                                 ports: [PortRange(80)], location: at), at: 0)
        #expect(policy.warmsDecisions)
        let twins = BatchTwins(policy: policy, capacity: 12)
        BatchTests.runRandomTraffic(twins, seed: 0xDEC1_0000 + UInt64(seed), batches: 80, fullBatches: 30)
        let counters = twins.oneByOne.counters
        #expect(counters.accepted > 200 && counters.created > 20)
        #expect(counters[.rule] > 0, "the table blocked nothing")
    }

    static func flow(_ family: Family, port: UInt16) -> TrafficGenerator.Flow {
        TrafficGenerator.Flow(family: family, client: family.client, server: family.server, clientPort: port,
                              serverPort: 80, isUDP: false)
    }

    func handshake(_ flow: TrafficGenerator.Flow, _ generator: TrafficGenerator, clientISN: UInt32 = 1000,
                   serverISN: UInt32 = 5000) -> [TracePacket] {
        [generator.tcp(flow, fromClient: true, .syn, seq: clientISN, ack: 0),
         generator.tcp(flow, fromClient: false, [.syn, .ack], seq: serverISN, ack: clientISN &+ 1),
         generator.tcp(flow, fromClient: true, .ack, seq: clientISN &+ 1, ack: serverISN &+ 1)]
            .map { TracePacket($0) }
    }

    /// A SYN early in a batch creates the connection the rest of the batch belongs to, both
    /// directions of the flow in one batch.
    @Test(arguments: Family.allCases)
    func connectionOpenedAndUsedInOneBatch(family: Family) {
        let twins = BatchTwins(policy: BatchTests.policy(), capacity: 8)
        let generator = TrafficGenerator(seed: 1, flowCount: 0)
        let flow = BatchTests.flow(family, port: 40000)
        var packets = handshake(flow, generator)
        packets += [generator.tcp(flow, fromClient: true, [.ack, .psh], seq: 1001, ack: 5001, payload: 100),
                    generator.tcp(flow, fromClient: false, .ack, seq: 5001, ack: 1101)]
            .map { TracePacket($0) }
        let verdicts = twins.run(packets, now: 10 * nanosecondsPerSecond)
        #expect(verdicts == [Verdict](repeating: .accept, count: 5))
        #expect(twins.batched.table.count == 1)
        #expect(twins.batched.table.connection(at: 0).pointee.state == .established)
        twins.expectSameState()
    }

    /// A connection goes in the middle of a batch (an RST, then a SYN that reopens the closed
    /// tuple: the old entry is removed, the last connection moves into its slot, the new one
    /// goes last), and the later packets of the batch find the table as it now is. Then an
    /// unanswered connection that an RST removes outright.
    @Test(arguments: Family.allCases)
    func removalInsideABatchMovesTheLastSlot(family: Family) {
        let twins = BatchTwins(policy: BatchTests.policy(), capacity: 8)
        let generator = TrafficGenerator(seed: 1, flowCount: 0)
        let first = BatchTests.flow(family, port: 40001)
        let middle = BatchTests.flow(family, port: 40002)
        let last = BatchTests.flow(family, port: 40003)
        twins.run(handshake(first, generator) + handshake(middle, generator) + handshake(last, generator),
                  now: 10 * nanosecondsPerSecond)
        #expect(twins.batched.table.count == 3)
        func key(_ port: UInt16) -> FlowKey {
            FlowKey(source: family.client, destination: family.server, sourcePort: port, destinationPort: 80)
        }
        #expect(twins.batched.table.find(key(40003))?.slot == 2)
        let unanswered = BatchTests.flow(family, port: 40004)
        let packets = [
            generator.tcp(first, fromClient: true, .rst, seq: 1001, ack: 0),
            generator.tcp(first, fromClient: true, .syn, seq: 9000, ack: 0),
            generator.tcp(last, fromClient: true, [.ack, .psh], seq: 1001, ack: 5001, payload: 10),
            generator.tcp(middle, fromClient: false, [.ack, .psh], seq: 5001, ack: 1001, payload: 10),
            generator.tcp(last, fromClient: false, .ack, seq: 5001, ack: 1011),
            generator.tcp(first, fromClient: false, [.syn, .ack], seq: 7000, ack: 9001),
            generator.tcp(unanswered, fromClient: true, .syn, seq: 3000, ack: 0),
            generator.tcp(unanswered, fromClient: false, [.rst, .ack], seq: 0, ack: 3001),
            generator.tcp(last, fromClient: true, [.ack, .psh], seq: 1011, ack: 5001, payload: 10),
        ].map { TracePacket($0) }
        let verdicts = twins.run(packets, now: 11 * nanosecondsPerSecond)
        #expect(verdicts == [Verdict](repeating: .accept, count: packets.count))
        // The last connection took the freed slot 0; the reopened one is last.
        #expect(twins.batched.table.count == 3)
        #expect(twins.batched.table.find(key(40003))?.slot == 0)
        #expect(twins.batched.table.connection(at: 0).pointee.packetsOriginal == 4)
        #expect(twins.batched.table.find(key(40001))?.slot == 2)
        #expect(twins.batched.table.connection(at: 2).pointee.state == .synRecv)
        #expect(twins.batched.table.find(key(40004)) == nil)
        #expect(twins.batched.counters.destroyed == 2)
        twins.expectSameState()
    }

    /// Full batches over many established flows in a sparse table (the warm-up finds nearly
    /// every connection at its home position), data and acknowledgments in random order, and
    /// an empty batch, which decides nothing and changes nothing.
    @Test(arguments: Family.allCases)
    func fullBatchesOfEstablishedFlows(family: Family) {
        let twins = BatchTwins(policy: BatchTests.policy(), capacity: 4096)
        var generator = TrafficGenerator(seed: 7, flowCount: 0)
        let flows = (0..<210).map { BatchTests.flow(family, port: 20000 + UInt16($0)) }
        let handshakes = flows.flatMap { handshake($0, generator) }
        for start in stride(from: 0, to: handshakes.count, by: 63) {
            twins.run(Array(handshakes[start..<min(start + 63, handshakes.count)]), now: 10 * nanosecondsPerSecond)
        }
        #expect(twins.batched.table.count == flows.count)
        var sent = [UInt32](repeating: 0, count: flows.count)
        for round in 0..<6 {
            var packets: [TracePacket] = []
            for _ in 0..<ConnectionTracker.batchCapacity {
                let index = generator.pick(flows.count)
                // Data from the client, or the server's acknowledgment of all of it so far.
                if generator.chance(50) {
                    packets.append(TracePacket(generator.tcp(flows[index], fromClient: true, [.ack, .psh],
                                                             seq: 1001 &+ sent[index], ack: 5001, payload: 100)))
                    sent[index] &+= 100
                } else {
                    packets.append(TracePacket(generator.tcp(flows[index], fromClient: false, .ack, seq: 5001,
                                                             ack: 1001 &+ sent[index])))
                }
            }
            let verdicts = twins.run(packets, now: (11 + UInt64(round)) * nanosecondsPerSecond)
            #expect(verdicts == [Verdict](repeating: .accept, count: packets.count))
        }
        let before = twins.batched.counters
        #expect(twins.run([], now: 20 * nanosecondsPerSecond).isEmpty)
        #expect(twins.batched.counters == before)
        twins.expectSameState()
    }

    /// A full table within one batch: the batch's own SYNs fill it, the next is refused.
    @Test func tableFillsInsideABatch() {
        let twins = BatchTwins(policy: BatchTests.policy(), capacity: 2)
        let generator = TrafficGenerator(seed: 1, flowCount: 0)
        let flows = (0..<3).map { BatchTests.flow(.ipv4, port: 41000 + UInt16($0)) }
        let packets = flows.flatMap { handshake($0, generator) }
        let verdicts = twins.run(packets, now: 10 * nanosecondsPerSecond)
        #expect(Array(verdicts.prefix(6)) == [Verdict](repeating: .accept, count: 6))
        #expect(verdicts[6] == .drop(.tableFull))
        twins.expectSameState()
    }

    /// The warm-up's key is the parser's for the packets it gives one for, and it gives none
    /// for what it cannot read without validation.
    @Test(arguments: Family.allCases)
    func lookaheadKeyIsTheParsersKey(family: Family) {
        let generator = TrafficGenerator(seed: 1, flowCount: 0)
        let flow = BatchTests.flow(family, port: 40000)
        var withOptions = PacketBuilder(source: family.client, destination: family.server)
        withOptions.ipv4Options = [1, 1, 1, 1, 1, 1, 1, 1]
        let packets = [
            generator.tcp(flow, fromClient: true, .syn, seq: 1, ack: 0),
            generator.tcp(flow, fromClient: false, [.syn, .ack], seq: 1, ack: 2),
            Datagrams.dns(family).query.build(),
            Datagrams.dns(family).answer.build(),
            withOptions.build(),
        ]
        for bytes in packets {
            let parsedKey: FlowKey?
            switch parse(bytes) {
            case .tcp(let segment): parsedKey = FlowKey(segment)
            case .datagram(let datagram): parsedKey = datagram.key
            default: parsedKey = nil
            }
            #expect(parsedKey != nil)
            let lookahead = bytes.withUnsafeBytes { ConnectionTable.lookaheadKey($0) }
            #expect(lookahead == parsedKey)
        }
        var extensionHeader = PacketBuilder(source: Family.ipv6.client, destination: Family.ipv6.server)
        extensionHeader.extensionHeaders = [.hopByHop()]
        var fragment = PacketBuilder(source: Family.ipv4.client, destination: Family.ipv4.server)
        fragment.fragmentField = 0x0010
        let skipped = [
            Datagrams.echo(family, from: family.client, to: family.server, reply: false, identifier: 7).build(),
            extensionHeader.build(),
            fragment.build(),
            [UInt8](repeating: 0x45, count: 27),
            [],
        ]
        for bytes in skipped {
            #expect(bytes.withUnsafeBytes { ConnectionTable.lookaheadKey($0) } == nil)
        }
    }

    // MARK: Huge pages

    /// A table whose arrays can hold huge pages takes each of them from its owner's provider,
    /// once: 2 MiB-aligned regions that are exactly the arrays, given back when the table goes.
    @Test func regionProviderProvidesEachLargeArray() {
        let regions = RecordingRegions()
        var expected: [RecordingRegions.Region] = []
        do {
            // 100,000 connections: 16 MB of slots, an index of 262,144 positions (2 MiB).
            let tracker = ConnectionTracker(policy: BatchTests.policy(), capacity: 100_000, regionProvider: regions.provider)
            let table = tracker.table
            #expect(table.indexCapacity == 262_144)
            expected = [
                (Int(bitPattern: UnsafeRawPointer(table.index)), table.indexCapacity * MemoryLayout<ConnectionTable.IndexEntry>.stride),
                (Int(bitPattern: UnsafeRawPointer(table.slots)), table.limit * MemoryLayout<Connection>.stride),
            ]
            #expect(regions.allocated.map(\.start) == expected.map(\.start))
            #expect(regions.allocated.map(\.byteCount) == expected.map(\.byteCount))
            for region in expected { #expect(region.start % ConnectionTable.hugePageBytes == 0) }
            #expect(regions.released.isEmpty)
        }
        #expect(regions.released.map(\.start).sorted() == expected.map(\.start).sorted())
        #expect(regions.released.map(\.byteCount).sorted() == expected.map(\.byteCount).sorted())
    }

    /// Small arrays cannot hold a huge page: they never come from the provider. Without a
    /// provider, or from one that has nothing to give, a large table is still laid out on huge
    /// page boundaries, and nothing is given back to a provider it did not come from.
    @Test func smallArraysAndRefusedRegionsComeFromTheHeap() {
        let regions = RecordingRegions()
        let small = ConnectionTable(limit: 10_000, regionProvider: regions.provider)
        #expect(regions.allocated.isEmpty)
        #expect(Int(bitPattern: UnsafeRawPointer(small.slots)) % 64 == 0)
        let large = ConnectionTable(limit: 100_000)
        #expect(Int(bitPattern: UnsafeRawPointer(large.index)) % ConnectionTable.hugePageBytes == 0)
        #expect(Int(bitPattern: UnsafeRawPointer(large.slots)) % ConnectionTable.hugePageBytes == 0)
        let refusing = RecordingRegions(refusing: true)
        do {
            let refused = ConnectionTable(limit: 100_000, regionProvider: refusing.provider)
            #expect(refusing.allocated.count == 2)
            #expect(Int(bitPattern: UnsafeRawPointer(refused.index)) % ConnectionTable.hugePageBytes == 0)
            #expect(Int(bitPattern: UnsafeRawPointer(refused.slots)) % ConnectionTable.hugePageBytes == 0)
        }
        #expect(refusing.released.isEmpty)
    }
}
