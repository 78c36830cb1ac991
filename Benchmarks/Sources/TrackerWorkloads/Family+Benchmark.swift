import SeqwallCore
import SeqwallTestSupport

/// The benchmark's many clients and servers, in the documentation ranges SeqwallTestSupport's
/// `Family` uses (docs/design.md, Test lab addresses): clients outside (198.51.100.0/24,
/// 2001:db8:1::/64), servers inside (203.0.113.0/24, 2001:db8:2::/64).
extension Family {
    /// Client number `index` of up to 16 million: IPv4 spreads them over 198.51.100.1-254 and
    /// source ports 1024-65535, IPv6 over 2001:db8:1::/64 with ports 1024-65535.
    func client(_ index: Int) -> (address: IPAddress, port: UInt16) {
        let port = UInt16(1024 + index % 64_512)
        let host = index / 64_512
        switch self {
        case .ipv4:
            precondition(host < 254, "more clients than 198.51.100.0/24 x 64512 ports")
            return (IPAddress(ipv4: 0xC633_6401 + UInt32(host)), port)
        case .ipv6:
            return (IPAddress(high: 0x2001_0DB8_0001_0000, low: 0x10 + UInt64(host)), port)
        }
    }

    /// One of 16 servers on port 443.
    func server(_ index: Int) -> (address: IPAddress, port: UInt16) {
        switch self {
        case .ipv4: return (IPAddress(ipv4: 0xCB00_710A + UInt32(index % 16)), 443)
        case .ipv6: return (IPAddress(high: 0x2001_0DB8_0002_0000, low: 0x10 + UInt64(index % 16)), 443)
        }
    }

    /// Outside clients may open connections to port 443 inside; everything else inbound is
    /// blocked (a short, typical rule set: new connections are not what this measures).
    func policy(states: Int) -> Policy {
        var policy = Policy()
        policy.inside = [Family.ipv4.insideNetwork, Family.ipv6.insideNetwork]
        policy.defaultInbound = .block
        policy.defaultOutbound = .pass
        policy.rules = [
            Rule(action: .block, direction: .inbound, ports: [PortRange(23)],
                 location: SourceLocation(file: "bench.rules", line: 1, column: 1)),
            Rule(action: .pass, direction: .inbound, ports: [PortRange(80), PortRange(443)],
                 location: SourceLocation(file: "bench.rules", line: 2, column: 1)),
        ]
        policy.limits.states = states
        return policy
    }
}
