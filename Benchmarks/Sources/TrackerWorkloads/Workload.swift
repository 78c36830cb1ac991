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

/// Random flow orders for the half-rounds of a pass over `connections` flows, seeded by their
/// number, used in turn (EstablishedFlows, ProxiedFlows).
func flowOrders(connections: Int, halfRoundsPerPass: Int) -> [[Int32]] {
    var generator = SplitMix64(seed: 0x5EC0_A11 ^ UInt64(connections))
    return (0..<min(4, halfRoundsPerPass * 2)).map { _ in
        var order = (0..<connections).map { Int32($0) }
        order.shuffle(using: &generator)
        return order
    }
}

/// Calls `body` for each packet of pass `pass` in schedule order: its index, its connection,
/// the round, and whether it is the client's data (else the server's acknowledgment).
func forEachHalfRoundPacket(pass: Int, halfRoundsPerPass: Int, orders: [[Int32]], connections: Int,
                            _ body: (_ index: Int, _ connection: Int, _ round: UInt32, _ isData: Bool) -> Void) {
    var index = 0
    for halfRound in (pass * halfRoundsPerPass)..<((pass + 1) * halfRoundsPerPass) {
        let round = UInt32(truncatingIfNeeded: halfRound / 2)
        let order = orders[halfRound % orders.count]
        for position in 0..<connections {
            body(index, Int(order[position]), round, halfRound % 2 == 0)
            index += 1
        }
    }
}
