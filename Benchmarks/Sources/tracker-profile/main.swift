// One core-benchmark workload without the benchmark harness, for profilers:
//
//   tracker-profile established ipv4|ipv6 CONNECTIONS [PASSES] [--one-by-one] [--no-huge-pages]
//   tracker-profile proxied ipv4|ipv6 CONNECTIONS [PASSES] [--one-by-one]
//     (established traffic over connections a synproxy rule proxies: every packet translated)
//   tracker-profile handshake ipv4|ipv6 [PASSES] [--one-by-one] [--no-huge-pages] [--conn-limits]
//   tracker-profile syn ipv4|ipv6 SCENARIO SYNS [PASSES] [--one-by-one] [--no-huge-pages]
//     (SCENARIO: few-rules, few-rules-block, table-miss, table-hit, rules-SHAPE-COUNT with SHAPE
//     ports, sources, destinations or mixed; see SynScenario)
//
//   valgrind --tool=callgrind .build/release/tracker-profile established ipv4 10000 1
//
// Packets go to the tracker in batches of ConnectionTracker.batchCapacity, as the daemon hands
// them over, unless `--one-by-one`; the connection table's arrays are mapped fresh and advised
// onto huge pages, as the daemon's are (HugePageRegions), unless `--no-huge-pages`; the `syn`
// scenarios' address table's always are. The memory on huge pages is printed before the passes
// and after them: only the passes touch most of the tables. `--conn-limits` adds global `limit conn` and `limit
// conn-rate` high enough never to cut a connection, to measure what counting costs. Prints packets per second of the measured passes
// (clock_gettime, one thread). The numbers to quote come from `make bench`; this is for
// finding where the time goes and for comparing two builds back to back.
import SeqwallCore
import SeqwallTestSupport
import TrackerWorkloads
#if canImport(Glibc)
import Glibc
#endif

let flags: Set<String> = ["--one-by-one", "--no-huge-pages", "--sync-events", "--conn-limits"]
let arguments = CommandLine.arguments.filter { !flags.contains($0) }
let feeding: Feeding = CommandLine.arguments.contains("--one-by-one") ? .oneByOne : .batches
let hugePages = !CommandLine.arguments.contains("--no-huge-pages")
func usage() -> Never {
    print("usage: tracker-profile established ipv4|ipv6 CONNECTIONS [PASSES] | handshake ipv4|ipv6 [PASSES]"
        + " | syn ipv4|ipv6 SCENARIO SYNS [PASSES] [--one-by-one] [--no-huge-pages]")
    exit(2)
}
guard arguments.count >= 3, let family = Family(rawValue: arguments[2]) else { usage() }
let packetsPerPass = 1_000_000
let workload: Workload
let passesArgument: Int
switch arguments[1] {
case "established":
    guard arguments.count >= 4, let connections = Int(arguments[3]), connections > 0,
          packetsPerPass % connections == 0 else { usage() }
    let flows = EstablishedFlows(family: family, connections: connections, packetsPerPass: packetsPerPass,
                                 feeding: feeding, hugePages: hugePages)
    print("table B/conn \(flows.tableBytesPerConnection), RSS growth B/conn \(flows.residentBytesPerConnection)")
    workload = flows
    passesArgument = 4
case "proxied":
    guard arguments.count >= 4, let connections = Int(arguments[3]), connections > 0,
          packetsPerPass % connections == 0 else { usage() }
    workload = ProxiedFlows(family: family, connections: connections, packetsPerPass: packetsPerPass,
                            feeding: feeding)
    passesArgument = 4
case "handshake":
    let mix = HandshakeMix(family: family, connections: packetsPerPass / HandshakeMix.packetsPerConnection,
                           feeding: feeding, hugePages: hugePages)
    if CommandLine.arguments.contains("--sync-events") {
        // As the daemon's worker with the state sync on (WorkerSync): the table records its
        // events, and after each batch each is copied into a preallocated ring.
        mix.tracker.recordsEvents = true
        let ringCapacity = 65536
        let ring = UnsafeMutablePointer<ConnectionEvent>.allocate(capacity: ringCapacity)
        nonisolated(unsafe) var written = 0
        mix.afterBatch = { tracker in
            let events = tracker.events
            for index in 0..<events.count {
                (ring + written % ringCapacity).initialize(to: events[index])
                written += 1
            }
            events.reset()
        }
    }
    workload = mix
    passesArgument = 3
case "syn":
    guard arguments.count >= 5, let scenario = SynScenario(arguments[3]), let syns = Int(arguments[4]), syns > 0 else { usage() }
    let decisions = SynDecisions(scenario, family: family, syns: syns, feeding: feeding, hugePages: hugePages)
    print("\(scenario): \(decisions.expectedAccepted) of \(syns) SYNs passed by the policy")
    workload = decisions
    passesArgument = 5
default:
    usage()
}
if CommandLine.arguments.contains("--conn-limits") {
    var policy = workload.tracker.policy
    policy.limits.connPerSource = SourceConnectionLimit(count: 1 << 24)
    policy.limits.connRatePerSource = SourceConnectionLimit(count: 1 << 24, seconds: 1)
    workload.tracker.replacePolicy(policy)
}
print("\(feeding.rawValue), huge pages \(hugePages ? "advised" : "not advised"): "
    + "\(residentHugePageBytes() >> 20) MiB of anonymous memory on huge pages before the passes")
let passes = arguments.count > passesArgument ? Int(arguments[passesArgument]) ?? 3 : 3
var measured = 0.0
var measuredCPU = 0.0
var packets = 0
for _ in 0..<passes {
    workload.preparePass()
    let start = ProfileClock.seconds(CLOCK_MONOTONIC), startCPU = ProfileClock.seconds(CLOCK_THREAD_CPUTIME_ID)
    let outcome = workload.runPass()
    measured += ProfileClock.seconds(CLOCK_MONOTONIC) - start
    measuredCPU += ProfileClock.seconds(CLOCK_THREAD_CPUTIME_ID) - startCPU
    packets += outcome.packets
    if outcome.accepted != outcome.expected {
        print("not accepted: \(outcome.expected - outcome.accepted); \(dropSummary(workload.tracker))")
        exit(1)
    }
}
print("\(residentHugePageBytes() >> 20) MiB of anonymous memory on huge pages after the passes")
print("\(arguments[1]) \(family.rawValue) \(feeding.rawValue): \(packets) packets, \(Double(packets) / measured / 1e6) Mpps wall clock, "
    + "\(Double(packets) / measuredCPU / 1e6) Mpps thread CPU time")
