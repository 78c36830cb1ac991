import Foundation
import Logging
import SeqwallControl
import SeqwallCore
import SeqwallRules
import SeqwallTelemetry
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public struct DaemonOptions: Sendable {
    public var rulesPath: String
    public var queues: [UInt16] = [0]
    public var controlPath: String = ControlLimits.defaultSocketPath
    public var settings = QueueSettings()
    /// Where the connection table is kept across restarts (nil: it is not).
    public var stateFile: String?
    /// Seconds between snapshots of the table to `stateFile` while running; 0: only at exit.
    public var stateInterval: UInt32 = 10
    /// Where to serve Prometheus metrics (nil: nowhere).
    public var metricsAddress: MetricsAddress?

    public init(rulesPath: String) {
        self.rulesPath = rulesPath
    }
}

/// `seqwall run`: loads the rules, binds the queues (one worker thread each), serves the
/// control socket, and waits for signals: SIGHUP reloads, SIGTERM and SIGINT stop cleanly.
public final class Daemon: @unchecked Sendable {
    let options: DaemonOptions
    let logger: Logger
    private var workers: [QueueWorker] = []
    private let reloadLock = NSLock()
    /// Reloads by result, and whether the last one succeeded (true before any), for metrics.
    private let reloadsSucceeded = Atomic<UInt64>(0)
    private let reloadsFailed = Atomic<UInt64>(0)
    private let lastReloadSucceeded = Atomic<Bool>(true)
    private let stopping = Atomic<Bool>(false)
    var isStopping: Bool { stopping.load(ordering: .relaxed) }

    public init(options: DaemonOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// Runs until SIGTERM or SIGINT; returns the process exit status.
    public func run() -> Int32 {
        let policy: Policy
        do {
            policy = try RuleFile.load(path: options.rulesPath)
        } catch {
            for problem in error.errors { logger.error("\(problem)") }
            logger.error("not starting: \(options.rulesPath) has errors")
            return 1
        }

        // Signals are taken synchronously by this thread (sigwait); every thread started from
        // here inherits the mask, so none of them is interrupted by one.
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&signals, signal) }
        pthread_sigmask(SIG_BLOCK, &signals, nil)
        Glibc.signal(SIGPIPE, SIG_IGN)

        // Bound before the queues, so a bad address or a port in use stops the start at once.
        var metricsServer: MetricsServer?
        if let address = options.metricsAddress {
            do {
                metricsServer = try MetricsServer(address: address, logger: logger) { [self] in metricsText() }
            } catch {
                logger.error("cannot serve metrics: \(error)")
                return 1
            }
        }

        let queueCount = max(1, options.queues.count)
        let share = (policy.limits.states + queueCount - 1) / queueCount
        // Read before the queues are bound, so packets wait only for the insertions.
        let saved = loadState(maximumRecords: share * queueCount)
        do {
            for queue in options.queues {
                workers.append(try QueueWorker(queue: queue, settings: options.settings, policy: policy,
                                               capacity: share, shares: queueCount, logger: logger))
            }
        } catch {
            logger.error("cannot bind the queue: \(error)")
            workers.removeAll()
            return 1
        }
        if let saved { restore(saved) }
        let dropLogWriter = DropLogWriter(channels: workers.map(\.dropLog), logger: logger)
        dropLogWriter.start()

        var finished: [DispatchSemaphore] = []
        for worker in workers {
            let done = DispatchSemaphore(value: 0)
            finished.append(done)
            startDaemonThread(named: "seqwall-q\(worker.queue)", stackSize: 1 << 20, signalling: done) {
                worker.run()
            }
        }

        let server: ControlServer
        do {
            server = try ControlServer(path: options.controlPath, logger: logger) { [self] request, session in
                handle(request, session: session)
            }
        } catch {
            logger.error("cannot open the control socket: \(error)")
            stopWorkers(finished)
            dropLogWriter.stop()
            return 1
        }
        server.start()
        metricsServer?.start()

        let queues = options.queues.map(String.init).joined(separator: ", ")
        let metrics = options.metricsAddress.map { ", metrics http://\($0)/metrics" } ?? ""
        logger.info("seqwall running: queue \(queues), rules \(options.rulesPath), control \(options.controlPath)\(metrics), \(policy.rules.count) rules, table limit \(policy.limits.states), drop log \(policy.dropLog.rawValue)")

        let snapshotInterval = UInt64(options.stateInterval) * 1_000_000_000
        var nextSnapshot = SystemCall.monotonicNanoseconds() &+ snapshotInterval
        while true {
            var received: Int32 = 0
            if options.stateFile != nil && snapshotInterval > 0 {
                // Snapshots between signals, so a SIGKILL loses at most one interval.
                let now = SystemCall.monotonicNanoseconds()
                if now >= nextSnapshot {
                    saveState()
                    nextSnapshot = SystemCall.monotonicNanoseconds() &+ snapshotInterval
                    continue
                }
                let left = nextSnapshot - now
                var timeout = timespec(tv_sec: Int(left / 1_000_000_000), tv_nsec: Int(left % 1_000_000_000))
                received = sigtimedwait(&signals, nil, &timeout)
                guard received > 0 else { continue }   // the timeout (EAGAIN), or EINTR
            } else {
                guard sigwait(&signals, &received) == 0 else { continue }
            }
            if received == SIGHUP {
                _ = reload()
                continue
            }
            logger.info("signal \(received == SIGTERM ? "SIGTERM" : "SIGINT"): stopping")
            break
        }
        stopping.store(true, ordering: .relaxed)
        server.stop()
        metricsServer?.stop()
        // While the workers still hold the queues: the table as it is at the last packet
        // seqwall decides. After this, the kernel lets packets by (--queue-bypass).
        saveState()
        stopWorkers(finished)
        // After the workers: every drop they logged is written, and the summaries.
        dropLogWriter.stop()
        logger.info("seqwall stopped; queues released")
        return 0
    }

    private func stopWorkers(_ finished: [DispatchSemaphore]) {
        for worker in workers { worker.mailbox.post { $0.stop() } }
        for done in finished { done.wait() }
        workers.removeAll()
    }

    /// Parses and checks the rule files again and swaps the policy in every worker, between
    /// packets. A file with errors changes nothing.
    func reload() -> ControlReply {
        reloadLock.lock()
        defer { reloadLock.unlock() }
        let policy: Policy
        do {
            policy = try RuleFile.load(path: options.rulesPath)
        } catch {
            for problem in error.errors { logger.error("reload refused: \(problem)") }
            reloadsFailed.add(1, ordering: .relaxed)
            lastReloadSucceeded.store(false, ordering: .relaxed)
            return .failure(error.description)
        }
        for worker in workers {
            worker.mailbox.perform { $0.replacePolicy(policy) }
        }
        reloadsSucceeded.add(1, ordering: .relaxed)
        lastReloadSucceeded.store(true, ordering: .relaxed)
        logger.info("reloaded \(options.rulesPath): \(policy.rules.count) rules, drop log \(policy.dropLog.rawValue)")
        return ControlReply(ok: true, message: "reloaded \(options.rulesPath)")
    }

    // MARK: Control requests

    /// Connections examined per visit to a worker: keeps each visit to a few milliseconds.
    static let listChunkSlots = 16384

    func handle(_ request: ControlRequest, session: ControlSession) -> ControlReply {
        let filter: CompiledFilter
        do {
            filter = try (request.filter ?? ConnectionFilter()).compiled()
        } catch {
            return .failure(error.description)
        }
        switch request.command {
        case .ping:
            return ControlReply(ok: true, message: "pong")
        case .reload:
            return reload()
        case .stats:
            return ControlReply(ok: true, stats: statistics())
        case .count:
            var total = 0
            visitConnections { _, connection, _ in if filter.matches(connection) { total += 1 } }
            return ControlReply(ok: true, count: total)
        case .list:
            var shown = 0
            var clientGone = false
            visitConnections { _, connection, now in
                guard !clientGone, filter.matches(connection) else { return }
                let line = ControlServer.encode(ConnectionLine(connection: ConnectionRecord(connection, now: now)))
                if session.emit(line) { shown += 1 } else { clientGone = true }
            }
            return ControlReply(ok: true, count: shown)
        case .delete:
            // Say what was deleted, as conntrack -D does.
            var removed = 0
            for worker in workers {
                let (gone, now) = worker.mailbox.perform { worker -> ([Connection], UInt64) in
                    var gone: [Connection] = []
                    worker.tracker.removeConnections { connection in
                        guard filter.matches(connection) else { return false }
                        gone.append(connection)
                        return true
                    }
                    return (gone, SystemCall.monotonicNanoseconds())
                }
                for connection in gone {
                    _ = session.emit(ControlServer.encode(ConnectionLine(connection: ConnectionRecord(connection, now: now))))
                }
                removed += gone.count
            }
            return ControlReply(ok: true, count: removed)
        case .watch:
            return watch(session: session)
        case .flush:
            var removed = 0
            for worker in workers {
                removed += worker.mailbox.perform { $0.tracker.removeConnections { _ in true } }
            }
            return ControlReply(ok: true, count: removed)
        }
    }

    /// How often a watcher collects its events.
    static let watchIntervalMilliseconds: Int32 = 50

    /// Streams table changes to one client until it hangs up or the daemon stops. Each worker
    /// pushes into the watcher's own ring; this thread drains them.
    private func watch(session: ControlSession) -> ControlReply {
        let queues = workers.map { worker in
            let queue = WatchQueue()
            worker.mailbox.post { $0.addWatcher(queue) }
            return (worker, queue)
        }
        defer {
            for (worker, queue) in queues { worker.mailbox.post { $0.removeWatcher(queue) } }
        }
        var shown = 0
        while !isStopping {
            let now = SystemCall.monotonicNanoseconds()
            var lost: UInt64 = 0
            var clientGone = false
            for (_, queue) in queues {
                queue.drain { event in
                    guard !clientGone else { return }
                    let line = ControlServer.encode(WatchLine(watch: EventRecord(event, now: now)))
                    if session.emit(line) { shown += 1 } else { clientGone = true }
                }
                lost += queue.takeLost()
            }
            if lost > 0 && !clientGone { clientGone = !session.emit(ControlServer.encode(WatchLine(lost: lost))) }
            if clientGone || session.hasHungUp(waitingMilliseconds: Daemon.watchIntervalMilliseconds) {
                return ControlReply(ok: true, count: shown)
            }
        }
        return ControlReply(ok: true, count: shown, message: "seqwall is stopping")
    }

    /// Visits every connection of every worker, a chunk of slots per visit: the worker copies
    /// the chunk out and goes back to its packets while the chunk is formatted here.
    private func visitConnections(_ body: (UInt16, Connection, UInt64) -> Void) {
        for worker in workers {
            var cursor = 0
            while true {
                let (chunk, next, now) = worker.mailbox.perform { worker -> ([Connection], Int, UInt64) in
                    var chunk: [Connection] = []
                    let next = worker.tracker.table.forEachSlot(from: cursor, examining: Daemon.listChunkSlots) {
                        chunk.append($1)
                    }
                    return (chunk, next, SystemCall.monotonicNanoseconds())
                }
                for connection in chunk where connection.expiresAt > now { body(worker.queue, connection, now) }
                if next >= worker.tracker.table.capacity { break }
                cursor = next
            }
        }
    }

    // MARK: State file

    /// Reads and decodes the state file; nil (with one warning line, unless the file is
    /// simply not there) when there is nothing to restore.
    private func loadState(maximumRecords: Int) -> StateSnapshot.Loaded? {
        guard let path = options.stateFile else { return nil }
        let bytes: [UInt8]
        do {
            let maximumBytes = StateSnapshot.headerLength + maximumRecords * StateSnapshot.recordLength
            switch try StateFile.read(path: path, maximumBytes: maximumBytes) {
            case .missing:
                logger.info("no state file at \(path) yet")
                return nil
            case .contents(let contents):
                bytes = contents
            }
            return try StateSnapshot.decode(bytes, maximumRecords: maximumRecords,
                                            wallNow: SystemCall.wallClockNanoseconds(),
                                            monotonicNow: SystemCall.monotonicNanoseconds())
        } catch let problem as StateFile.Problem {
            logger.warning("state file \(path) \(problem): starting with an empty table")
        } catch let problem as StateSnapshot.DecodeError {
            logger.warning("state file \(path) is \(problem): starting with an empty table")
        } catch {
            logger.warning("state file \(path): \(error): starting with an empty table")
        }
        return nil
    }

    /// Puts each saved connection into the worker of the queue it came through. Called before
    /// the worker threads start, so the trackers are touched from this thread only.
    private func restore(_ saved: StateSnapshot.Loaded) {
        let byQueue = Dictionary(uniqueKeysWithValues: workers.map { ($0.queue, $0) })
        var restored = 0, unserved = 0, duplicates = 0, full = 0, expired = saved.expired
        let now = SystemCall.monotonicNanoseconds()
        for entry in saved.entries {
            guard let worker = byQueue[entry.queue] else {
                unserved += 1
                continue
            }
            switch worker.tracker.restore(entry.connection, now: now) {
            case .restored: restored += 1
            case .expired: expired += 1
            case .duplicate: duplicates += 1
            case .tableFull: full += 1
            }
        }
        var line = "restored \(restored) connections from \(options.stateFile ?? "")"
        line += " (snapshot \(saved.downtime / 1_000_000) ms old; \(expired) expired meanwhile"
        if unserved > 0 { line += ", \(unserved) of queues not served now left out" }
        if duplicates > 0 { line += ", \(duplicates) duplicates left out" }
        if full > 0 { line += ", \(full) left out: the table is full" }
        logger.info("\(line))")
    }

    /// Writes every worker's connections to the state file. A failure is logged; the file
    /// then keeps the last snapshot that was written whole.
    private func saveState() {
        guard let path = options.stateFile else { return }
        let started = SystemCall.monotonicNanoseconds()
        var encoder = StateSnapshot.Encoder(wallTime: SystemCall.wallClockNanoseconds(), monotonicNow: started)
        visitConnections { queue, connection, _ in encoder.append(connection, queue: queue) }
        let count = encoder.count
        do {
            try StateFile.write(encoder.finish(), to: path)
            let elapsed = (SystemCall.monotonicNanoseconds() - started) / 1_000_000
            logger.debug("state file \(path): \(count) connections written in \(elapsed) ms")
        } catch {
            logger.error("state file \(path): \(error)")
        }
    }

    /// The metrics endpoint's text: each worker's figures (through its mailbox), the kernel's
    /// per-queue figures, the reloads.
    private func metricsText() -> String {
        let kernel = KernelQueueStatistics.read()
        var metrics = DaemonMetrics()
        metrics.queues = workers.map { worker in
            var queue = worker.mailbox.perform { $0.metrics() }
            queue.kernel = kernel[worker.queue]
            queue.failOpen = options.settings.failOpen
            queue.dropLogSuppressed = worker.dropLog.suppressed
            queue.dropLogLost = worker.dropLog.lost
            return queue
        }
        metrics.reloadsSucceeded = reloadsSucceeded.load(ordering: .relaxed)
        metrics.reloadsFailed = reloadsFailed.load(ordering: .relaxed)
        metrics.lastReloadSucceeded = lastReloadSucceeded.load(ordering: .relaxed)
        return metrics.text
    }

    private func statistics() -> StatsRecord {
        let kernel = KernelQueueStatistics.read()
        let inputs = workers.map { worker in
            worker.mailbox.perform { worker in
                StatsRecord.QueueInput(queue: worker.queue, counters: worker.tracker.counters,
                                       connections: worker.tracker.table.count,
                                       halfOpen: worker.tracker.halfOpenCount,
                                       limit: worker.tracker.table.limit,
                                       enobufs: worker.adapter.enobufs,
                                       malformedMessages: worker.adapter.malformedMessages,
                                       sendErrors: worker.adapter.sendErrors,
                                       rejectAnswers: worker.adapter.rejectAnswers,
                                       rejectAnswersLimited: worker.adapter.rejectAnswersLimited,
                                       rejectAnswersFailed: worker.adapter.rejectAnswersFailed,
                                       kernel: kernel[worker.queue],
                                       halfOpenLimit: worker.tracker.limiter.halfOpenLimit,
                                       sources: worker.tracker.limiter.sources.map { sources in
                                           StatsRecord.Sources(active: sources.activeEntries(now: SystemCall.monotonicNanoseconds()),
                                                               capacity: sources.capacity, evictions: sources.evictions)
                                       })
            }
        }
        return StatsRecord(queues: inputs)
    }
}
