import SeqwallCore
import SeqwallTestSupport

/// Passes of new TCP connections: every packet a SYN of its own flow, decided by the policy
/// (`SynScenario`) and, when passed, opened in the table. Each pass sends the same SYNs after
/// the clock moved past the SYN_SENT timeout, so a passed SYN finds last pass's connection
/// expired, takes it out and opens its own: the table never fills, and every pass measures
/// decisions and opens only.
public final class SynDecisions: Workload {
    public let tracker: ConnectionTracker
    let schedule: PacketSchedule
    let feeding: Feeding
    /// How many of a pass's SYNs the policy passes (the others are dropped by a rule).
    public let expectedAccepted: Int
    private(set) var now: UInt64 = 1_000 * 1_000_000_000

    public init(_ scenario: SynScenario, family: Family, syns: Int, feeding: Feeding = .batches, hugePages: Bool = true) {
        self.feeding = feeding
        let (basePolicy, flows) = scenario.build(family, count: syns)
        var policy = basePolicy
        policy.limits.states = 2 * syns
        tracker = ConnectionTracker(policy: policy, capacity: 2 * syns, regionProvider: regionProvider(hugePages: hugePages))
        schedule = PacketSchedule(count: syns)
        var accepted = 0
        for (index, (source, destination, port)) in flows.enumerated() {
            let sourcePort = UInt16(1024 + index % 64_000)
            schedule.set(index, SegmentSpec(source: (source, sourcePort), destination: (destination, port),
                                            sequence: scramble(index, 5), acknowledgment: 0, flags: .syn, window: 64240))
            if policy.decide(direction: .inbound, source: source, destination: destination, destinationPort: port).action == .pass {
                accepted += 1
            }
        }
        expectedAccepted = accepted
    }

    /// The same SYNs again, past the SYN_SENT timeout of the last pass's.
    public func preparePass() {
        now &+= 200 * 1_000_000_000
    }

    /// Batch number `batch` of the pass alone (for measurements taken between batches, where
    /// the daemon's worker runs its mailbox jobs); returns how many SYNs were accepted.
    public func runBatch(_ batch: Int) -> Int {
        schedule.runBatch(from: batch * ConnectionTracker.batchCapacity % schedule.count, through: tracker, now: now)
    }

    public func runPass() -> PassOutcome {
        PassOutcome(packets: schedule.count, accepted: schedule.run(through: tracker, now: now, feeding: feeding),
                    expected: expectedAccepted)
    }
}
