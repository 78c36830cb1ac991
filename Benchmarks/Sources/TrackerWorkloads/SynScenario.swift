import SeqwallCore
import SeqwallTestSupport

/// The rules and the new connections of one SYN-decision benchmark: each SYN is the first packet
/// of a new TCP connection, decided by the policy and, when passed, opened in the table.
///
/// - `fewRules`: a short, typical rule set and no table; the SYNs miss `<drop>` of `tableMiss`.
/// - `tableMiss`, `tableHit`: `block in tcp from <drop>` (`BlockList`, 1M IPv4 + 200k IPv6
///   prefixes) in front of the same rules; SYNs from sources outside the table (passed by the
///   rules after it) or inside it (blocked).
/// - `fewRulesBlock`: what `tableHit` is compared with: the same rules behind a first rule that
///   blocks every source by a plain prefix, for the same SYNs.
/// - `rules(shape, count)`: `count` rules of one shape, for the rule index (RuleIndex).
public enum SynScenario: Equatable, CustomStringConvertible {
    case fewRules
    case fewRulesBlock
    case tableMiss
    case tableHit
    case rules(RuleShape, Int)

    /// The kinds of large rule sets the index must handle.
    public enum RuleShape: String, CaseIterable, Sendable {
        /// `pass in tcp to port P`, each rule its own port: what the port index is made for.
        case ports
        /// `pass in tcp from S to port 443`, each rule its own source host, all on one port:
        /// per-client access to one service, where ports tell the rules nothing.
        case sources
        /// `pass in tcp to D port 80`, each rule its own server, all on one port.
        case destinations
        /// A quarter each of `block in tcp from S/24`, `pass in tcp from S to port 22`,
        /// `pass in tcp to D port 443` and `pass in tcp to port P`.
        case mixed
    }

    public var description: String {
        switch self {
        case .fewRules: return "few-rules"
        case .fewRulesBlock: return "few-rules-block"
        case .tableMiss: return "table-miss"
        case .tableHit: return "table-hit"
        case .rules(let shape, let count): return "rules-\(shape.rawValue)-\(count)"
        }
    }

    /// `few-rules`, `few-rules-block`, `table-miss`, `table-hit`, `rules-SHAPE-COUNT`.
    public init?(_ text: String) {
        switch text {
        case "few-rules": self = .fewRules
        case "few-rules-block": self = .fewRulesBlock
        case "table-miss": self = .tableMiss
        case "table-hit": self = .tableHit
        default:
            let parts = text.split(separator: "-")
            guard parts.count == 3, parts[0] == "rules", let shape = RuleShape(rawValue: String(parts[1])),
                  let count = Int(parts[2]), count > 0 else { return nil }
            self = .rules(shape, count)
        }
    }

    /// The benchmark's block list, built once per process (a second or two at 1.2M prefixes),
    /// its lookup arrays advised onto huge pages as the daemon's tables are.
    public static let blockList = BlockList(ipv4: 1_000_000, ipv6: 200_000)

    /// The servers the SYNs go to are inside; sources are drawn outside these networks.
    static let inside = [IPNetwork(address: IPAddress(ipv4: 0x0A00_0000), prefixLength: 8),
                         IPNetwork(address: IPAddress(high: 0xFD00_0000_0000_0000, low: 0), prefixLength: 8)]
    static let location = SourceLocation(file: "bench.rules", line: 1, column: 1)

    static func server(_ index: Int, ipv4: Bool) -> IPAddress {
        ipv4 ? IPAddress(ipv4: 0x0A00_0000 | UInt32(index & 0xFF_FFFF))
            : IPAddress(high: 0xFD00_0000_0000_0000, low: UInt64(index))
    }

    /// The rule set of `fewRules`: block telnet and a documentation network, pass the web to
    /// anyone and SSH to one network.
    static var fewRuleSet: [Rule] {
        [
            Rule(action: .block, direction: .inbound, ports: [PortRange(23)], location: location),
            Rule(action: .block, direction: .inbound,
                 from: [IPNetwork(address: IPAddress(ipv4: 0xC000_0200), prefixLength: 24),
                        IPNetwork(address: IPAddress(high: 0x2001_0DB8_DEAD_0000, low: 0), prefixLength: 48)],
                 location: location),
            Rule(action: .pass, direction: .inbound, ports: [PortRange(80), PortRange(443)], location: location),
            Rule(action: .pass, direction: .inbound,
                 from: [IPNetwork(address: IPAddress(ipv4: 0xC633_6400), prefixLength: 24),
                        IPNetwork(address: IPAddress(high: 0x2001_0DB8_0001_0000, low: 0), prefixLength: 64)],
                 ports: [PortRange(22)], location: location),
        ]
    }

    /// The policy, and `count` SYNs of `family` as (source, destination, destination port).
    public func build(_ family: Family, count: Int) -> (Policy, [(IPAddress, IPAddress, UInt16)]) {
        var policy = Policy()
        policy.inside = SynScenario.inside
        policy.defaultInbound = .block
        let ipv4 = family == .ipv4
        var generator = SplitMix64(seed: 0x5_1A7 ^ UInt64(ipv4 ? 4 : 6))
        let list = SynScenario.blockList
        func servers(port: UInt16) -> [(IPAddress, IPAddress, UInt16)] {
            list.addresses(count, ipv4: ipv4, hit: self == .tableHit, avoiding: SynScenario.inside, seed: ipv4 ? 4 : 6)
                .enumerated().map { ($0.element, SynScenario.server($0.offset % 64, ipv4: ipv4), port) }
        }
        switch self {
        case .fewRules:
            policy.rules = SynScenario.fewRuleSet
            return (policy, servers(port: 443))
        case .fewRulesBlock:
            policy.rules = [Rule(action: .block, direction: .inbound,
                                 from: [IPNetwork(address: IPAddress(ipv4: 0), prefixLength: 0),
                                        IPNetwork(address: IPAddress(high: 0, low: 0), prefixLength: 0)],
                                 location: SynScenario.location)] + SynScenario.fewRuleSet
            return (policy, SynScenario.tableHit.build(family, count: count).1)
        case .tableMiss, .tableHit:
            policy.tables = [list.table]
            policy.rules = [Rule(action: .block, direction: .inbound, fromTables: [TableReference(name: "drop", index: 0)],
                                 location: SynScenario.location)] + SynScenario.fewRuleSet
            return (policy, servers(port: 443))
        case .rules(let shape, let ruleCount):
            func randomSource() -> IPAddress {
                while true {
                    let address = ipv4 ? IPAddress(ipv4: UInt32(truncatingIfNeeded: generator.next()))
                        : IPAddress(high: 0x2000_0000_0000_0000 | generator.next() >> 3, low: generator.next())
                    if !SynScenario.inside.contains(where: { $0.contains(address) }) { return address }
                }
            }
            let host = ipv4 ? 32 : 128
            var sources: [IPNetwork] = []
            var destinations: [IPAddress] = []
            policy.rules = (0..<ruleCount).map { number in
                let form = shape == .mixed ? [RuleShape.sources, .destinations, .ports, .ports][number % 4] : shape
                let port = UInt16(1024 + number)
                switch form {
                case .ports:
                    return Rule(action: .pass, direction: .inbound, ports: [PortRange(port)], location: SynScenario.location)
                case .sources:
                    let wide = shape == .mixed && number % 8 == 0
                    let source = IPNetwork(address: randomSource(), prefixLength: wide ? host - 8 : host)
                    sources.append(source)
                    return Rule(action: wide ? .block : .pass, direction: .inbound, from: [source],
                                ports: wide ? [] : [PortRange(shape == .mixed ? 22 : 443)], location: SynScenario.location)
                case .destinations, .mixed:
                    let server = SynScenario.server(number, ipv4: ipv4)
                    destinations.append(server)
                    return Rule(action: .pass, direction: .inbound, to: [IPNetwork(address: server, prefixLength: host)],
                                ports: [PortRange(shape == .mixed ? 443 : 80)], location: SynScenario.location)
                }
            }
            // Half the SYNs for what some rule lets in, half for what none does (the default
            // decides after every candidate was tried: the longest walk).
            let syns: [(IPAddress, IPAddress, UInt16)] = (0..<count).map { index in
                let matching = index % 2 == 0
                let pick = Int(generator.next() % UInt64(ruleCount))
                let form = shape == .mixed ? [RuleShape.sources, .destinations, .ports, .ports][pick % 4] : shape
                switch form {
                case .ports:
                    let port = UInt16(1024 + (matching ? pick : ruleCount + pick) % 64_000)
                    return (randomSource(), SynScenario.server(pick, ipv4: ipv4), port)
                case .sources:
                    let source = sources.isEmpty ? randomSource() : sources[pick % sources.count].address
                    return (matching ? source : randomSource(), SynScenario.server(pick, ipv4: ipv4),
                            shape == .mixed ? 22 : 443)
                case .destinations, .mixed:
                    let server = destinations[pick % destinations.count]
                    return (randomSource(), matching ? server : SynScenario.server(ruleCount + pick, ipv4: ipv4),
                            shape == .mixed ? 443 : 80)
                }
            }
            return (policy, syns)
        }
    }
}
