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

    /// The sync thread's drain: what waits comes in order, across the storage's end (two
    /// runs); the producer sees the room only once it is drained.
    func testADrainOfRunsTakesEverythingInOrderAcrossTheEnd() {
        let ring = SingleProducerRing<Int>(capacity: 8)
        for value in 1...6 { ring.push(value) }
        var drained = [0]
        ring.drainRuns { drained.append(contentsOf: $0) }
        XCTAssertEqual(drained, [0, 1, 2, 3, 4, 5, 6])
        ring.drainRuns { drained.append(contentsOf: $0) }
        XCTAssertEqual(drained.count, 7, "an empty ring adds nothing")
        // Slots 6, 7, then 0 to 5: the run wraps.
        for value in 7...14 { XCTAssertTrue(ring.push(value)) }
        XCTAssertFalse(ring.push(15), "full: the room the drain made is all there is")
        drained = []
        ring.drainRuns { drained.append(contentsOf: $0) }
        XCTAssertEqual(drained, Array(7...14))
        XCTAssertEqual(ring.takeLost(), 1)
        for value in 16...23 { XCTAssertTrue(ring.push(value), "room again after the drain") }
    }
}
