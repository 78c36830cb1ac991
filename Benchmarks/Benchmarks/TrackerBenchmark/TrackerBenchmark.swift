// seqwall's core benchmark: the tracker alone (parse, look up, track, count), fed pre-built
// packets from memory on one thread. No queue, no system call, no I/O.
//
// Each benchmark iteration is one pass of exactly 1,000,000 packets (scalingFactor .mega); the
// schedule for a pass is written before `startMeasurement()`, outside the measured region.
import Benchmark
import SeqwallCore
import SeqwallTestSupport
import TrackerWorkloads
#if canImport(Glibc)
import Glibc
#endif

enum Metrics {
    /// Packets per second over the pass, in thousands, by the wall clock.
    static let kppsWall = BenchmarkMetric.custom("kpps (wall clock)", polarity: .prefersLarger, useScalingFactor: false)
    /// The same by this thread's CPU time: on a shared, loaded machine the thread is often
    /// descheduled, and CPU time leaves those gaps out.
    static let kppsCPU = BenchmarkMetric.custom("kpps (thread CPU)", polarity: .prefersLarger, useScalingFactor: false)
    /// The table's slots and tags divided by the connections in it.
    static let tableBytesPerConnection = BenchmarkMetric.custom("table B/conn", polarity: .prefersSmaller,
                                                                useScalingFactor: false)
    /// How much the process's resident memory grew while the connections were opened.
    static let residentBytesPerConnection = BenchmarkMetric.custom("RSS growth B/conn", polarity: .prefersSmaller,
                                                                   useScalingFactor: false)
    /// Packets per pass the tracker did not accept that the workload's policy passes: must be
    /// 0 (else the drop path was measured).
    static let notAccepted = BenchmarkMetric.custom("not accepted", polarity: .prefersSmaller,
                                                    useScalingFactor: false)
}

let packetsPerPass = 1_000_000

func configuration(seconds: Int) -> Benchmark.Configuration {
    // No peakMemoryResident: it starts a sampling thread whose own mallocs (a few hundred a
    // second) would be counted as the tracker's. Memory per connection is measured instead.
    // With `--scale` (make bench) every row is per pass: Malloc (total) counts the mallocs of
    // a million packets, and wall clock in ms per million packets is ns per packet.
    .init(metrics: [.wallClock, .mallocCountTotal, Metrics.kppsWall, Metrics.kppsCPU,
                    Metrics.tableBytesPerConnection, Metrics.residentBytesPerConnection, Metrics.notAccepted],
          // Plain numbers: automatic units would print 11 (K) kpps for 11000 kpps.
          units: [Metrics.kppsWall: .count, Metrics.kppsCPU: .count],
          warmupIterations: 1,
          scalingFactor: .mega,
          maxDuration: .seconds(seconds),
          maxIterations: 10)
}

func label(_ count: Int) -> String {
    count >= 1_000_000 ? "\(count / 1_000_000)M" : "\(count / 1000)k"
}

func seconds(_ clock: clockid_t) -> Double {
    var time = timespec()
    clock_gettime(clock, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
}

/// One benchmark iteration: the next pass is written, then measured alone; a pass in which the
/// tracker refused a packet the policy passes is an error (it would have measured the drop path).
func measurePass(_ benchmark: Benchmark, _ workload: Workload) {
    workload.preparePass()
    benchmark.startMeasurement()
    let wallStart = seconds(CLOCK_MONOTONIC), cpuStart = seconds(CLOCK_THREAD_CPUTIME_ID)
    let outcome = workload.runPass()
    let wall = seconds(CLOCK_MONOTONIC) - wallStart, cpu = seconds(CLOCK_THREAD_CPUTIME_ID) - cpuStart
    benchmark.stopMeasurement()
    benchmark.measurement(Metrics.kppsWall, Int(Double(outcome.packets) / wall / 1000))
    benchmark.measurement(Metrics.kppsCPU, Int(Double(outcome.packets) / cpu / 1000))
    benchmark.measurement(Metrics.notAccepted, outcome.expected - outcome.accepted)
    if outcome.accepted != outcome.expected {
        benchmark.error("\(outcome.expected - outcome.accepted) of \(outcome.expected) packets not accepted: "
            + dropSummary(workload.tracker))
    }
}

let benchmarks: @Sendable () -> Void = {
    // What the harness itself allocates in a measured region with nothing in it: subtract it
    // from the workloads' Malloc (total) to get the tracker's own allocations.
    Benchmark("harness baseline (empty pass)", configuration: configuration(seconds: 1)) { benchmark in
        benchmark.startMeasurement()
        blackHole(seconds(CLOCK_MONOTONIC))
        benchmark.stopMeasurement()
    }
    // Packets go in batches of ConnectionTracker.batchCapacity, as the daemon hands them over;
    // the one-by-one rows show what batching gives, side by side.
    func established(_ family: Family, _ connections: Int, _ feeding: Feeding) {
        let suffix = feeding == .batches ? "" : ", \(feeding.rawValue)"
        Benchmark("established \(family.rawValue) \(label(connections)) conns\(suffix)",
                  configuration: configuration(seconds: 4)) { benchmark, flows in
            measurePass(benchmark, flows)
            benchmark.measurement(Metrics.tableBytesPerConnection, flows.tableBytesPerConnection)
            benchmark.measurement(Metrics.residentBytesPerConnection, flows.residentBytesPerConnection)
        } setup: {
            EstablishedFlows(family: family, connections: connections, packetsPerPass: packetsPerPass, feeding: feeding)
        }
    }
    for family in Family.allCases {
        for connections in [1_000, 10_000, 100_000, 1_000_000] {
            established(family, connections, .batches)
            if family == .ipv4 && (connections == 10_000 || connections == 1_000_000) {
                established(family, connections, .oneByOne)
            }
        }
        Benchmark("handshake mix \(family.rawValue) 100k conns/pass",
                  configuration: configuration(seconds: 4)) { benchmark, mix in
            measurePass(benchmark, mix)
        } setup: {
            HandshakeMix(family: family, connections: packetsPerPass / HandshakeMix.packetsPerConnection)
        }
    }
    // SYN decisions (SynScenario): each packet the SYN of a new connection, decided by the
    // policy and opened. Compare the table rows with "few rules" (the same SYNs without the
    // table) and "few rules, first blocks all" (the same hits blocked by a plain prefix), the
    // 10k-rule rows with the 10-rule rows of the same shape.
    func syn(_ scenario: SynScenario, _ family: Family) {
        Benchmark("syn \(family.rawValue) \(scenario)", configuration: configuration(seconds: 4)) { benchmark, syns in
            measurePass(benchmark, syns)
        } setup: {
            SynDecisions(scenario, family: family, syns: packetsPerPass)
        }
    }
    for family in Family.allCases {
        for scenario in [SynScenario.fewRules, .tableMiss, .fewRulesBlock, .tableHit] { syn(scenario, family) }
    }
    for shape in SynScenario.RuleShape.allCases {
        for count in [10, 10_000] { syn(.rules(shape, count), .ipv4) }
    }
}
