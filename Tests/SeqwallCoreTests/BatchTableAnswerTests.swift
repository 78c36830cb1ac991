import SeqwallTestSupport
@testable import SeqwallCore
import Testing

// The batch warm-up's table answers (TableAnswers, ConnectionTracker+DecisionWarmup.swift):
// a batch decides with the answers its warm-up found instead of searching the tables again,
// so on random policies with several large tables (plain and negated references, exceptions,
// both families, both sides of a flow) batches must decide exactly as one by one, garbled and
// cut packets included; and no answer may outlive its batch or answer for another address.

/// Addresses of the documentation networks, and tables and rules drawn over them.
struct TablePolicyGenerator {
    var random: SplitMix64

    mutating func pick(_ count: Int) -> Int { Int(random.next() % UInt64(count)) }
    mutating func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }

    /// An IPv4 address in 192.0.2.0/24, 198.51.100.0/24 or 203.0.113.0/24.
    mutating func ipv4() -> IPAddress {
        let networks: [UInt32] = [0xC000_0200, 0xC633_6400, 0xCB00_7100]
        return IPAddress(ipv4: networks[pick(3)] | UInt32(pick(256)))
    }

    /// An IPv6 address in 2001:db8::/32, its next 16 bits and its last bits from a few values
    /// so that tables' prefixes and exceptions nest and flows hit them.
    mutating func ipv6() -> IPAddress {
        let high = 0x2001_0DB8_0000_0000 | UInt64(pick(8)) << 16 | UInt64(pick(4))
        return IPAddress(high: high, low: UInt64(pick(4)) << 60 | UInt64(pick(64)))
    }

    mutating func address(_ family: Family) -> IPAddress { family == .ipv4 ? ipv4() : ipv6() }

    /// A prefix of `family` around a random address: IPv4 /25 to /32, IPv6 /56 to /128.
    mutating func network(_ family: Family) -> IPNetwork {
        let length = family == .ipv4 ? 25 + pick(8) : [56, 60, 62, 64, 66, 120, 128][pick(7)]
        return IPNetwork(address: address(family), prefixLength: length)
    }

    /// More than PrefixMatcher.directoryThreshold flips in each family (a directory, so the
    /// warm-up looks it up), one entry in six an exception; or a few entries (no directory:
    /// decided without answers).
    mutating func table(name: String, large: Bool) -> AddressTable {
        var entries: [TableEntry] = []
        let count = large ? 400 : 6
        for _ in 0..<count {
            entries.append(TableEntry(network(chance(50) ? .ipv4 : .ipv6), negated: chance(16)))
        }
        // Host entries across the networks, so that both families have flips enough for a
        // directory whatever the random prefixes cover: IPv4 in all three networks, IPv6 in
        // 2001:db8:8::/64, past the addresses flows are drawn from.
        if large {
            for host in stride(from: 1, to: 256, by: 2) {
                for network: UInt32 in [0xC000_0200, 0xC633_6400, 0xCB00_7100] {
                    entries.append(TableEntry(IPNetwork(address: IPAddress(ipv4: network | UInt32(host)), prefixLength: 32)))
                }
                entries.append(TableEntry(IPNetwork(address: IPAddress(high: 0x2001_0DB8_0008_0000, low: UInt64(host)),
                                                    prefixLength: 128)))
                entries.append(TableEntry(IPNetwork(address: IPAddress(high: 0x2001_0DB8_0008_0000, low: UInt64(host) << 32),
                                                    prefixLength: 128)))
            }
        }
        return AddressTable(name: name, entries: entries)
    }

    /// A list of table references: each of the tables at most once, plain or negated.
    mutating func references(_ tables: [AddressTable]) -> [TableReference] {
        var references: [TableReference] = []
        for (index, table) in tables.enumerated() where chance(35) {
            references.append(TableReference(name: table.name, index: index, negated: chance(30)))
        }
        return references
    }

    /// Three large tables and a small one, and a dozen rules naming them on either side,
    /// some with networks or ports as well, before a last catch-all rule half the time.
    mutating func policy() -> Policy {
        var policy = Policy()
        policy.inside = [Family.ipv4.insideNetwork, Family.ipv6.insideNetwork]
        policy.defaultInbound = chance(50) ? .block : .pass
        policy.defaultOutbound = chance(50) ? .block : .pass
        policy.tables = [table(name: "a", large: true), table(name: "b", large: true), table(name: "small", large: false),
                         table(name: "c", large: true)]
        let at = SeqwallCore.SourceLocation(file: "answers.rules", line: 1, column: 1)
        for _ in 0..<(6 + pick(8)) {
            let family: Family = chance(50) ? .ipv4 : .ipv6
            var rule = Rule(action: [.pass, .block, .reject][pick(3)], direction: chance(70) ? .inbound : .outbound,
                            protocolName: chance(80) ? .tcp : .udp, location: at)
            rule.fromTables = references(policy.tables)
            rule.toTables = references(policy.tables)
            if chance(20) { rule.from = [network(family)] }
            if chance(20) { rule.to = [network(family)] }
            if chance(30) { rule.ports = [PortRange(UInt16(80 + pick(3)))] }
            policy.rules.append(rule)
        }
        policy.limits.halfOpen = 1000
        return policy
    }
}

/// Random new flows and damage: SYNs and UDP datagrams between random addresses of one family
/// (either end may be in a table), SYNs of flows already seen, data for no connection, garbled
/// bytes and packets cut short.
struct NewFlowTraffic {
    var generator: TablePolicyGenerator
    var seen: [(family: Family, source: IPAddress, destination: IPAddress, port: UInt16)] = []

    mutating func next() -> TracePacket {
        let hook: PacketHook = generator.chance(70) ? .forward : [.input, .output][generator.pick(2)]
        let roll = generator.pick(100)
        if roll < 5 {
            let length = generator.pick(72)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.random.next()) }
            if length > 0 && generator.chance(70) { bytes[0] = (generator.chance(50) ? 0x45 : 0x60) | (bytes[0] & 0x0F) }
            return TracePacket(bytes, hook: hook)
        }
        let family: Family = generator.chance(50) ? .ipv4 : .ipv6
        var flow = (family: family, source: generator.address(family), destination: generator.address(family),
                    port: UInt16(40000 + generator.pick(20000)))
        if roll < 25, !seen.isEmpty { flow = seen[generator.pick(seen.count)] } else { seen.append(flow) }
        let serverPort = UInt16(80 + generator.pick(3))
        var packet: TracePacket
        if roll < 40 {
            packet = TracePacket(Datagrams.udp(flow.family, from: flow.source, to: flow.destination, sport: flow.port,
                                               dport: serverPort).build(), hook: hook)
        } else {
            var builder = PacketBuilder(source: flow.source, destination: flow.destination)
            builder.sourcePort = flow.port
            builder.destinationPort = serverPort
            builder.flags = generator.chance(85) ? .syn : .ack
            builder.sequence = UInt32(truncatingIfNeeded: generator.random.next())
            packet = TracePacket(builder.build(), hook: hook)
        }
        if roll < 45 {
            packet.captured = generator.pick(packet.bytes.count + 1)
        } else if roll < 50 {
            // An address byte flipped after the checksum: what the warm-up reads and what the
            // parser reads of a damaged packet must still give one decision.
            let at = (family == .ipv4 ? 12 : 8) + generator.pick(family == .ipv4 ? 8 : 32)
            packet.bytes[at] ^= UInt8(1 + generator.pick(255))
        }
        return packet
    }
}

@Suite struct BatchTableAnswerTests {
    /// Random policies over large tables: every batch's verdicts, then the whole state, equal
    /// one by one's; and the answers were used (the warm-up found some).
    @Test(arguments: 0..<16)
    func randomPoliciesWithTablesMatchOneByOne(seed: Int) {
        var generator = TablePolicyGenerator(random: SplitMix64(seed: 0x7AB1_E000 + UInt64(seed)))
        let policy = generator.policy()
        #expect(policy.warmsDecisions)
        let twins = BatchTwins(policy: policy, capacity: 4096)
        var traffic = NewFlowTraffic(generator: generator)
        var now: UInt64 = 10_000 * nanosecondsPerSecond
        var answered = 0
        for batch in 0..<40 {
            let size = batch % 3 == 0 ? ConnectionTracker.batchCapacity : 1 + traffic.generator.pick(ConnectionTracker.batchCapacity)
            let packets = (0..<size).map { _ in traffic.next() }
            twins.run(packets, now: now, context: "seed \(seed) batch \(batch)")
            if twins.batched.batchAnswers[0].sourceKnown | twins.batched.batchAnswers[0].destinationKnown != 0 { answered += 1 }
            #expect(twins.batched.hot.pointee.tableAnswers == nil, "answers kept past their batch")
            now += UInt64(traffic.generator.pick(3)) * 40 * nanosecondsPerSecond
        }
        twins.expectSameState()
        #expect(answered > 20, "the warm-up answered in \(answered) batches of 40")
        let counters = twins.oneByOne.counters
        #expect(counters.created > 100)
        #expect(counters[.rule] > 50)
    }

    /// Each rule alone, against each flow alone: the batch's decision is Rule.matches over the
    /// tables (first match by hand), so the answers are right and not merely equal on both paths.
    @Test(arguments: 0..<6)
    func batchedDecisionsAreFirstMatch(seed: Int) {
        var generator = TablePolicyGenerator(random: SplitMix64(seed: 0xF125_7000 + UInt64(seed)))
        var policy = generator.policy()
        policy.defaultInbound = .block
        policy.defaultOutbound = .block
        // Only pass and block, so that a SYN's verdict says whether a rule passed it.
        for index in policy.rules.indices where policy.rules[index].action == .reject { policy.rules[index].action = .block }
        let tracker = ConnectionTracker(policy: policy, capacity: 4096)
        var flows: [(source: IPAddress, destination: IPAddress, bytes: [UInt8])] = []
        for index in 0..<ConnectionTracker.batchCapacity {
            let family: Family = index % 2 == 0 ? .ipv4 : .ipv6
            let source = generator.address(family), destination = generator.address(family)
            var builder = PacketBuilder(source: source, destination: destination)
            builder.sourcePort = UInt16(30000 + index)
            builder.destinationPort = UInt16(80 + generator.pick(3))
            flows.append((source, destination, builder.build()))
        }
        var verdicts = [Verdict](repeating: .accept, count: flows.count)
        let arena = flows.map(\.bytes)
        withQueued(arena, hook: .input) { queued in
            verdicts.withUnsafeMutableBufferPointer { tracker.process(batch: queued, verdicts: $0.baseAddress!, now: 1) }
        }
        for (index, flow) in flows.enumerated() {
            let port = UInt16(arena[index][flow.source.isIPv4 ? 22 : 42]) << 8 | UInt16(arena[index][flow.source.isIPv4 ? 23 : 43])
            let first = policy.rules.firstIndex {
                $0.matches(direction: .inbound, source: flow.source, destination: flow.destination, destinationPort: port,
                           tables: policy.tables)
            }
            let passes = first.map { policy.rules[$0].action == .pass } ?? false
            #expect((verdicts[index] == .accept) == passes, "flow \(index): \(flow.source) -> \(flow.destination)")
        }
    }

    /// A table replaced between two batches (`seqwall table`, a mailbox job between batches):
    /// the second batch decides by the new table, not by answers of the first.
    @Test(arguments: Family.allCases)
    func answersDoNotOutliveTheirBatch(family: Family) {
        var generator = TablePolicyGenerator(random: SplitMix64(seed: 99))
        let listed = family == .ipv4 ? ip("198.51.100.77") : ip("2001:db8:5::77")
        let big = generator.table(name: "drop", large: true)
        let with = AddressTable(name: "drop", entries: big.entries + [TableEntry(IPNetwork(address: listed, prefixLength: family == .ipv4 ? 32 : 128))])
        let without = AddressTable(name: "drop", entries: big.entries.filter { !$0.network.contains(listed) })
        var policy = Policy()
        policy.defaultInbound = .pass
        policy.tables = [with]
        let at = SeqwallCore.SourceLocation(file: "answers.rules", line: 1, column: 1)
        policy.rules = [Rule(action: .block, direction: .inbound, fromTables: [TableReference(name: "drop", index: 0)], location: at)]
        let twins = BatchTwins(policy: policy, capacity: 64)
        func syn(_ port: UInt16) -> TracePacket {
            var builder = PacketBuilder(source: listed, destination: family.server)
            builder.sourcePort = port
            return TracePacket(builder.build(), hook: .input)
        }
        #expect(twins.run([syn(40000), syn(40001)], now: 1) == [.drop(.rule), .drop(.rule)])
        twins.oneByOne.replaceTable(at: 0, with: without)
        twins.batched.replaceTable(at: 0, with: without)
        #expect(twins.run([syn(40002), syn(40003)], now: 2) == [.accept, .accept])
        twins.expectSameState()
    }

    /// An answer is for its table position and its address only.
    @Test func answersAreKeyedByTableAndAddress() {
        var answers = TableAnswers(source: ip("192.0.2.1"), destination: ip("2001:db8::1"))
        answers.record(true, position: 3, bySource: true)
        answers.record(false, position: 5, bySource: false)
        answers.record(true, position: 64, bySource: true)
        #expect(answers.answer(position: 3, address: ip("192.0.2.1"), bySource: true) == true)
        #expect(answers.answer(position: 3, address: ip("192.0.2.2"), bySource: true) == nil)
        #expect(answers.answer(position: 3, address: ip("192.0.2.1"), bySource: false) == nil)
        #expect(answers.answer(position: 2, address: ip("192.0.2.1"), bySource: true) == nil)
        #expect(answers.answer(position: 5, address: ip("2001:db8::1"), bySource: false) == false)
        #expect(answers.answer(position: 5, address: ip("2001:db8::2"), bySource: false) == nil)
        #expect(answers.answer(position: 64, address: ip("192.0.2.1"), bySource: true) == nil)
    }

    /// The packets as the daemon hands a batch over.
    func withQueued(_ packets: [[UInt8]], hook: PacketHook, _ body: (UnsafeBufferPointer<QueuedPacket>) -> Void) {
        var arena = packets.flatMap { $0 }
        arena.withUnsafeMutableBytes { arena in
            var queued: [QueuedPacket] = []
            var offset = 0
            for packet in packets {
                queued.append(QueuedPacket(bytes: UnsafeRawBufferPointer(rebasing: arena[offset..<(offset + packet.count)]),
                                           wireLength: packet.count, hook: hook))
                offset += packet.count
            }
            queued.withUnsafeBufferPointer(body)
        }
    }
}
