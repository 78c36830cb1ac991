import Foundation
import SeqwallControl
@testable import SeqwallDaemon
import XCTest

final class ShutdownTests: XCTestCase {
    func testStopEndsRunAndRemovesTheSocketFile() throws {
        let daemon = try RunningDaemon()
        daemon.start()
        XCTAssertTrue(FileManager.default.fileExists(atPath: daemon.controlPath))
        XCTAssertEqual(daemon.stop(), 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.controlPath))
        XCTAssertThrowsError(try daemon.send(ControlRequest(command: .ping)))
    }

    func testStopBeforeRunStartsStopsItAtOnce() throws {
        let daemon = try RunningDaemon()
        daemon.daemon.stop()
        XCTAssertEqual(daemon.runToEnd(), 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.controlPath))
    }

    func testBrokenRulesStopTheStart() throws {
        let daemon = try RunningDaemon(rules: "default in frob\n")
        XCTAssertEqual(daemon.runToEnd(), 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: daemon.controlPath))
    }

    func testAPlantedFileAtTheSocketPathStopsTheStart() throws {
        let daemon = try RunningDaemon()
        try "not a socket".write(toFile: daemon.controlPath, atomically: false, encoding: .utf8)
        XCTAssertEqual(daemon.runToEnd(), 1)
        XCTAssertEqual(try String(contentsOfFile: daemon.controlPath, encoding: .utf8), "not a socket")
    }
}
