import SeqwallTestSupport
@testable import SeqwallCore
import Testing

// Unit tests of the limits on new connections (ConnectionTracker+Limits.swift), on the fake
// clock of TrackerLab.swift. Every packet goes through the parser and the whole tracker.

private let millisecond: UInt64 = 1_000_000

extension Lab {
    /// Any segment between `source`:`port` and the lab's server (port `serverPort`).
    func segment(_ side: Side, peer source: IPAddress, port: UInt16, serverPort: UInt16 = 80,
                 _ flags: TCPFlags, seq: UInt32, ack: UInt32) -> Verdict {
        var packet = PacketBuilder(source: side == .client ? source : family.server,
                                   destination: side == .client ? family.server : source)
        packet.sourcePort = side == .client ? port : serverPort
        packet.destinationPort = side == .client ? serverPort : port
        packet.flags = flags
        packet.sequence = seq
        packet.acknowledgment = ack
        let bytes = packet.build()
        return bytes.withUnsafeBytes { tracker.process($0, wireLength: bytes.count, hook: hook, now: now) }
    }

    /// A SYN from `source`:`port` to the server (client ISN 1000).
    func syn(from source: IPAddress, port: UInt16, serverPort: UInt16 = 80) -> Verdict {
        segment(.client, peer: source, port: port, serverPort: serverPort, .syn, seq: 1000, ack: 0)
    }

    /// The server's SYN-ACK to it (server ISN 5000).
    func synAck(to source: IPAddress, port: UInt16, serverPort: UInt16 = 80) -> Verdict {
        segment(.server, peer: source, port: port, serverPort: serverPort, [.syn, .ack], seq: 5000, ack: 1001)
    }

    /// The client's ACK that completes the handshake.
    func completingAck(from source: IPAddress, port: UInt16, serverPort: UInt16 = 80) -> Verdict {
        segment(.client, peer: source, port: port, serverPort: serverPort, .ack, seq: 1001, ack: 5001)
    }

    /// SYN, SYN-ACK, ACK from `source`:`port`; true when all three passed.
    func connect(from source: IPAddress, port: UInt16, serverPort: UInt16 = 80) -> Bool {
        syn(from: source, port: port, serverPort: serverPort) == .accept
            && synAck(to: source, port: port, serverPort: serverPort) == .accept
            && completingAck(from: source, port: port, serverPort: serverPort) == .accept
    }

    /// Half-open connections charged to `source` as a whole (scope 0) or under a rule id.
    func sourceCount(_ source: IPAddress, scope: UInt32 = 0) -> Int {
        tracker.limiter.sources?.halfOpen(SourceLimiter.prefix(of: source), scope: scope) ?? 0
    }

    func advance(milliseconds: UInt64) { now += milliseconds * millisecond }
}

/// The lab's policy (port 80 open inbound) with `limits`.
private func policy(_ family: Family, _ configure: (inout Policy) -> Void) -> Policy {
    var policy = Lab.defaultPolicy(family)
    configure(&policy)
    return policy
}

/// A client in another IPv6 /64 than `family.client` (IPv4: another address).
private func otherSource(_ family: Family) -> IPAddress {
    family == .ipv4 ? family.otherClient : ip("2001:db8:1:1::66")
}

/// The n-th address of a documentation-range-free pool of spoofed sources (IPv4 10.x, IPv6
/// 2001:db8:9::/48 + n in the second /64 group), as a flood would use them. Only for the fake
/// clock: these addresses never leave the process.
private func spoofed(_ family: Family, _ n: Int) -> IPAddress {
    family == .ipv4 ? IPAddress(ipv4: 0x0A00_0000 | UInt32(n & 0xFF_FFFF))
        : IPAddress(high: 0x2001_0DB8_0009_0000 | UInt64(n & 0xFFFF), low: 1)
}

@Suite("Limits: SYN rate per source")
struct SynRateTests {
    // limit syn-rate 2/s burst 3 per-source: three SYNs at once, then one every 500 ms.
    @Test(arguments: Family.allCases)
    func bucketPerSource(family: Family) {
        let lab = Lab(family: family, policy: policy(family) { $0.limits.synRatePerSource = (2, 3) })
        let a = family.client, b = otherSource(family)
        for port in UInt16(40000)..<40003 { #expect(lab.syn(from: a, port: port) == .accept) }
        #expect(lab.syn(from: a, port: 40003) == .drop(.synRate))
        #expect(lab.syn(from: a, port: 40004) == .drop(.synRate))
        // Another source has its own bucket.
        #expect(lab.syn(from: b, port: 40000) == .accept)
        // One token comes back every 500 ms, not before.
        lab.advance(milliseconds: 499)
        #expect(lab.syn(from: a, port: 40005) == .drop(.synRate))
        lab.advance(milliseconds: 1)
        #expect(lab.syn(from: a, port: 40006) == .accept)
        #expect(lab.syn(from: a, port: 40007) == .drop(.synRate))
        // After a long quiet spell the bucket is full again: burst 3, not more.
        lab.advance(seconds: 60)
        for port in UInt16(40010)..<40013 { #expect(lab.syn(from: a, port: port) == .accept) }
        #expect(lab.syn(from: a, port: 40013) == .drop(.synRate))
        #expect(lab.tracker.counters[.synRate] == 5)
        // A dropped SYN stored nothing.
        #expect(lab.tracker.table.count == 8)
        #expect(lab.tracker.halfOpenCount == 8)
    }

    // A retransmitted SYN of a tracked connection is not a new connection: it spends no token.
    @Test func retransmissionSpendsNoToken() {
        let family = Family.ipv4
        let lab = Lab(family: family, policy: policy(family) { $0.limits.synRatePerSource = (1, 1) })
        #expect(lab.syn(from: family.client, port: 40000) == .accept)
        #expect(lab.syn(from: family.client, port: 40000) == .accept)
        #expect(lab.syn(from: family.client, port: 40001) == .drop(.synRate))
    }

    // Outbound connections come from the protected side: per-source limits do not apply.
    @Test func outboundIsNotLimited() {
        let family = Family.ipv4
        let lab = Lab(family: family, policy: policy(family) { $0.limits.synRatePerSource = (1, 1) })
        var packet = PacketBuilder(source: family.server, destination: family.client)
        for port in UInt16(50000)..<50005 {
            packet.sourcePort = port
            packet.destinationPort = 443
            let bytes = packet.build()
            #expect(bytes.withUnsafeBytes { lab.tracker.process($0, wireLength: bytes.count, hook: .forward, now: lab.now) } == .accept)
        }
        #expect(lab.tracker.counters[.synRate] == 0)
    }

    // A source being rate-limited keeps its empty bucket while a spoofed flood churns through
    // the source table: the fuller buckets of the flood's sources are forgotten first, and the
    // table never grows.
    @Test func floodDoesNotFreeALimitedSource() throws {
        let family = Family.ipv4
        let lab = Lab(family: family, policy: policy(family) {
            $0.limits.synRatePerSource = (1, 2)
            $0.limits.states = 1024
        })
        let attacker = family.otherClient
        #expect(lab.syn(from: attacker, port: 1) == .accept)
        #expect(lab.syn(from: attacker, port: 2) == .accept)
        #expect(lab.syn(from: attacker, port: 3) == .drop(.synRate))
        let sources = try #require(lab.tracker.limiter.sources)
        let capacity = sources.capacity
        // Every set filled many times over with one-SYN sources, 1 ms of fake time per 4096
        // (far below the 1 s a token takes to come back); the attacker keeps trying.
        for n in 0..<(4 * capacity) {
            #expect(lab.syn(from: spoofed(family, n), port: UInt16(truncatingIfNeeded: n)) == .accept)
            if n % 4096 == 0 { lab.advance(milliseconds: 1) }
            if n % 1000 == 0 { #expect(lab.syn(from: attacker, port: UInt16(100 + n / 1000)) == .drop(.synRate)) }
        }
        #expect(sources.capacity == capacity, "the source table never grows")
        #expect(sources.evictions > 0, "partly drained buckets were forgotten for room")
        #expect(lab.syn(from: attacker, port: 60000) == .drop(.synRate))
    }
}

@Suite("Limits: half-open per source")
struct HalfOpenPerSourceTests {
    // limit half-open 2 per-source; every way out of half-open gives the count back.
    @Test(arguments: Family.allCases)
    func everyWayOutGivesTheCountBack(family: Family) {
        let lab = Lab(family: family, policy: policy(family) { $0.limits.halfOpenPerSource = 2 })
        let a = family.client, b = otherSource(family)
        #expect(lab.syn(from: a, port: 1) == .accept)
        #expect(lab.syn(from: a, port: 2) == .accept)
        #expect(lab.syn(from: a, port: 3) == .drop(.halfOpenLimit))
        #expect(lab.syn(from: b, port: 1) == .accept)
        #expect(lab.sourceCount(a) == 2)
        #expect(lab.sourceCount(b) == 1)

        // Established: the SYN-ACK moves it to SYN_RECV (still half-open), the ACK out of it.
        #expect(lab.synAck(to: a, port: 1) == .accept)
        #expect(lab.sourceCount(a) == 2)
        #expect(lab.completingAck(from: a, port: 1) == .accept)
        #expect(lab.sourceCount(a) == 1)
        #expect(lab.syn(from: a, port: 3) == .accept)
        #expect(lab.sourceCount(a) == 2)

        // RST from the server (RST|ACK acking the SYN, as a stack answers one: RFC 9293
        // 3.10.7.3 makes the client ignore anything else): destroyed.
        #expect(lab.segment(.server, peer: a, port: 3, [.rst, .ack], seq: 0, ack: 1001) == .accept)
        #expect(lab.sourceCount(a) == 1)

        // Deleted from the CLI (conntrack delete / flush use removeConnections).
        lab.tracker.removeConnections { $0.key.sourcePort == 2 }
        #expect(lab.sourceCount(a) == 0)

        // Expired.
        #expect(lab.syn(from: a, port: 4) == .accept)
        #expect(lab.syn(from: a, port: 5) == .accept)
        lab.advance(seconds: 121)
        lab.tracker.expire(now: lab.now, budget: lab.tracker.table.capacity)
        #expect(lab.sourceCount(a) == 0)
        #expect(lab.sourceCount(b) == 0)
        #expect(lab.tracker.halfOpenCount == 0)

        // Found expired by a lookup and replaced by the new SYN on the same tuple.
        #expect(lab.syn(from: a, port: 6) == .accept)
        lab.advance(seconds: 121)
        #expect(lab.syn(from: a, port: 6) == .accept)
        #expect(lab.sourceCount(a) == 1)

        // Flush.
        lab.tracker.removeConnections { _ in true }
        #expect(lab.sourceCount(a) == 0)
        #expect(lab.tracker.halfOpenCount == 0)
    }

    // A SYN on a TIME_WAIT tuple reopens it: the old connection (not half-open, nothing
    // charged) goes, the new one is charged once.
    @Test func reopenChargesOnce() {
        let family = Family.ipv4
        let lab = Lab(family: family, policy: policy(family) { $0.limits.halfOpenPerSource = 1 })
        lab.handshake()
        #expect(lab.sourceCount(family.client) == 0)
        #expect(lab.send(.client, [.fin, .ack], seq: lab.clientNext, ack: lab.serverNext) == .accept)
        #expect(lab.send(.server, [.fin, .ack], seq: lab.serverNext, ack: lab.clientNext &+ 1) == .accept)
        #expect(lab.send(.client, .ack, seq: lab.clientNext &+ 1, ack: lab.serverNext &+ 1) == .accept)
        #expect(lab.state == .timeWait)
        #expect(lab.send(.client, .syn, seq: lab.clientNext &+ 100_000, ack: 0) == .accept)
        #expect(lab.state == .synSent)
        #expect(lab.sourceCount(family.client) == 1)
        #expect(lab.tracker.halfOpenCount == 1)
    }

    // IPv6 sources count by /64: two addresses of one /64 share a count.
    @Test func ipv6CountsBySlash64() {
        let family = Family.ipv6
        let lab = Lab(family: family, policy: policy(family) { $0.limits.halfOpenPerSource = 2 })
        #expect(lab.syn(from: ip("2001:db8:1::10"), port: 1) == .accept)
        #expect(lab.syn(from: ip("2001:db8:1::ffff:1"), port: 1) == .accept)
        #expect(lab.syn(from: ip("2001:db8:1:0:8000::1"), port: 1) == .drop(.halfOpenLimit))
        #expect(lab.syn(from: ip("2001:db8:1:1::10"), port: 1) == .accept)
    }
}

@Suite("Limits: per-rule half-open per source")
struct RuleHalfOpenTests {
    static func rule(_ port: UInt16, limit: Int?, line: Int) -> Rule {
        Rule(action: .pass, direction: .inbound, ports: [PortRange(port)], halfOpenPerSource: limit,
             location: SeqwallCore.SourceLocation(file: "test.rules", line: line, column: 1))
    }

    // `pass in tcp to port 8000 limit half-open 1 per-source` next to an unlimited rule.
    @Test func ruleLimitsOnlyItsOwnConnections() {
        let family = Family.ipv4
        let lab = Lab(family: family, policy: policy(family) {
            $0.rules = [Self.rule(8000, limit: 1, line: 1), Self.rule(80, limit: nil, line: 2)]
        })
        let a = family.client
        #expect(lab.syn(from: a, port: 1, serverPort: 8000) == .accept)
        #expect(lab.syn(from: a, port: 2, serverPort: 8000) == .drop(.halfOpenLimit))
        #expect(lab.syn(from: a, port: 3, serverPort: 80) == .accept)
        #expect(lab.syn(from: family.otherClient, port: 1, serverPort: 8000) == .accept)
    }

    // A reload moves the rule to another index and changes its limit: the count stays with
    // the rule, and the connection charged before the reload gives it back afterwards.
    @Test func countsSurviveAReload() {
        let family = Family.ipv4
        let lab = Lab(family: family, policy: policy(family) { $0.rules = [Self.rule(8000, limit: 1, line: 1)] })
        let a = family.client
        #expect(lab.syn(from: a, port: 1, serverPort: 8000) == .accept)
        let id = lab.tracker.limiter.ruleIDs[0]
        #expect(lab.sourceCount(a, scope: id) == 1)

        lab.tracker.replacePolicy(policy(family) {
            $0.rules = [Self.rule(22, limit: 5, line: 1), Self.rule(80, limit: nil, line: 2),
                        Self.rule(8000, limit: 2, line: 3)]
        })
        #expect(lab.tracker.limiter.ruleIDs[2] == id, "an unchanged rule keeps its id")
        #expect(lab.tracker.limiter.ruleIDs[0] != id && lab.tracker.limiter.ruleIDs[0] != 0)
        #expect(lab.syn(from: a, port: 2, serverPort: 8000) == .accept)
        #expect(lab.syn(from: a, port: 3, serverPort: 8000) == .drop(.halfOpenLimit))
        #expect(lab.sourceCount(a, scope: id) == 2)

        // A rule that now matches something else is another rule: fresh counts. The
        // connections charged to the old one still give back to the old one.
        lab.tracker.replacePolicy(policy(family) { $0.rules = [Self.rule(8001, limit: 1, line: 1)] })
        let newID = lab.tracker.limiter.ruleIDs[0]
        #expect(newID != id)
        #expect(lab.syn(from: a, port: 4, serverPort: 8001) == .accept)
        #expect(lab.synAck(to: a, port: 1, serverPort: 8000) == .accept)
        #expect(lab.completingAck(from: a, port: 1, serverPort: 8000) == .accept)
        #expect(lab.sourceCount(a, scope: id) == 1)
        #expect(lab.sourceCount(a, scope: newID) == 1)
        lab.tracker.removeConnections { _ in true }
        #expect(lab.sourceCount(a, scope: id) == 0)
        #expect(lab.sourceCount(a, scope: newID) == 0)
    }

    // Two rules that differ only in their tables are two rules, each with its own counts; a
    // table added in front of them on reload moves their references but keeps their ids.
    @Test func tablesTellRulesApart() {
        let family = Family.ipv4
        func limited(_ table: String, index: Int, line: Int) -> Rule {
            Rule(action: .pass, direction: .inbound, fromTables: [TableReference(name: table, index: index)],
                 ports: [PortRange(8000)], halfOpenPerSource: 1,
                 location: SeqwallCore.SourceLocation(file: "test.rules", line: line, column: 1))
        }
        let tables = [AddressTable(name: "first", entries: []), AddressTable(name: "second", entries: [])]
        let lab = Lab(family: family, policy: policy(family) {
            $0.tables = tables
            $0.rules = [limited("first", index: 0, line: 1), limited("second", index: 1, line: 2)]
        })
        let ids = lab.tracker.limiter.ruleIDs
        #expect(ids[0] != 0 && ids[1] != 0 && ids[0] != ids[1])

        lab.tracker.replacePolicy(policy(family) {
            $0.tables = [AddressTable(name: "new", entries: [])] + tables
            $0.rules = [limited("first", index: 1, line: 2), limited("second", index: 2, line: 3)]
        })
        #expect(lab.tracker.limiter.ruleIDs == ids)
    }

    // A reload as the daemon does it: the plan (RuleCounterCarry) made once off the worker
    // gives a tracker the ids it would give itself (moved rules keep theirs, a rule written
    // twice shares one, a new rule gets a new one), and each rule's connection limits by id.
    @Test func planMadeBeforehandGivesTheSameIDs() {
        let family = Family.ipv4
        func connectionLimited(line: Int) -> Rule {
            var rule = Self.rule(443, limit: nil, line: line)
            rule.connPerSource = SourceConnectionLimit(count: 3)
            return rule
        }
        let first = [Self.rule(8000, limit: 1, line: 1), Self.rule(22, limit: 2, line: 2), connectionLimited(line: 3)]
        let second = [Self.rule(80, limit: nil, line: 1), Self.rule(9000, limit: 1, line: 2), Self.rule(22, limit: 5, line: 3),
                      Self.rule(8000, limit: 1, line: 4), connectionLimited(line: 5), Self.rule(9000, limit: 3, line: 6)]
        let planned = Lab(family: family, policy: policy(family) { $0.rules = first })
        let unplanned = Lab(family: family, policy: policy(family) { $0.rules = first })
        let before = planned.tracker.limiter.ruleIDs
        #expect(before == unplanned.tracker.limiter.ruleIDs && !before.contains(0) && Set(before).count == 3)
        #expect(planned.tracker.limiter.ruleConnection(before[2])?.count?.count == 3)
        #expect(planned.tracker.limiter.ruleConnection(before[0]) == nil)

        planned.tracker.replacePolicy(policy(family) { $0.rules = second }, carry: RuleCounterCarry(from: first, to: second))
        unplanned.tracker.replacePolicy(policy(family) { $0.rules = second })
        let ids = planned.tracker.limiter.ruleIDs
        #expect(ids == unplanned.tracker.limiter.ruleIDs)
        #expect(ids[0] == 0, "no per-source limit, no id")
        #expect(ids[2] == before[1] && ids[3] == before[0] && ids[4] == before[2], "moved rules keep their ids")
        #expect(ids[1] != 0 && ids[5] == ids[1] && !before.contains(ids[1]), "one new id for a rule written twice")
        #expect(planned.tracker.limiter.ruleConnection(ids[4])?.count?.count == 3)
        #expect(planned.tracker.limiter.ruleConnection(ids[1]) == nil)
        #expect(planned.tracker.limiter.ruleConnection(0) == nil)
        #expect(planned.tracker.limiter.ruleConnection(UInt32.max) == nil)

        // A rule that went away takes its connection limits with it.
        planned.tracker.replacePolicy(policy(family) { $0.rules = first.prefix(2).map { $0 } },
                                      carry: RuleCounterCarry(from: second, to: Array(first.prefix(2))))
        #expect(planned.tracker.limiter.ruleIDs == [before[0], before[1]])
        #expect(planned.tracker.limiter.ruleConnection(before[2]) == nil)
        #expect(!planned.tracker.limiter.limitsConnections)
    }

    // A reload that adds per-source limits to a tracker that had none: connections opened
    // before were never charged and give nothing back, so no count goes below zero.
    @Test func limitsAddedByAReload() {
        let family = Family.ipv4
        let lab = Lab(family: family)
        #expect(lab.syn(from: family.client, port: 1) == .accept)
        #expect(lab.tracker.limiter.sources == nil)
        lab.tracker.replacePolicy(policy(family) { $0.limits.halfOpenPerSource = 1 })
        #expect(lab.syn(from: family.client, port: 2) == .accept)
        #expect(lab.syn(from: family.client, port: 3) == .drop(.halfOpenLimit))
        lab.tracker.removeConnections { $0.key.sourcePort == 1 }
        #expect(lab.sourceCount(family.client) == 1)
        lab.tracker.removeConnections { $0.key.sourcePort == 2 }
        #expect(lab.sourceCount(family.client) == 0)
    }
}

@Suite("Limits: global half-open limit")
struct GlobalHalfOpenTests {
    // limit half-open 4: at the limit a SYN evicts the oldest unreplied connection once it is
    // 100 ms old; a connection that has seen a reply is never evicted.
    @Test(arguments: Family.allCases)
    func evictsOldestUnrepliedOnceOldEnough(family: Family) {
        let lab = Lab(family: family, policy: policy(family) { $0.limits.halfOpen = 4 })
        for n in 0..<4 {
            #expect(lab.syn(from: spoofed(family, n), port: 1) == .accept)
            lab.advance(milliseconds: 10)
        }
        // The first one got a SYN-ACK: SYN_RECV, still half-open, but replied.
        #expect(lab.synAck(to: spoofed(family, 0), port: 1) == .accept)
        #expect(lab.syn(from: family.client, port: 1) == .drop(.halfOpenLimit))  // 2nd is 30 ms old
        lab.advance(milliseconds: 80)                                              // 2nd is 110 ms old
        #expect(lab.syn(from: family.client, port: 2) == .accept)
        #expect(lab.tracker.halfOpenCount == 4)
        #expect(lab.tracker.counters.halfOpenEvictions == 1)
        #expect(lab.tracker.table.find(FlowKey(source: spoofed(family, 1), destination: family.server,
                                               sourcePort: 1, destinationPort: 80)) == nil)
        #expect(lab.tracker.table.find(FlowKey(source: spoofed(family, 0), destination: family.server,
                                               sourcePort: 1, destinationPort: 80)) != nil)
        // The 3rd (100 ms old) goes next; the 4th is 90 ms old, then old enough 10 ms later;
        // after it the oldest is our own 10 ms old SYN.
        #expect(lab.syn(from: family.client, port: 3) == .accept)
        #expect(lab.syn(from: family.client, port: 4) == .drop(.halfOpenLimit))
        lab.advance(milliseconds: 10)
        #expect(lab.syn(from: family.client, port: 5) == .accept)
        #expect(lab.syn(from: family.client, port: 6) == .drop(.halfOpenLimit))
        #expect(lab.tracker.counters.halfOpenEvictions == 3)
        #expect(lab.tracker.counters.destroyed == 3)
        #expect(lab.tracker.halfOpenCount == 4)
    }

    // A spoofed flood of 500 SYNs a second (never answered) against limit half-open 64, while
    // a legitimate client opens 200 connections, one every 50 ms, each answered in 1 ms: all
    // 200 succeed and the half-open count never passes 64.
    @Test func legitimateClientGetsThroughAFlood() {
        let family = Family.ipv4
        let lab = Lab(family: family, policy: policy(family) { $0.limits.halfOpen = 64 })
        var spoof = 0
        var succeeded = 0
        var peak = 0
        for n in 0..<200 {
            for _ in 0..<25 {  // 25 spoofed SYNs per 50 ms
                _ = lab.syn(from: spoofed(family, spoof), port: UInt16(truncatingIfNeeded: spoof))
                spoof += 1
                peak = max(peak, lab.tracker.halfOpenCount)
                lab.advance(milliseconds: 2)
            }
            let port = UInt16(30000 + n)
            if lab.syn(from: family.client, port: port) == .accept {
                lab.advance(milliseconds: 1)
                if lab.synAck(to: family.client, port: port) == .accept
                    && lab.completingAck(from: family.client, port: port) == .accept {
                    succeeded += 1
                }
            }
            peak = max(peak, lab.tracker.halfOpenCount)
        }
        #expect(succeeded == 200)
        #expect(peak == 64)
        #expect(lab.tracker.counters.halfOpenEvictions > 4000)
    }

    // Two workers share `limit half-open 10`: each gets 5.
    @Test func workersShareTheLimit() {
        var policy = Lab.defaultPolicy(.ipv4)
        policy.limits.halfOpen = 10
        let tracker = ConnectionTracker(policy: policy, capacity: 100, shares: 2)
        #expect(tracker.limiter.halfOpenLimit == 5)
    }
}

@Suite("Limits: full table (early drop)")
struct EarlyDropTests {
    // A table of 16 full of unreplied SYNs: a new SYN evicts one of its neighbours, the one
    // closest to expiry (the oldest here).
    @Test func evictsUnrepliedNeighbour() {
        let family = Family.ipv4
        let lab = Lab(family: family, capacity: 16)
        for n in 0..<16 {
            #expect(lab.syn(from: spoofed(family, n), port: 1) == .accept)
            lab.advance(seconds: 1)
        }
        #expect(lab.tracker.table.isFull)
        #expect(lab.syn(from: family.client, port: 1) == .accept)
        #expect(lab.tracker.counters.earlyDrops == 1)
        #expect(lab.tracker.table.count == 16)
        #expect(lab.tracker.halfOpenCount == 16)
    }

    // Assured connections are never evicted: the SYN is dropped with table-full.
    @Test func neverEvictsAssured() {
        let family = Family.ipv4
        let lab = Lab(family: family, capacity: 16)
        for n in 0..<16 { #expect(lab.connect(from: spoofed(family, n), port: 1)) }
        #expect(lab.syn(from: family.client, port: 1) == .drop(.tableFull))
        #expect(lab.tracker.counters.earlyDrops == 0)
        #expect(lab.tracker.table.count == 16)
        // An expired neighbour is simply removed (expiry, not an eviction).
        lab.advance(seconds: 432_001)
        #expect(lab.syn(from: family.client, port: 1) == .accept)
        #expect(lab.tracker.counters.earlyDrops == 0)
        #expect(lab.tracker.counters.destroyed == 1)
    }

    // Among the neighbours, an unreplied connection goes before a replied one, even one
    // closer to expiry.
    @Test func prefersUnreplied() {
        let family = Family.ipv4
        let lab = Lab(family: family, capacity: 16)
        #expect(lab.syn(from: spoofed(family, 0), port: 1) == .accept)           // expires at +120 s
        lab.advance(seconds: 1)
        for n in 1..<16 {
            #expect(lab.syn(from: spoofed(family, n), port: 1) == .accept)
            #expect(lab.synAck(to: spoofed(family, n), port: 1) == .accept)     // SYN_RECV: 60 s
        }
        // With 16 entries in 32 index positions, the only unreplied one may lie outside the new
        // key's neighbourhood; try keys until one's neighbourhood holds it.
        let unreplied = FlowKey(source: spoofed(family, 0), destination: family.server, sourcePort: 1,
                                destinationPort: 80)
        let position = lab.tracker.table.position(of: lab.tracker.table.find(unreplied)!.slot)
        var port: UInt16 = 1
        while true {
            let key = FlowKey(source: family.client, destination: family.server, sourcePort: port, destinationPort: 80)
            let home = lab.tracker.table.homePosition(of: key)
            // Within the first 16 occupied positions from its home (all 16 entries are within 32).
            if (position - home) & lab.tracker.table.indexMask < ConnectionTracker.earlyDropRange { break }
            port += 1
        }
        #expect(lab.syn(from: family.client, port: port) == .accept)
        #expect(lab.tracker.table.find(unreplied) == nil)
        #expect(lab.tracker.counters.earlyDrops == 1)
    }
}

@Suite("Limits: adaptive half-open timeouts")
struct AdaptiveTimeoutTests {
    // limit half-open 10: from 6 half-open connections (60%) on, a new SYN_SENT timeout is
    // 120 s * (12 - n) / (12 - 6), n the count before it; a third of it at the limit.
    @Test func synSentTimeoutShrinksWithTheHalfOpenCount() {
        let family = Family.ipv4
        let lab = Lab(family: family, policy: policy(family) { $0.limits.halfOpen = 10 })
        let expected: [UInt64] = [120, 120, 120, 120, 120, 120, 120, 100, 80, 60]
        for n in 0..<10 {
            #expect(lab.syn(from: spoofed(family, n), port: 1) == .accept)
            let key = FlowKey(source: spoofed(family, n), destination: family.server, sourcePort: 1, destinationPort: 80)
            let connection = lab.tracker.table.connection(at: lab.tracker.table.find(key)!.slot).pointee
            #expect(connection.secondsLeft(now: lab.now) == expected[n], "connection \(n)")
        }
        // Established connections keep their timeout whatever the pressure.
        lab.advance(milliseconds: 200)
        #expect(lab.connect(from: family.client, port: 7))
        let key = FlowKey(source: family.client, destination: family.server, sourcePort: 7, destinationPort: 80)
        let established = lab.tracker.table.connection(at: lab.tracker.table.find(key)!.slot).pointee
        #expect(established.secondsLeft(now: lab.now) == 432_000)
    }

    // A full table shrinks them too.
    @Test func fullTableShrinksThem() {
        let family = Family.ipv4
        let lab = Lab(family: family, capacity: 10)
        for n in 0..<9 { #expect(lab.connect(from: spoofed(family, n), port: 1)) }
        #expect(lab.syn(from: family.client, port: 1) == .accept)
        // 9 of 10 before it: 120 s * (12 - 9) / 6.
        #expect(lab.connection(from: family.client, port: 1)?.secondsLeft(now: lab.now) == 60)
    }
}

extension Lab {
    func connection(from source: IPAddress, port: UInt16, serverPort: UInt16 = 80) -> Connection? {
        let key = FlowKey(source: source, destination: family.server, sourcePort: port, destinationPort: serverPort)
        return tracker.table.find(key).map { tracker.table.connection(at: $0.slot).pointee }
    }
}
