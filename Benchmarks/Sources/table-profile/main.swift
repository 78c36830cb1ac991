// Address tables and the rule index at scale, without the benchmark harness:
// `table-profile [directory]` prints, for 10k, 100k and 1.2M prefixes (BlockList), the time to
// build a table, the bytes per prefix and the resident memory it took, and lookups per second;
// then the time of one rule decision with 10 and with 10,000 rules (indexed and, as a
// reference, first match over every rule); then how long a worker stops between two batches
// to put a rebuilt 1.2M-prefix table (or a reloaded policy holding it) in place, and what
// freeing such a table costs; then, when a directory is given, the time to load a rule file
// whose table file holds the 1.2M prefixes (written there as `drop.txt`, which `nft-compare`
// in BENCHMARKS.md reads too).
import Foundation
import SeqwallCore
import SeqwallRules
import SeqwallTestSupport
import TrackerWorkloads

/// A fixed sequence (Knuth's MMIX LCG, high bits), so every run measures the same probes.
struct Sequence {
    var state: UInt64
    mutating func next() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return state ^ (state >> 29)
    }
}

/// The thread's CPU time `body` takes (what another process's time on the core leaves out).
func cpuSeconds(_ body: () -> Void) -> Double {
    let start = ProfileClock.seconds(CLOCK_THREAD_CPUTIME_ID)
    body()
    return ProfileClock.seconds(CLOCK_THREAD_CPUTIME_ID) - start
}

func seconds(_ body: () -> Void) -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

var sequence = Sequence(state: 0x7AB1E5)
// `table-profile rules N`: only the rule decisions with N rules (for callgrind, collecting
// inside Policy.decide).
if CommandLine.arguments.count == 3, CommandLine.arguments[1] == "rules", let count = Int(CommandLine.arguments[2]) {
    let (indexed, _) = ruleDecisions(count: count, &sequence, linear: false)
    print(String(format: "%d rules: %.1f ns a decision", count, indexed * 1e9))
    exit(0)
}
// `table-profile stalls`: only the workers' stalls on a table change or a reload.
if CommandLine.arguments.count == 2, CommandLine.arguments[1] == "stalls" {
    swapStalls()
    exit(0)
}
// `table-profile lookups [--no-huge-pages]`: only the table rows, their lookup arrays advised
// onto huge pages as the daemon's are unless `--no-huge-pages`, lookups timed by the thread's
// CPU time.
let lookupsOnly = CommandLine.arguments.count >= 2 && CommandLine.arguments[1] == "lookups"
let tableRegions: RegionProvider? = CommandLine.arguments.contains("--no-huge-pages") ? nil : hugePageRegions
print("prefixes    build_s  lookup_bytes/prefix  entry_bytes/prefix  rss_bytes/prefix  lookups/s(ipv4)  lookups/s(ipv6)  in_table")
for (ipv4, ipv6) in [(8_000, 2_000), (80_000, 20_000), (1_000_000, 200_000)] {
    let list = BlockList(ipv4: ipv4, ipv6: ipv6, seed: 0x7AB1E5).entries
    var table: AddressTable!
    let residentBefore = residentBytes()
    let build = seconds { table = AddressTable(name: "drop", entries: list, regionProvider: tableRegions) }
    let residentGrowth = residentBytes() - residentBefore
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
    let time4 = cpuSeconds { for _ in 0..<rounds { for address in probes4 where table.contains(address) { hits += 1 } } }
    let time6 = cpuSeconds { for _ in 0..<rounds { for address in probes6 where table.contains(address) { hits += 1 } } }
    let lookups = Double(rounds * probes4.count)
    let entryBytes = Double(MemoryLayout<TableEntry>.stride * table.entries.count) / count
    print(String(format: "%8d  %8.3f  %19.1f  %18.1f  %16.1f  %15.0f  %15.0f  %d", ipv4 + ipv6, build,
                 Double(table.lookupByteCount) / count, entryBytes, Double(residentGrowth) / count,
                 lookups / time4, lookups / time6, hits))
}

if lookupsOnly { exit(0) }

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

swapStalls()

if CommandLine.arguments.count == 2 {
    let directory = CommandLine.arguments[1]
    var lines: [String] = []
    for entry in SynScenario.blockList.entries { lines.append(entry.description) }
    try! (lines.joined(separator: "\n") + "\n").write(toFile: directory + "/drop.txt", atomically: true, encoding: .utf8)
    try! "table <drop> file \"drop.txt\"\nblock in tcp from <drop>\n".write(toFile: directory + "/table.rules", atomically: true,
                                                                          encoding: .utf8)
    var policy: Policy?
    let load = seconds { policy = try? RuleFile.loadWithWarnings(path: directory + "/table.rules", tableRegionProvider: hugePageRegions).policy }
    print(String(format: "rule file with a 1.2M-line table file (%d entries kept): loaded in %.2f s",
                 policy?.tables.first?.entries.count ?? -1, load))
}

/// A worker applies a table change or a reload as a mailbox job between two batches
/// (Daemon+Tables.swift): `replaceTable` or `replacePolicy` on its tracker, with the new table
/// built beforehand on the control thread, which also keeps the old one referenced until every
/// worker is done, so the old table is never freed on a worker. Each apply is timed alone,
/// between batches of SYNs (so the caches hold packet-path data, not the policy), by the wall
/// clock and by the thread's CPU time (which leaves out the time another process had the core),
/// and the longest of many is what a worker stalls. Freeing a 1.2M-prefix table is timed too:
/// what a worker would pay if it dropped the last reference.
func swapStalls() {
    let swaps = 2_000
    let syns = SynDecisions(.tableMiss, family: .ipv4, syns: 64 * swaps)
    let tracker = syns.tracker
    // Two tables alternate; both stay referenced here, as the control thread holds the old one.
    let tables = [SynScenario.blockList.table, BlockList(ipv4: 1_000_000, ipv6: 200_000, seed: 0x5EC0).table]
    var policies = [tracker.policy, tracker.policy]
    policies[1].tables = [tables[1]]
    // Reloads of 10,000 rules (SynScenario's mixed shape) behind `block in tcp from <drop>`.
    var large = SynScenario.rules(.mixed, 10_000).build(.ipv4, count: 1).0
    large.tables = [tables[0]]
    large.rules = [tracker.policy.rules[0]] + large.rules
    large.limits = tracker.policy.limits
    var largeAgain = large
    largeAgain.tables = [tables[1]]
    let larges = [large, largeAgain]
    func measure(_ name: String, _ apply: (Int) -> Void) {
        var longestWall = 0.0, longestCPU = 0.0, total = 0.0
        syns.preparePass()
        for swap in 0..<swaps {
            _ = syns.runBatch(swap)
            let wallStart = ProfileClock.seconds(CLOCK_MONOTONIC), cpuStart = ProfileClock.seconds(CLOCK_THREAD_CPUTIME_ID)
            apply(swap)
            let cpu = ProfileClock.seconds(CLOCK_THREAD_CPUTIME_ID) - cpuStart, wall = ProfileClock.seconds(CLOCK_MONOTONIC) - wallStart
            longestWall = max(longestWall, wall)
            longestCPU = max(longestCPU, cpu)
            total += wall
        }
        print(String(format: "worker stall, %@ (%d times): longest %.1f us by the wall clock, %.1f us of thread CPU; mean %.2f us",
                     name, swaps, longestWall * 1e6, longestCPU * 1e6, total / Double(swaps) * 1e6))
    }
    measure("putting a rebuilt 1.2M-prefix table in place") { tracker.replaceTable(at: 0, with: tables[($0 + 1) % 2]) }
    measure("a reload: 5 rules and the 1.2M-prefix table") { tracker.replacePolicy(policies[($0 + 1) % 2]) }
    measure("a reload: 10,001 rules and the 1.2M-prefix table") { tracker.replacePolicy(larges[$0 % 2]) }
    // As the daemon reloads: the rule counters' plan worked out on the control thread, once.
    let plans = [RuleCounterCarry(from: larges[1].rules, to: larges[0].rules),
                 RuleCounterCarry(from: larges[0].rules, to: larges[1].rules)]
    measure("a reload: 10,001 rules and the 1.2M-prefix table, the counters' plan made beforehand") {
        tracker.replacePolicy(larges[$0 % 2], carry: plans[$0 % 2])
    }
    // The same reloads with a per-source limit on every pass rule (`limit half-open 10
    // per-source`, `limit conn 100 per-source`): each worker's limiter then gives every such
    // rule its id and its connection limits.
    let limited = larges.map { policy in
        var limitedPolicy = policy
        limitedPolicy.rules = policy.rules.map { rule in
            guard rule.action == .pass else { return rule }
            var limitedRule = rule
            limitedRule.halfOpenPerSource = 10
            limitedRule.connPerSource = SourceConnectionLimit(count: 100)
            return limitedRule
        }
        return limitedPolicy
    }
    print("rules with per-source limits: \(limited[0].rules.filter { $0.halfOpenPerSource != nil }.count)")
    let limitedPlans = [RuleCounterCarry(from: limited[1].rules, to: limited[0].rules),
                        RuleCounterCarry(from: limited[0].rules, to: limited[1].rules)]
    tracker.replacePolicy(limited[1])
    measure("a reload: 10,001 rules with per-source limits and the 1.2M-prefix table, as the daemon does it") {
        tracker.replacePolicy(limited[$0 % 2], carry: limitedPlans[$0 % 2])
    }
    var doomed: AddressTable? = BlockList(ipv4: 1_000_000, ipv6: 200_000, seed: 0xF4EE).table
    let free = seconds { doomed = nil }
    print(String(format: "freeing a 1.2M-prefix table (the control thread does it, never a worker): %.2f ms%@",
                 free * 1e3, doomed == nil ? "" : "?"))
}

