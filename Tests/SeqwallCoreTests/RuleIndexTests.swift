@testable import SeqwallCore
import SeqwallTestSupport
import Testing

/// First match by definition: every rule in order.
private func linearDecision(_ policy: Policy, _ protocolName: TrackedProtocol, _ direction: Direction,
                            _ source: IPAddress, _ destination: IPAddress, _ port: UInt16) -> (RuleAction, Int?) {
    for (index, rule) in policy.rules.enumerated()
    where rule.matches(protocolName: protocolName, direction: direction, source: source, destination: destination,
                       destinationPort: port, tables: policy.tables) {
        return (rule.action, index)
    }
    return (direction == .inbound ? policy.defaultInbound : policy.defaultOutbound, nil)
}

private struct RandomRules {
    var random: SplitMix64
    let location = SourceLocation(file: "random.rules", line: 1, column: 1)

    mutating func pick<T>(_ choices: [T]) -> T { choices[Int(random.next() % UInt64(choices.count))] }

    mutating func port() -> UInt16 {
        random.next() % 3 == 0 ? UInt16(truncatingIfNeeded: random.next()) : pick([0, 1, 22, 23, 25, 53, 80, 443, 8000, 8080, 65535])
    }

    mutating func address() -> IPAddress {
        random.next() % 2 == 0 ? IPAddress(ipv4: 0xC633_6400 | UInt32(random.next() % 512))
            : IPAddress(high: 0x2001_0DB8_0000_0000 | random.next() % 2, low: random.next() % 512)
    }

    mutating func networks() -> [IPNetwork] {
        guard random.next() % 3 == 0 else { return [] }
        return (0...(random.next() % 2)).map { _ in
            let address = address()
            return IPNetwork(address: address, prefixLength: (address.isIPv4 ? 23 : 119) + Int(random.next() % 10))
        }
    }

    mutating func ports() -> [PortRange] {
        switch random.next() % 4 {
        case 0: return []
        case 1:
            let lower = max(1, port())
            return [PortRange(lower, max(lower, lower &+ UInt16(random.next() % 3000)))]
        default: return (0...(random.next() % 3)).map { _ in PortRange(max(1, port())) }
        }
    }

    mutating func policy(ruleCount: Int, tableCount: Int) -> Policy {
        var policy = Policy()
        policy.defaultInbound = pick([.block, .pass, .reject])
        policy.defaultOutbound = pick([.block, .pass])
        policy.tables = (0..<tableCount).map { number in
            AddressTable(name: "t\(number)", entries: (0..<(random.next() % 40)).map { _ in
                let address = address()
                return TableEntry(IPNetwork(address: address, prefixLength: (address.isIPv4 ? 22 : 118) + Int(random.next() % 11)),
                                  negated: random.next() % 4 == 0)
            })
        }
        func references(_ draw: inout RandomRules) -> [TableReference] {
            guard tableCount > 0, draw.random.next() % 3 == 0 else { return [] }
            let number = Int(draw.random.next() % UInt64(tableCount))
            return [TableReference(name: "t\(number)", index: number, negated: draw.random.next() % 3 == 0)]
        }
        policy.rules = (0..<ruleCount).map { _ in
            let protocolName = pick(TrackedProtocol.allCases)
            return Rule(action: pick([.pass, .block, .reject]), direction: pick([.inbound, .outbound]),
                        protocolName: protocolName, from: networks(), to: networks(),
                        fromTables: references(&self), toTables: references(&self),
                        ports: protocolName.hasPorts ? ports() : [], location: location)
        }
        return policy
    }
}

@Suite("Rule index")
struct RuleIndexTests {
    @Test("decides as first match over every rule does", arguments: [11, 12, 13, 14, 15, 16] as [UInt64])
    func randomAgainstLinear(seed: UInt64) {
        var draw = RandomRules(random: SplitMix64(seed: seed))
        for ruleCount in [0, 1, 3, 10, 60, 400] {
            let policy = draw.policy(ruleCount: ruleCount, tableCount: Int(draw.random.next() % 3))
            for _ in 0..<1000 {
                let protocolName = draw.pick(TrackedProtocol.allCases)
                let direction = draw.pick([Direction.inbound, .outbound])
                let source = draw.address(), destination = draw.address()
                let port = draw.port()
                let decided = policy.decide(protocolName: protocolName, direction: direction, source: source,
                                            destination: destination, destinationPort: port)
                let expected = linearDecision(policy, protocolName, direction, source, destination, port)
                #expect(decided.action == expected.0 && decided.ruleIndex == expected.1,
                        "seed \(seed), \(ruleCount) rules, \(protocolName) \(direction) \(source) -> \(destination):\(port)")
            }
        }
    }

    @Test("rules told apart by their addresses decide as first match", arguments: [21, 22, 23] as [UInt64])
    func addressShapes(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let location = SourceLocation(file: "addresses.rules", line: 1, column: 1)
        // Hosts and networks of 198.51.100.0/22 and 2001:db8::/118, so that flows hit them often.
        func address() -> IPAddress {
            random.next() % 2 == 0 ? IPAddress(ipv4: 0xC633_6400 | UInt32(random.next() % 1024))
                : IPAddress(high: 0x2001_0DB8_0000_0000, low: random.next() % 1024)
        }
        func network() -> IPNetwork {
            let address = address()
            let lengths = address.isIPv4 ? [22, 24, 30, 32, 32, 32] : [118, 120, 126, 128, 128, 128]
            return IPNetwork(address: address, prefixLength: lengths[Int(random.next() % 6)])
        }
        var policy = Policy()
        policy.defaultInbound = .block
        // Per-host rules on one port, per-server rules, one wide rule over many narrow ones, a
        // crowd of rules on one network told apart by port, and rules without addresses.
        policy.rules = (0..<3000).map { number in
            let action: RuleAction = random.next() % 3 == 0 ? .block : .pass
            switch number % 5 {
            case 0: return Rule(action: action, direction: .inbound, from: [network()], ports: [PortRange(443)], location: location)
            case 1: return Rule(action: action, direction: .inbound, to: [network(), network()], ports: [PortRange(80)], location: location)
            case 2: return Rule(action: action, direction: .inbound, from: [network()], to: [network()], location: location)
            case 3:
                let crowd = IPNetwork(address: IPAddress(ipv4: 0xC633_6400), prefixLength: 22)
                return Rule(action: action, direction: .inbound, from: [crowd], ports: [PortRange(UInt16(1000 + number))],
                            location: location)
            default: return Rule(action: action, direction: .inbound, ports: [PortRange(UInt16(random.next() % 2000))],
                                 location: location)
            }
        }
        for _ in 0..<5_000 {
            let source = address(), destination = address()
            let port = [80, 443, UInt16(random.next() % 4000)][Int(random.next() % 3)]
            let decided = policy.decide(direction: .inbound, source: source, destination: destination, destinationPort: port)
            let expected = linearDecision(policy, .tcp, .inbound, source, destination, port)
            #expect(decided.action == expected.0 && decided.ruleIndex == expected.1,
                    "seed \(seed): \(source) -> \(destination):\(port)")
        }
    }

    @Test("rules of one family, many enough for the address directory, decide as first match",
          arguments: [(31, true), (32, false), (33, true), (34, false)] as [(UInt64, Bool)])
    func addressDirectory(seed: UInt64, ipv4: Bool) {
        var random = SplitMix64(seed: seed)
        let location = SourceLocation(file: "directory.rules", line: 1, column: 1)
        // Hosts and small networks spread over 198.51.100.0/22 and 203.0.113.0/24 (or
        // 2001:db8::/32's two ends), so that an interval's neighbours differ in high and low
        // bits alike, and flows from below, between and above them.
        func address() -> IPAddress {
            let spot = random.next()
            if ipv4 {
                let base: UInt32 = spot % 2 == 0 ? 0xC633_6400 : 0xCB00_7100
                return IPAddress(ipv4: base | UInt32(random.next() % (spot % 2 == 0 ? 1024 : 256)))
            }
            return IPAddress(high: 0x2001_0DB8_0000_0000 | (spot % 2 == 0 ? 0 : 0xFFFF_FFFF),
                             low: spot % 3 == 0 ? random.next() : random.next() % 4096)
        }
        func outside() -> IPAddress {
            ipv4 ? IPAddress(ipv4: UInt32(truncatingIfNeeded: random.next()))
                : IPAddress(high: random.next(), low: random.next())
        }
        func network() -> IPNetwork {
            let lengths = ipv4 ? [26, 30, 32, 32, 32] : [116, 124, 128, 128, 128, 64]
            return IPNetwork(address: address(), prefixLength: lengths[Int(random.next() % UInt64(lengths.count))])
        }
        var policy = Policy()
        policy.defaultInbound = .block
        policy.rules = (0..<2000).map { number in
            let action: RuleAction = random.next() % 3 == 0 ? .block : .pass
            switch number % 3 {
            case 0: return Rule(action: action, direction: .inbound, from: [network()], ports: [PortRange(443)], location: location)
            case 1: return Rule(action: action, direction: .inbound, to: [network()], ports: [PortRange(80)], location: location)
            default: return Rule(action: action, direction: .inbound, from: [network(), network()], location: location)
            }
        }
        for number in 0..<8_000 {
            let source = number % 4 == 0 ? outside() : address()
            let destination = number % 5 == 0 ? outside() : address()
            let port: UInt16 = [80, 443, 22][Int(random.next() % 3)]
            let decided = policy.decide(direction: .inbound, source: source, destination: destination, destinationPort: port)
            let expected = linearDecision(policy, .tcp, .inbound, source, destination, port)
            #expect(decided.action == expected.0 && decided.ruleIndex == expected.1,
                    "seed \(seed): \(source) -> \(destination):\(port)")
        }
    }

    @Test("wide overlapping port ranges still decide as first match")
    func wideRanges() {
        var policy = Policy()
        let location = SourceLocation(file: "wide.rules", line: 1, column: 1)
        policy.rules = (0..<300).map { (number: Int) -> Rule in
            let action: RuleAction = number % 2 == 0 ? .pass : .block
            let source = IPNetwork(address: IPAddress(ipv4: 0xC633_6400 + UInt32(number)), prefixLength: 32)
            let ports = PortRange(UInt16(1 + number), 65535)
            return Rule(action: action, direction: .inbound, from: [source], ports: [ports], location: location)
        }
        for number in 0..<300 {
            for port: UInt16 in [0, 1, UInt16(number), UInt16(number + 1), UInt16(number + 2), 65535] {
                let source = IPAddress(ipv4: 0xC633_6400 + UInt32(number))
                let decided = policy.decide(direction: .inbound, source: source, destination: ip("203.0.113.1"),
                                            destinationPort: port)
                let expected = linearDecision(policy, .tcp, .inbound, source, ip("203.0.113.1"), port)
                #expect(decided.action == expected.0 && decided.ruleIndex == expected.1)
            }
        }
    }

    @Test("many port rules, lists of none, one and several held in the port table, decide as first match",
          arguments: [51, 52, 53] as [UInt64])
    func portTable(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let location = SourceLocation(file: "ports.rules", line: 1, column: 1)
        // Ports from 1000 to 1999: most rules on a port of their own, some sharing one with
        // another, some ranges over several, so that segments list none, one or several rules;
        // rules of both protocols and directions, a few without ports in between.
        var policy = Policy()
        policy.defaultInbound = .block
        policy.rules = (0..<1500).map { number in
            let action: RuleAction = random.next() % 3 == 0 ? .block : .pass
            let protocolName: TrackedProtocol = random.next() % 4 == 0 ? .udp : .tcp
            let direction: Direction = random.next() % 5 == 0 ? .outbound : .inbound
            let lower = UInt16(1000 + random.next() % 1000)
            let ports: [PortRange]
            switch number % 10 {
            case 0: ports = [PortRange(lower, lower + UInt16(random.next() % 20))]
            case 1: ports = [PortRange(lower), PortRange(UInt16(1000 + random.next() % 1000))]
            case 2 where number % 50 == 2: ports = []
            default: ports = [PortRange(lower)]
            }
            return Rule(action: action, direction: direction, protocolName: protocolName, ports: ports, location: location)
        }
        for _ in 0..<8_000 {
            let protocolName: TrackedProtocol = random.next() % 4 == 0 ? .udp : .tcp
            let direction: Direction = random.next() % 5 == 0 ? .outbound : .inbound
            let port = UInt16(random.next() % 3 == 0 ? random.next() % 65536 : 990 + random.next() % 1030)
            let source = IPAddress(ipv4: 0xC633_6400 | UInt32(random.next() % 256))
            let decided = policy.decide(protocolName: protocolName, direction: direction, source: source,
                                        destination: ip("203.0.113.1"), destinationPort: port)
            let expected = linearDecision(policy, protocolName, direction, source, ip("203.0.113.1"), port)
            #expect(decided.action == expected.0 && decided.ruleIndex == expected.1,
                    "seed \(seed): \(protocolName) \(direction) port \(port)")
        }
    }

    @Test("a rule's match record answers as the whole rule", arguments: [41, 42, 43, 44] as [UInt64])
    func matchRecord(seed: UInt64) {
        var draw = RandomRules(random: SplitMix64(seed: seed))
        // Besides the draw's networks, wide ones whose edges matter: any address of a family,
        // the IPv6 networks that cover the IPv4-mapped addresses (which never match an IPv4
        // address: IPNetwork.contains), and host networks of either family.
        func network(_ draw: inout RandomRules) -> IPNetwork {
            switch draw.random.next() % 6 {
            case 0: return IPNetwork(address: IPAddress(ipv4: 0), prefixLength: Int(draw.random.next() % 3))
            case 1: return IPNetwork(address: IPAddress(high: 0, low: 0), prefixLength: draw.pick([0, 64, 80, 96]))
            case 2: return IPNetwork(address: IPAddress(high: 0, low: 0xFFFE_0000_0000), prefixLength: draw.pick([80, 95]))
            case 3:
                let address = draw.address()
                return IPNetwork(address: address, prefixLength: address.isIPv4 ? 32 : 128)
            default:
                let address = draw.address()
                let length = Int(draw.random.next() % (address.isIPv4 ? 33 : 129))
                return IPNetwork(address: address, prefixLength: length)
            }
        }
        let tables = draw.policy(ruleCount: 0, tableCount: 2).tables
        for _ in 0..<3000 {
            var networks: [[IPNetwork]] = []
            var references: [[TableReference]] = []
            for _ in 0..<2 {
                let count = [0, 1, 1, 1, 2][Int(draw.random.next() % 5)]
                networks.append((0..<count).map { _ in network(&draw) })
                references.append(draw.random.next() % 4 == 0
                    ? [TableReference(name: "t0", index: Int(draw.random.next() % 3), negated: draw.random.next() % 2 == 0)] : [])
            }
            let protocolName = draw.pick(TrackedProtocol.allCases)
            let rule = Rule(action: draw.pick([.pass, .block, .reject]), direction: draw.pick([.inbound, .outbound]),
                            protocolName: protocolName,
                            from: networks[0], to: networks[1], fromTables: references[0], toTables: references[1],
                            ports: protocolName.hasPorts ? draw.ports() : [], location: draw.location)
            let record = RuleMatchRecord(rule)
            #expect(record.action == rule.action)
            let inline = rule.from.count <= 1 && rule.to.count <= 1 && rule.fromTables.isEmpty && rule.toTables.isEmpty
                && rule.ports.count <= 2
            for _ in 0..<40 {
                let flowProtocol = draw.random.next() % 2 == 0 ? rule.protocolName : draw.pick(TrackedProtocol.allCases)
                let direction = draw.random.next() % 2 == 0 ? rule.direction : draw.pick([.inbound, .outbound])
                // Often an address of one of the rule's networks, else anywhere in the draw's ranges.
                func address(_ networks: [IPNetwork], _ draw: inout RandomRules) -> IPAddress {
                    guard let network = networks.first, draw.random.next() % 2 == 0 else { return draw.address() }
                    let (first, last) = network.addressRange
                    return draw.pick([first, last, IPAddress(high: first.high, low: first.low | (draw.random.next() & last.low))])
                }
                let source = address(rule.from, &draw), destination = address(rule.to, &draw)
                let port = draw.random.next() % 2 == 0 ? rule.ports.first?.upper ?? draw.port() : draw.port()
                let matches = rule.matches(protocolName: flowProtocol, direction: direction, source: source,
                                           destination: destination, destinationPort: port, tables: tables)
                let answer = record.answer(bucket: RuleIndex.bucket(direction, flowProtocol), source: source,
                                           sourceIsIPv4: source.isIPv4, destination: destination,
                                           destinationIsIPv4: destination.isIPv4, destinationPort: port)
                switch answer {
                case .fails: #expect(!matches, "\(rule) \(flowProtocol) \(direction) \(source) -> \(destination):\(port)")
                case .passes: #expect(matches, "\(rule) \(flowProtocol) \(direction) \(source) -> \(destination):\(port)")
                case .checkRule: #expect(!inline, "an inline rule sent to its full check: \(rule)")
                }
                // With the flow's table answers, as the batch warm-up finds them (TableAnswers):
                // a list of one table reference alone is then settled by the record too.
                var answers = TableAnswers(source: source, destination: destination)
                for (position, table) in tables.enumerated() {
                    answers.record(table.contains(source), position: position, bySource: true)
                    answers.record(table.contains(destination), position: position, bySource: false)
                }
                let answered = withUnsafePointer(to: answers) {
                    record.answer(bucket: RuleIndex.bucket(direction, flowProtocol), source: source,
                                  sourceIsIPv4: source.isIPv4, destination: destination,
                                  destinationIsIPv4: destination.isIPv4, destinationPort: port, answers: $0)
                }
                func heldInline(_ networks: [IPNetwork], _ references: [TableReference]) -> Bool {
                    references.isEmpty ? networks.count <= 1 : networks.isEmpty && references.count == 1
                        && references[0].index < tables.count
                }
                let inlineWithAnswers = heldInline(rule.from, rule.fromTables) && heldInline(rule.to, rule.toTables)
                    && rule.ports.count <= 2
                switch answered {
                case .fails: #expect(!matches, "with answers: \(rule) \(direction) \(source) -> \(destination):\(port)")
                case .passes: #expect(matches, "with answers: \(rule) \(direction) \(source) -> \(destination):\(port)")
                case .checkRule: #expect(!inlineWithAnswers, "a rule answered inline sent to its full check: \(rule)")
                }
            }
        }
    }
}
