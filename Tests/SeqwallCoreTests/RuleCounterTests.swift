import SeqwallCore
import SeqwallTestSupport
import Testing

// Per-rule counters (RuleCounterTable): every new connection is counted once, under the rule
// that decided it (or its direction's default), by its verdict; a reload keeps the counts of
// the rules it keeps.

private func rule(_ action: RuleAction, port: UInt16, line: Int, _ protocolName: TrackedProtocol = .tcp) -> Rule {
    Rule(action: action, direction: .inbound, protocolName: protocolName, ports: [PortRange(port)],
         location: SeqwallCore.SourceLocation(file: "test.rules", line: line, column: 1))
}

private func policy(_ family: Family, _ rules: [Rule], change: (inout Policy) -> Void = { _ in }) -> Policy {
    var policy = Lab.defaultPolicy(family)
    policy.rules = rules
    change(&policy)
    return policy
}

@Suite struct RuleCounterTests {
    let peer = IPAddress("198.51.100.77")!

    @Test func eachNewConnectionIsCountedUnderTheRuleThatDecidedIt() {
        let lab = Lab(family: .ipv4, policy: policy(.ipv4, [rule(.pass, port: 80, line: 1), rule(.block, port: 81, line: 2),
                                                            rule(.reject, port: 82, line: 3)]))
        #expect(lab.connect(from: peer, port: 1000))
        // Packets of a known connection are not new: not counted again.
        #expect(lab.segment(.client, peer: peer, port: 1000, [.ack], seq: 1001, ack: 5001) == .accept)
        #expect(lab.syn(from: peer, port: 1001, serverPort: 81) == .drop(.rule))
        #expect(lab.syn(from: peer, port: 1002, serverPort: 82) == .reject)
        lab.advance(seconds: 3)
        #expect(lab.syn(from: peer, port: 1003, serverPort: 82) == .reject)
        // No rule for port 90: `default in block`.
        #expect(lab.syn(from: peer, port: 1004, serverPort: 90) == .drop(.rule))
        // Not a SYN and no connection: no rule was asked.
        #expect(lab.segment(.client, peer: peer, port: 1005, [.ack], seq: 1, ack: 1) == .drop(.noConnection))

        let counters = lab.tracker.ruleCounters
        #expect(counters.count == 5)
        #expect(counters[0] == RuleCounter(passed: 1, lastMatch: lab.now - 3 * nanosecondsPerSecond))
        #expect(counters[1] == RuleCounter(blocked: 1, lastMatch: lab.now - 3 * nanosecondsPerSecond))
        #expect(counters[2] == RuleCounter(rejected: 2, lastMatch: lab.now))
        #expect(counters[3] == RuleCounter(blocked: 1, lastMatch: lab.now))
        #expect(counters[4] == RuleCounter())
    }

    @Test func aPassRuleWhoseConnectionALimitRefusesCountsItBlocked() {
        let lab = Lab(family: .ipv4, policy: policy(.ipv4, [rule(.pass, port: 80, line: 1)]) {
            $0.limits.halfOpenPerSource = 1
        })
        #expect(lab.syn(from: peer, port: 2000) == .accept)
        #expect(lab.syn(from: peer, port: 2001) == .drop(.halfOpenLimit))
        #expect(lab.tracker.ruleCounters[0] == RuleCounter(passed: 1, blocked: 1, lastMatch: lab.now))
    }

    @Test func udpAndEchoFlowsAreCountedAndEchoRejectIsADrop() {
        let family = Family.ipv4
        let lab = Lab(family: family, policy: policy(family, [rule(.reject, port: 53, line: 1, .udp),
                                                             Rule(action: .reject, direction: .inbound, protocolName: .icmp,
                                                                  location: SeqwallCore.SourceLocation(file: "t", line: 2, column: 1))]))
        let datagram = Datagrams.udp(family, from: peer, to: family.server, sport: 40000, dport: 53).build()
        #expect(datagram.withUnsafeBytes { lab.tracker.process($0, wireLength: datagram.count, hook: .forward, now: lab.now) } == .reject)
        let request = Datagrams.echo(family, from: peer, to: family.server, reply: false, identifier: 7).build()
        #expect(request.withUnsafeBytes { lab.tracker.process($0, wireLength: request.count, hook: .forward, now: lab.now) } == .drop(.rule))
        #expect(lab.tracker.ruleCounters[0] == RuleCounter(rejected: 1, lastMatch: lab.now))
        #expect(lab.tracker.ruleCounters[1] == RuleCounter(blocked: 1, lastMatch: lab.now))
    }

    @Test func aReloadKeepsTheCountsOfTheRulesItKeepsWhereverTheyMove() {
        let lab = Lab(family: .ipv4, policy: policy(.ipv4, [rule(.pass, port: 80, line: 1), rule(.block, port: 81, line: 2)]))
        #expect(lab.syn(from: peer, port: 3000) == .accept)
        #expect(lab.syn(from: peer, port: 3001, serverPort: 81) == .drop(.rule))
        #expect(lab.syn(from: peer, port: 3002, serverPort: 81) == .drop(.rule))
        #expect(lab.syn(from: peer, port: 3003, serverPort: 99) == .drop(.rule))
        let before = lab.tracker.ruleCounters

        // Port 81's rule moves to the top, port 80's becomes a reject (a changed rule), a new
        // rule comes in; the defaults stay the defaults.
        lab.tracker.replacePolicy(policy(.ipv4, [rule(.block, port: 81, line: 1), rule(.pass, port: 443, line: 2),
                                                 rule(.reject, port: 80, line: 3)]))
        let after = lab.tracker.ruleCounters
        #expect(after.count == 5)
        #expect(after[0] == before[1])
        #expect(after[1] == RuleCounter())
        #expect(after[2] == RuleCounter())
        #expect(after[3] == before[2])
        #expect(after[3].blocked == 1)
        #expect(after[4] == before[3])
    }

    /// The daemon works the counters' plan out once, off the workers: applied by a tracker, it
    /// carries exactly what the tracker's own matching would; a plan made for other policies
    /// (another number of rules) is not trusted and the tracker matches the rules itself.
    @Test func aPlanMadeBeforehandCarriesTheSameCountsAndAStalePlanIsNotUsed() {
        let first = [rule(.pass, port: 80, line: 1), rule(.block, port: 81, line: 2)]
        let second = [rule(.block, port: 81, line: 1), rule(.pass, port: 443, line: 2), rule(.pass, port: 80, line: 3)]
        let lab = Lab(family: .ipv4, policy: policy(.ipv4, first))
        #expect(lab.syn(from: peer, port: 3000) == .accept)
        #expect(lab.syn(from: peer, port: 3001, serverPort: 81) == .drop(.rule))
        let before = lab.tracker.ruleCounters

        lab.tracker.replacePolicy(policy(.ipv4, second), carry: RuleCounterCarry(from: first, to: second))
        let planned = lab.tracker.ruleCounters
        #expect(planned[0] == before[1])
        #expect(planned[1] == RuleCounter())
        #expect(planned[2] == before[0])

        // A plan for a one-rule policy, handed to a tracker holding three rules.
        lab.tracker.replacePolicy(policy(.ipv4, first), carry: RuleCounterCarry(from: [first[0]], to: first))
        let afterStale = lab.tracker.ruleCounters
        #expect(afterStale[0] == before[0])
        #expect(afterStale[1] == before[1])
    }
}
