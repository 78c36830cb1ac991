import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The test seam of SystemCall, after swift-system's MockingDriver: while a mock is installed,
/// every wrapped call is recorded (its name and its path or descriptor), and a call a test
/// armed a fault for fails with that errno instead of reaching the kernel. Calls without a
/// fault still run for real, so a test works on a real temporary directory and sees only the
/// failures it asked for.
///
/// swift-system keeps its driver in thread-local storage; the daemon makes its calls from its
/// own threads (the main loop writes the state file, the control server its replies), so this
/// one is process-wide. Off, it costs each wrapped call one relaxed atomic load; the per-packet
/// calls (NetfilterQueueSocket's recv and send, RejectSender's sendmsg) do not go through it.
final class SystemCallMock: @unchecked Sendable {
    /// One wrapped call: the system call's name and what it acted on.
    struct Call: Equatable, Sendable, CustomStringConvertible {
        let name: String
        let argument: String
        var description: String { "\(name)(\(argument))" }
    }

    private struct Fault {
        let name: String
        let errno: Int32
        let matching: @Sendable (String) -> Bool
        /// nil: every matching call fails.
        var remaining: Int?
    }

    private static let installed = Atomic<Bool>(false)
    private static let lock = NSLock()
    nonisolated(unsafe) private static var current: SystemCallMock?

    private let lock = NSLock()
    private var recorded: [Call] = []
    private var faults: [Fault] = []

    /// Whether a mock is installed: the wrappers' one check.
    @inline(__always)
    static var isInstalled: Bool { installed.load(ordering: .relaxed) }

    /// Installs a fresh mock for the duration of `body` (one at a time; nested use is a bug).
    static func withMock<Result>(_ body: (SystemCallMock) throws -> Result) rethrows -> Result {
        let mock = SystemCallMock()
        lock.lock()
        precondition(current == nil, "one SystemCallMock at a time")
        current = mock
        lock.unlock()
        installed.store(true, ordering: .releasing)
        defer {
            installed.store(false, ordering: .releasing)
            lock.lock()
            current = nil
            lock.unlock()
        }
        return try body(mock)
    }

    /// Makes calls named `name` whose argument `matching` accepts fail with `code`: the next
    /// `times` of them, or all of them while the mock is installed (nil).
    func fail(_ name: String, errno code: Int32, times: Int? = nil,
              matching: @escaping @Sendable (String) -> Bool = { _ in true }) {
        locked { faults.append(Fault(name: name, errno: code, matching: matching, remaining: times)) }
    }

    /// Lets every call through again.
    func clearFaults() { locked { faults.removeAll() } }

    /// The calls made so far, in order.
    var calls: [Call] { locked { recorded } }

    /// Called by the wrappers when a mock is installed: records the call and returns the errno
    /// it must fail with, or nil to make it for real.
    static func intercept(_ name: String, _ argument: String) -> Int32? {
        lock.lock()
        let mock = current
        lock.unlock()
        return mock?.record(Call(name: name, argument: argument))
    }

    private func record(_ call: Call) -> Int32? {
        locked {
            recorded.append(call)
            guard let index = faults.firstIndex(where: { $0.name == call.name && $0.matching(call.argument) }) else {
                return nil
            }
            let code = faults[index].errno
            if let remaining = faults[index].remaining {
                if remaining <= 1 { faults.remove(at: index) } else { faults[index].remaining = remaining - 1 }
            }
            return code
        }
    }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }
}
