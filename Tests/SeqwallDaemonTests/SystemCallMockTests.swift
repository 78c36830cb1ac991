import Foundation
@testable import SeqwallDaemon
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The seam itself: calls are recorded only while a mock is installed, a fault fails the calls
/// it names (as many times as asked), and the others reach the kernel.
final class SystemCallMockTests: XCTestCase {
    func testNothingIsRecordedOrFailedWithoutAMock() {
        XCTAssertFalse(SystemCallMock.isInstalled)
        let descriptor = SystemCall.open("/dev/null", O_RDONLY | O_CLOEXEC)
        XCTAssertGreaterThanOrEqual(descriptor, 0)
        XCTAssertEqual(SystemCall.close(descriptor), 0)
    }

    func testCallsAreRecordedAndFaultsInjectedAsManyTimesAsAsked() {
        SystemCallMock.withMock { mock in
            XCTAssertTrue(SystemCallMock.isInstalled)
            mock.fail("open", errno: EMFILE, times: 2, matching: { $0 == "/dev/null" })
            for _ in 0..<2 {
                XCTAssertEqual(SystemCall.open("/dev/null", O_RDONLY), -1)
                XCTAssertEqual(errno, EMFILE)
            }
            let descriptor = SystemCall.open("/dev/null", O_RDONLY | O_CLOEXEC)
            XCTAssertGreaterThanOrEqual(descriptor, 0)
            XCTAssertEqual(SystemCall.close(descriptor), 0)
            XCTAssertEqual(mock.calls, [
                .init(name: "open", argument: "/dev/null"), .init(name: "open", argument: "/dev/null"),
                .init(name: "open", argument: "/dev/null"), .init(name: "close", argument: "\(descriptor)"),
            ])
        }
        XCTAssertFalse(SystemCallMock.isInstalled)
    }

    func testRetryingErrnoRetriesAnInterruptedCall() {
        SystemCallMock.withMock { mock in
            mock.fail("open", errno: EINTR, times: 3)
            let descriptor = SystemCall.retryingErrno { Int(SystemCall.open("/dev/null", O_RDONLY | O_CLOEXEC)) }
            XCTAssertGreaterThanOrEqual(descriptor, 0)
            XCTAssertEqual(mock.calls.filter { $0.name == "open" }.count, 4)
            SystemCall.close(Int32(descriptor))
        }
    }

    func testAStateFileReadThatCannotOpenSaysWhy() throws {
        try SystemCallMock.withMock { mock in
            mock.fail("open", errno: EACCES, matching: { $0.hasSuffix("/state") })
            XCTAssertThrowsError(try StateFile.read(path: "/nonexistent-dir/state", maximumBytes: 100)) { error in
                XCTAssertEqual("\(error)", "cannot open: open: Permission denied")
            }
        }
    }
}
