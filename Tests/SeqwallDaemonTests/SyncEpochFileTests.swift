import Foundation
import Logging
@testable import SeqwallDaemon
import SeqwallTestSupport
import XCTest

/// The last sync epoch kept beside the state file: each start's epoch is above the last even
/// when the clock stepped back; a bad record falls back to the clock, and without one a start
/// takes the next second once the clock has reached it.
final class SyncEpochFileTests: XCTestCase {
    private let logger = Logger(label: "seqwall-test") { _ in SwiftLogNoOpLogHandler() }

    func testEpochsStrictlyIncreaseAcrossStartsWhateverTheClock() throws {
        let directory = try TemporaryDirectory(prefix: "seqwall-sync-epoch")
        let path = SyncEpochFile.path(stateFile: directory.path + "/state")
        XCTAssertEqual(SyncEpochFile.take(path: path, clock: 1_700_000_000, logger: logger), 1_700_000_000)
        // The clock stepped back an hour: still above the last start's.
        XCTAssertEqual(SyncEpochFile.take(path: path, clock: 1_699_996_400, logger: logger), 1_700_000_001)
        XCTAssertEqual(SyncEpochFile.take(path: path, clock: 1_700_000_001, logger: logger), 1_700_000_002)
        XCTAssertEqual(SyncEpochFile.take(path: path, clock: 1_700_009_000, logger: logger), 1_700_009_000)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "1700009000\n")
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)
    }

    func testWithoutARecordTheNextSecondIsTakenOnceTheClockReachesIt() throws {
        let clock = UInt32(SystemCall.wallClockNanoseconds() / 1_000_000_000)
        XCTAssertEqual(SyncEpochFile.take(path: nil, clock: clock, logger: logger), clock + 1)
        XCTAssertGreaterThanOrEqual(SystemCall.wallClockNanoseconds(), UInt64(clock + 1) * 1_000_000_000,
                                    "a later start cannot take the same second")
        // A state file whose directory is gone: not recorded, so the same.
        XCTAssertEqual(SyncEpochFile.take(path: "/nonexistent-dir/state.sync-epoch", clock: 7, logger: logger,
                                          unrecorded: { $0 + 1 }), 8)
    }

    func testAnUnreadableRecordFallsBackToTheClock() throws {
        let directory = try TemporaryDirectory(prefix: "seqwall-sync-epoch")
        let garbage = try directory.file("state.sync-epoch", Array("not a number\n".utf8))
        chmod(garbage, 0o600)
        XCTAssertEqual(SyncEpochFile.take(path: garbage, clock: 42, logger: logger), 42)
        // And it now holds the epoch taken.
        XCTAssertEqual(SyncEpochFile.take(path: garbage, clock: 42, logger: logger), 43)
    }
}
