import Foundation
import Logging
import SeqwallControl
@testable import SeqwallDaemon
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// A Daemon run on a thread of its own in a temporary directory (rules, control socket, state
/// file), spoken to through its real control socket, its queues (if any) on FakeKernelQueues:
/// it runs without root.
final class RunningDaemon: @unchecked Sendable {
    let directory: String
    let rulesPath: String
    let controlPath: String
    let statePath: String
    let daemon: Daemon
    private let finished = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var status: Int32?

    static let rules = """
        inside 203.0.113.0/24
        default in block
        default out pass
        pass in tcp to port 22, 443

        """

    /// The fake kernel queue of each queue, by number.
    let kernels: [UInt16: FakeKernelQueue]
    /// The settings the daemon bound each queue with, by number.
    private let bound: BoundQueues
    var boundSettings: [UInt16: QueueSettings] { bound.settings }

    /// What the daemon's worker factory was asked for, from the daemon's thread.
    final class BoundQueues: @unchecked Sendable {
        private let lock = NSLock()
        private var byQueue: [UInt16: QueueSettings] = [:]

        func record(_ queue: UInt16, _ settings: QueueSettings) { lock.withLock { byQueue[queue] = settings } }
        var settings: [UInt16: QueueSettings] { lock.withLock { byQueue } }
    }
    private let ownsDirectory: Bool

    /// `stateInterval`: seconds between snapshots; nil: no state file. `directory`: one an
    /// earlier run used (and keeps), to start again on its state file; nil: a new one.
    init(rules: String = RunningDaemon.rules, stateInterval: UInt32? = nil, queues: [UInt16] = [],
         directory: String? = nil, sync: SyncOptions? = nil, synProxyQueues: [UInt16] = []) throws {
        if let directory {
            self.directory = directory
            ownsDirectory = false
        } else {
            var template = Array("/tmp/seqwall-daemon-test.XXXXXX".utf8CString)
            guard let made = mkdtemp(&template) else { throw SystemError("mkdtemp") }
            self.directory = String(cString: made)
            ownsDirectory = true
        }
        let directory = self.directory
        rulesPath = directory + "/seqwall.rules"
        controlPath = directory + "/control.sock"
        statePath = directory + "/state"
        try rules.write(toFile: rulesPath, atomically: true, encoding: .utf8)
        var options = DaemonOptions(rulesPath: rulesPath)
        options.queues = queues
        options.synProxyQueues = synProxyQueues
        options.controlPath = controlPath
        options.idleWarningSeconds = 0
        options.sync = sync
        if let stateInterval {
            options.stateFile = statePath
            options.stateInterval = stateInterval
        }
        let kernels = Dictionary(uniqueKeysWithValues: queues.map { ($0, FakeKernelQueue()) })
        self.kernels = kernels
        let logger = Logger(label: "seqwall-test") { _ in SwiftLogNoOpLogHandler() }
        let bound = BoundQueues()
        self.bound = bound
        daemon = Daemon(options: options, logger: logger) { queue, settings, policy, capacity, shares throws(SystemError) in
            let kernel = kernels[queue]!
            bound.record(queue, settings)
            return try QueueWorker(queue: queue, settings: settings, policy: policy, capacity: capacity,
                                   shares: shares, logger: logger, answers: nil) { _, _ in (kernel, kernel) }
        }
    }

    deinit {
        if ownsDirectory { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Starts `run` and waits until the control socket answers; fails the test when it does not.
    func start(file: StaticString = #filePath, line: UInt = #line) {
        launch()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let reply = try? send(ControlRequest(command: .ping)), reply.ok { return }
            if exitStatus != nil { break }
            usleep(20_000)
        }
        XCTFail("the daemon did not answer on \(controlPath)", file: file, line: line)
    }

    /// Runs `run` on a thread of its own (whose signal mask it may change) and waits for it to
    /// return; nil when it did not within 30 s.
    func runToEnd() -> Int32? {
        launch()
        guard finished.wait(timeout: .now() + 30) == .success else { return nil }
        finished.signal()
        return exitStatus
    }

    private func launch() {
        let thread = Thread { [self] in
            let result = daemon.run()
            lock.lock()
            status = result
            lock.unlock()
            finished.signal()
        }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// `run`'s result once it has returned.
    var exitStatus: Int32? {
        lock.lock()
        defer { lock.unlock() }
        return status
    }

    /// Asks the daemon to stop and waits for `run` to return; nil when it did not within 30 s.
    func stop() -> Int32? {
        daemon.stop()
        guard finished.wait(timeout: .now() + 30) == .success else { return nil }
        finished.signal()
        return exitStatus
    }

    func send(_ request: ControlRequest) throws -> ControlReply {
        try ControlClient(path: controlPath).send(request)
    }

    /// Sends `bytes` as they are and returns the first line of the answer, decoded.
    func exchange(raw bytes: [UInt8]) throws -> ControlReply {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw SystemError("socket") }
        defer { close(descriptor) }
        guard let address = UnixSocketAddress.make(controlPath),
              UnixSocketAddress.with(address, { connect(descriptor, $0, $1) }) == 0 else { throw SystemError("connect") }
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            // The server may answer and close before it has read everything (a request too long).
            if sent < 0 { break }
            offset += sent
        }
        shutdown(descriptor, Int32(SHUT_WR))
        var answer = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !answer.contains(UInt8(ascii: "\n")) {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            answer += chunk[0..<count]
        }
        let line = answer.prefix { $0 != UInt8(ascii: "\n") }
        return try JSONDecoder().decode(ControlReply.self, from: Data(line))
    }

    /// Polls `condition` for up to `seconds`.
    func eventually(_ seconds: Double = 20, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            usleep(50_000)
        }
        return try condition()
    }
}
