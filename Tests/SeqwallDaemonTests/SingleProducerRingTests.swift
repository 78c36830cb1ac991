@testable import SeqwallDaemon
import XCTest

/// A worker's sync ring when the sync thread falls behind: what does not fit is dropped and
/// counted (`changes_lost`, docs/ha.md), the worker never waits, and what fitted comes out in
/// order.
final class SingleProducerRingTests: XCTestCase {
    func testAFullRingDropsAndCountsWhatDoesNotFit() {
        let ring = SingleProducerRing<Int>(capacity: 4)
        for value in 1...7 { ring.push(value) }
        ring.addLost(2)
        XCTAssertEqual(ring.takeLost(), 5)
        XCTAssertEqual(ring.takeLost(), 0, "the count is taken once")
        var drained: [Int] = []
        ring.drain { drained.append($0) }
        XCTAssertEqual(drained, [1, 2, 3, 4])
        // Room again once drained, wrapping around the storage.
        for value in 8...11 { ring.push(value) }
        ring.push(12)
        XCTAssertEqual(ring.takeLost(), 1)
        drained = []
        ring.drain { drained.append($0) }
        XCTAssertEqual(drained, [8, 9, 10, 11])
    }
}
