// Address tables and the rule index at scale, without the benchmark harness:
// `table-profile [directory]` prints, for 10k, 100k and 1.2M prefixes, the time to build a table,
// the bytes per prefix, and lookups per second; then the time of one rule decision with 10 and
// with 10,000 rules (indexed and, as a reference, first match over every rule); then, when a
// directory is given, the time to load a rule file whose table file holds 1.2M prefixes.
import Foundation
import SeqwallCore
import SeqwallRules

/// A fixed sequence (Knuth's MMIX LCG, high bits), so every run measures the same prefixes.
struct Sequence {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state ^ (state >> 29)
    }
}

func seconds(_ body: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

/// Block-list shaped prefixes: IPv4 mostly /24 and /32, some shorter; IPv6 /32 to /64 and /128;
/// one in fifty an exception.
func entries(ipv4: Int, ipv6: Int, _ sequence: inout Sequence) -> [TableEntry] {
    var result: [TableEntry] = []
    result.reserveCapacity(ipv4 + ipv6)
    for _ in 0..<ipv4 {
        let lengths = [16, 20, 22, 24, 24, 24, 24, 32, 32, 32]
        let length = lengths[Int(sequence.next() % 10)]
        let network = IPNetwork(address: IPAddress(ipv4: UInt32(truncatingIfNeeded: sequence.next())), prefixLength: length)
        result.append(TableEntry(network, negated: sequence.next() % 50 == 0))
    }
    for _ in 0..<ipv6 {
        let lengths = [32, 40, 48, 48, 56, 64, 64, 128]
        let length = lengths[Int(sequence.next() % 8)]
        let address = IPAddress(high: 0x2000_0000_0000_0000 | sequence.next() >> 3, low: sequence.next())
        result.append(TableEntry(IPNetwork(address: address, prefixLength: length), negated: sequence.next() % 50 == 0))
    }
    return result
}

var sequence = Sequence(state: 0x7AB1E5)
// `table-profile rules N`: only the rule decisions with N rules (for callgrind, collecting
// inside Policy.decide).
if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "rules", let count = Int(CommandLine.arguments[2]) {
    let (indexed, _) = ruleDecisions(count: count, &sequence, linear: false)
    print(String(format: "%d rules: %.1f ns a decision", count, indexed * 1e9))
    exit(0)
}
print("prefixes    build_s  lookup_bytes/prefix  entry_bytes/prefix  lookups/s(ipv4)  lookups/s(ipv6)  in_table")
for (ipv4, ipv6) in [(8_000, 2_000), (80_000, 20_000), (1_000_000, 200_000)] {
    let list = entries(ipv4: ipv4, ipv6: ipv6, &sequence)
    var table: AddressTable!
    let build = seconds { table = AddressTable(name: "drop", entries: list) }
    let count = Double(ipv4 + ipv6)
    // Addresses: half inside listed prefixes, half anywhere.
    var probes4: [IPAddress] = []
    var probes6: [IPAddress] = []
    for index in 0..<1_000_000 {
        let entry = list[Int(sequence.next() % UInt64(list.count))]
        if index % 2 == 0 {
            probes4.append(IPAddress(ipv4: UInt32(truncatingIfNeeded: sequence.next())))
            probes6.append(IPAddress(high: 0x2000_0000_0000_0000 | sequence.next() >> 3, low: sequence.next()))
        } else if entry.network.isIPv4 {
            probes4.append(IPAddress(ipv4: entry.network.address.ipv4Value | UInt32(truncatingIfNeeded: sequence.next()) >> UInt32(entry.network.prefixLength)))
            probes6.append(IPAddress(high: 0x2000_0000_0000_0000 | sequence.next() >> 3, low: sequence.next()))
        } else {
            probes4.append(IPAddress(ipv4: UInt32(truncatingIfNeeded: sequence.next())))
            probes6.append(IPAddress(high: entry.network.address.high, low: entry.network.address.low | sequence.next() >> 1))
        }
    }
    var hits = 0
    let rounds = 10
    let time4 = seconds { for _ in 0..<rounds { for address in probes4 where table.contains(address) { hits += 1 } } }
    let time6 = seconds { for _ in 0..<rounds { for address in probes6 where table.contains(address) { hits += 1 } } }
    let lookups = Double(rounds * probes4.count)
    let entryBytes = Double(MemoryLayout<TableEntry>.stride * table.entries.count) / count
    print(String(format: "%8d  %8.3f  %19.1f  %18.1f  %15.0f  %15.0f  %d", ipv4 + ipv6, build,
                 Double(table.lookupByteCount) / count, entryBytes, lookups / time4, lookups / time6, hits))
}

/// `count` rules, each `pass in tcp from <a /24> to port P` with its own port, then the same
/// number of decisions for ports that do and do not have a rule.
func ruleDecisions(count: Int, _ sequence: inout Sequence, linear measuringLinear: Bool = true) -> (indexed: Double, linear: Double) {
    var policy = Policy()
    let location = SourceLocation(file: "bench.rules", line: 1, column: 1)
    policy.rules = (0..<count).map { number in
        Rule(action: .pass, direction: .inbound,
             from: [IPNetwork(address: IPAddress(ipv4: 0xC633_6400 &+ UInt32(number) << 8), prefixLength: 24)],
             ports: [PortRange(UInt16(1000 + number))], location: location)
    }
    var packets: [(IPAddress, UInt16)] = []
    for _ in 0..<200_000 {
        let number = Int(sequence.next() % UInt64(count))
        packets.append((IPAddress(ipv4: 0xC633_6400 &+ UInt32(number) << 8 | 7), UInt16(1000 + Int(sequence.next() % UInt64(2 * count)))))
    }
    let destination = IPAddress(ipv4: 0xCB00_7101)
    var passed = 0
    let indexed = seconds {
        for (source, port) in packets where policy.decide(direction: .inbound, source: source, destination: destination,
                                                          destinationPort: port).action == .pass { passed += 1 }
    }
    let linearPackets = packets.prefix(!measuringLinear ? 0 : count >= 1000 ? 2_000 : packets.count)
    let linear = seconds {
        for (source, port) in linearPackets
        where policy.rules.contains(where: { $0.matches(direction: .inbound, source: source, destination: destination,
                                                        destinationPort: port) }) { passed += 1 }
    }
    return (indexed / Double(packets.count), linear / Double(max(1, linearPackets.count)))
}

print("rules   ns/decision(indexed)  ns/decision(linear first match)")
for count in [10, 10_000] {
    let (indexed, linear) = ruleDecisions(count: count, &sequence)
    print(String(format: "%6d  %20.1f  %20.1f", count, indexed * 1e9, linear * 1e9))
}

if CommandLine.arguments.count == 2 {
    let directory = CommandLine.arguments[1]
    var lines: [String] = []
    for entry in entries(ipv4: 1_000_000, ipv6: 200_000, &sequence) { lines.append(entry.description) }
    try! (lines.joined(separator: "\n") + "\n").write(toFile: directory + "/drop.txt", atomically: true, encoding: .utf8)
    try! "table <drop> file \"drop.txt\"\nblock in tcp from <drop>\n".write(toFile: directory + "/table.rules", atomically: true,
                                                                          encoding: .utf8)
    var policy: Policy?
    let load = seconds { policy = try? RuleFile.load(path: directory + "/table.rules") }
    print(String(format: "rule file with a 1.2M-line table file (%d entries kept): loaded in %.2f s",
                 policy?.tables.first?.entries.count ?? -1, load))
}
