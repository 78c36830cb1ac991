import Foundation
import SeqwallControl
@testable import SeqwallDaemon
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// State-file writes that fail, made to fail through the system-call seam: the failure shows
/// in `stats`, the file keeps the last snapshot written whole, and the daemon carries on.
final class StateFileFailureTests: XCTestCase {
    private func stateHealth(_ daemon: RunningDaemon) throws -> DaemonHealth.StateFile? {
        try daemon.send(ControlRequest(command: .stats)).stats?.state_file
    }

    /// Starts a daemon that writes its state every second and waits for the first write.
    private func startWritingDaemon() throws -> (RunningDaemon, [UInt8]) {
        let daemon = try RunningDaemon(stateInterval: 1)
        daemon.start()
        XCTAssertTrue(try daemon.eventually { try stateHealth(daemon)?.last_success_at != nil })
        let written = try XCTUnwrap(FileManager.default.contents(atPath: daemon.statePath))
        return (daemon, Array(written))
    }

    private func checkFailureIsReportedAndRecovered(_ name: String, errno code: Int32, says text: String) throws {
        try SystemCallMock.withMock { mock in
            let (daemon, before) = try startWritingDaemon()
            mock.fail(name, errno: code)
            XCTAssertTrue(try daemon.eventually { try stateHealth(daemon)?.ok == false })
            let failed = try XCTUnwrap(try stateHealth(daemon))
            XCTAssertEqual(failed.path, daemon.statePath)
            XCTAssertGreaterThanOrEqual(failed.failures, 1)
            XCTAssertTrue(failed.last_error?.contains(text) == true, failed.last_error ?? "no error")
            XCTAssertNotNil(failed.last_error_at)
            XCTAssertTrue(mock.calls.contains { $0.name == name })
            let metrics = DaemonStatistics(daemon: daemon.daemon).metricsText()
            XCTAssertTrue(metrics.contains("seqwall_state_file_ok 0\n"), metrics)

            // The old snapshot is there whole, and nothing is left beside it.
            XCTAssertEqual(FileManager.default.contents(atPath: daemon.statePath).map(Array.init), before)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: daemon.directory).sorted(),
                           ["control.sock", "seqwall.rules", "state"])
            XCTAssertTrue(try daemon.send(ControlRequest(command: .ping)).ok)

            mock.clearFaults()
            XCTAssertTrue(try daemon.eventually { try stateHealth(daemon)?.ok == true })
            XCTAssertEqual(try stateHealth(daemon)?.failures, failed.failures)
            XCTAssertEqual(daemon.stop(), 0)
        }
    }

    func testAFullDiskIsReportedAndTheOldFileStays() throws {
        try checkFailureIsReportedAndRecovered("write", errno: ENOSPC, says: "No space left on device")
    }

    func testARefusedRenameIsReportedAndTheOldFileStays() throws {
        try checkFailureIsReportedAndRecovered("renameat", errno: EACCES, says: "Permission denied")
    }

    func testAFailingFsyncIsReported() throws {
        try checkFailureIsReportedAndRecovered("fsync", errno: EIO, says: "Input/output error")
    }

    func testAFailedWriteAtTheStopMakesTheExitStatusOne() throws {
        try SystemCallMock.withMock { mock in
            let daemon = try RunningDaemon(stateInterval: 0)
            daemon.start()
            mock.fail("openat", errno: EACCES)
            XCTAssertEqual(daemon.stop(), 1)
            XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.statePath))
        }
    }
}
