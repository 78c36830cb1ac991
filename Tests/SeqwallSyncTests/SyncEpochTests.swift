import SeqwallSync
import XCTest

/// The sender's epoch across restarts (docs/sync-protocol.md, Replay).
final class SyncEpochTests: XCTestCase {
    func testTheFirstStartTakesTheClock() {
        XCTAssertEqual(SyncEpoch.next(after: nil, clock: 1_700_000_000), 1_700_000_000)
    }

    func testAStartAfterTheClockSteppedBackIsStillAboveTheLast() {
        XCTAssertEqual(SyncEpoch.next(after: 1_700_000_000, clock: 1_600_000_000), 1_700_000_001)
        XCTAssertEqual(SyncEpoch.next(after: 1_700_000_000, clock: 1_700_000_000), 1_700_000_001)
    }

    func testAClockAheadOfTheLastEpochIsTaken() {
        XCTAssertEqual(SyncEpoch.next(after: 1_700_000_000, clock: 1_700_000_500), 1_700_000_500)
    }

    func testTheTopOfTheRangeDoesNotWrapToAnOldEpoch() {
        XCTAssertEqual(SyncEpoch.next(after: .max, clock: 5), .max)
    }
}
