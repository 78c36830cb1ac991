import SeqwallCore
import SeqwallTestSupport

/// Packets prepared pass by pass outside the measured region, then run through a tracker.
public protocol Workload: AnyObject {
    var tracker: ConnectionTracker { get }
    /// Writes the next pass's packets.
    func preparePass()
    /// The measured region.
    func runPass() -> PassOutcome
}

/// A seeded mix of a connection number into 32 bits: initial sequence numbers that look random
/// but are the same every run.
func scramble(_ value: Int, _ salt: UInt64) -> UInt32 {
    var generator = SplitMix64(seed: UInt64(truncatingIfNeeded: value) &* 0x100_0000_01B3 ^ salt)
    return UInt32(truncatingIfNeeded: generator.next())
}

/// A drop breakdown for an error message: a workload that sees drops measures the wrong path.
public func dropSummary(_ tracker: ConnectionTracker) -> String {
    let counters = tracker.counters
    let reasons = DropReason.allCases.filter { counters[$0] > 0 }.map { "\($0)=\(counters[$0])" }
    return "accepted \(counters.accepted), dropped \(counters.dropped) [\(reasons.joined(separator: " "))]"
}
