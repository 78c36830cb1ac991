import XCTest

/// A test case with a daemon started for each test and stopped (cleanly) after it.
class RunningDaemonTestCase: XCTestCase {
    var daemon: RunningDaemon!

    override func setUpWithError() throws {
        daemon = try RunningDaemon()
        daemon.start()
    }

    override func tearDown() {
        XCTAssertEqual(daemon.stop(), 0)
        daemon = nil
    }
}
