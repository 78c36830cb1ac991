import Foundation
import SeqwallControl
import SeqwallCore

/// What the daemon knows about itself beyond the workers' counters, for `stats`, `rules show`
/// and the metrics: when it started, the policy in force and when it came in, the last reload,
/// the state file's writes and the standing warnings. Written by the main thread and reloads,
/// read by control clients and scrapes; a lock, far from the packet path.
final class DaemonStatus: @unchecked Sendable {
    private let lock = NSLock()
    let startedAt = SystemCall.monotonicNanoseconds()
    private var policy = Policy()
    private var policyLoadedAt: UInt64 = 0
    private var reload: DaemonHealth.Reload?
    private var reloadsSucceeded: UInt64 = 0
    private var reloadsFailed: UInt64 = 0
    private var stateFile: DaemonHealth.StateFile?
    private var warnings: [String] = []

    var uptimeSeconds: UInt64 { (SystemCall.monotonicNanoseconds() - startedAt) / 1_000_000_000 }

    /// The policy in force and when it was loaded (Unix seconds).
    var currentPolicy: (policy: Policy, loadedAt: UInt64) {
        locked { (policy, policyLoadedAt) }
    }

    func policyLoaded(_ newPolicy: Policy) {
        let now = SystemCall.wallClockNanoseconds() / 1_000_000_000
        locked {
            policy = newPolicy
            policyLoadedAt = now
        }
    }

    /// A table changed by `seqwall table`: the same rules, loaded at the same time.
    func tablesChanged(_ changedPolicy: Policy) {
        locked { policy = changedPolicy }
    }

    var lastReload: DaemonHealth.Reload? { locked { reload } }

    /// Reloads by result, and whether the last one succeeded (true before any), for metrics.
    var reloads: (succeeded: UInt64, failed: UInt64, lastSucceeded: Bool) {
        locked { (reloadsSucceeded, reloadsFailed, reload?.ok ?? true) }
    }

    func reloaded(error: String?) {
        let now = SystemCall.wallClockNanoseconds() / 1_000_000_000
        locked {
            reload = DaemonHealth.Reload(at: now, ok: error == nil, error: error.map(DaemonHealth.firstLine))
            if error == nil { reloadsSucceeded += 1 } else { reloadsFailed += 1 }
        }
    }

    // MARK: State file

    var stateFileHealth: DaemonHealth.StateFile? { locked { stateFile } }

    func stateFileConfigured(path: String) {
        locked { stateFile = DaemonHealth.StateFile(path: path) }
    }

    /// Records a write's result; returns the health before it (for the recovery's log line).
    @discardableResult
    func stateFileWritten(error: String?) -> DaemonHealth.StateFile? {
        let now = SystemCall.wallClockNanoseconds() / 1_000_000_000
        return locked {
            let before = stateFile
            guard var health = stateFile else { return nil }
            if let error {
                health.ok = false
                health.last_error = error
                health.last_error_at = now
                health.failures += 1
            } else {
                health.ok = true
                health.last_success_at = now
            }
            stateFile = health
            return before
        }
    }

    // MARK: Warnings

    var currentWarnings: [String] { locked { warnings } }

    func setWarnings(_ newWarnings: [String]) { locked { warnings = newWarnings } }

    private func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }
}
