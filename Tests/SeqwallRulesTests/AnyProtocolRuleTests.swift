import SeqwallCore
import SeqwallTestSupport
import Testing

@testable import SeqwallRules

/// Rules written without a protocol (`block in from <drop>`), as pf.conf allows.
@Suite("Rules without a protocol")
struct AnyProtocolRuleTests {
    static let text = """
        table <drop> { 198.51.100.0/24, 2001:db8:bad::/48 }
        block in from <drop>
        reject in from 192.0.2.7
        pass in to port 53
        pass in from 2001:db8::/32
        default in block
        """

    @Test("a line becomes a rule per protocol it can apply to, each at the line")
    func expansion() throws {
        let policy = try RuleFile.parse(text: AnyProtocolRuleTests.text, file: "t.rules")
        let written = policy.rules.map { "\($0.location.line) \($0.action) \($0.protocolName)" }
        #expect(written == [
            "2 block tcp", "2 block udp", "2 block icmp", "2 block icmp6",
            "3 reject tcp", "3 reject udp", "3 block icmp",
            "4 pass tcp", "4 pass udp",
            "5 pass tcp", "5 pass udp", "5 pass icmp6",
        ])
        #expect(policy.rules.allSatisfy { $0.anyProtocol })
        // Only the lines without ports decide the protocols seqwall does not track.
        #expect(policy.untrackedRules == [0, 4, 9])
        // `rules show` names each rule's protocol; the canonical text prints each line once.
        #expect(RuleFile.canonicalText(of: policy.rules[1]) == "block in udp from <drop>")
        #expect(RuleFile.canonicalText(of: policy.rules[6]) == "block in icmp echo from 192.0.2.7")
        let canonical = RuleFile.canonicalText(of: policy)
        #expect(canonical.contains("\nblock in from <drop>\nreject in from 192.0.2.7\npass in to port 53\npass in from 2001:db8::/32\n"))
        #expect(withoutLocations(try RuleFile.parse(text: canonical, file: "c.rules")) == withoutLocations(policy))
    }

    @Test("every protocol from a listed source is decided by the line, others by the rules below")
    func decisions() throws {
        let policy = try RuleFile.parse(text: AnyProtocolRuleTests.text, file: "t.rules")
        func decide(_ protocolName: TrackedProtocol, _ source: String, _ destination: String, port: UInt16 = 53) -> RuleAction {
            policy.decide(protocolName: protocolName, direction: .inbound, source: ip(source), destination: ip(destination),
                          destinationPort: protocolName.hasPorts ? port : 0).action
        }
        for protocolName in [TrackedProtocol.tcp, .udp] {
            #expect(decide(protocolName, "198.51.100.9", "203.0.113.1") == .block)
            #expect(decide(protocolName, "2001:db8:bad::9", "2001:db8:1::1") == .block)
            #expect(decide(protocolName, "192.0.2.7", "203.0.113.1") == .reject)
            #expect(decide(protocolName, "192.0.2.8", "203.0.113.1") == .pass)
            #expect(decide(protocolName, "192.0.2.8", "203.0.113.1", port: 80) == .block)
        }
        #expect(decide(.icmp, "198.51.100.9", "203.0.113.1") == .block)
        #expect(decide(.icmp6, "2001:db8:bad::9", "2001:db8:1::1") == .block)
        #expect(decide(.icmp, "192.0.2.7", "203.0.113.1") == .block)
        #expect(decide(.icmp6, "2001:db8:5::5", "2001:db8:1::1") == .pass)
        // No port-53 rule for ICMP, and the IPv6-only line has no icmp echo rule: the default.
        #expect(policy.decide(protocolName: .icmp, direction: .inbound, source: ip("192.0.2.8"),
                              destination: ip("203.0.113.1"), destinationPort: 0).ruleIndex == nil)
        #expect(policy.decideUntracked(direction: .inbound, source: ip("198.51.100.9"), destination: ip("203.0.113.1"))
                == (.block, 0))
        #expect(policy.decideUntracked(direction: .inbound, source: ip("192.0.2.7"), destination: ip("203.0.113.1"))
                == (.reject, 4))
        #expect(policy.decideUntracked(direction: .inbound, source: ip("2001:db8:5::5"), destination: ip("2001:db8:1::1"))
                == (.pass, 9))
        #expect(policy.decideUntracked(direction: .inbound, source: ip("192.0.2.8"), destination: ip("203.0.113.1"))
                == (.block, nil))
    }

    @Test("service names stand for their ports, in lists and ranges, printed as numbers")
    func serviceNames() throws {
        let policy = try RuleFile.parse(text: "pass in tcp to port ssh, HTTPS, ftp-data, domain, 9000-git\n", file: "t.rules")
        #expect(policy.rules[0].ports == [PortRange(20), PortRange(22), PortRange(53), PortRange(443), PortRange(9000, 9418)])
        #expect(RuleFile.canonicalText(of: policy.rules[0]) == "pass in tcp to port 20, 22, 53, 443, 9000-9418")
        #expect(ServiceName.ports.values.allSatisfy { (1...65535).contains($0) })
    }
}
