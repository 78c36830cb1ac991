import Foundation
import Logging
import SeqwallControl
import SeqwallCore
import SeqwallRules
import SeqwallTelemetry
import SeqwallVersion
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
    /// Seconds a queue may go without a packet before the rulesets are read again for a rule
    /// that sends to it (DiversionWatch); 0: never look.
    public var idleWarningSeconds: UInt32 = 60

    public init(rulesPath: String) {
        self.rulesPath = rulesPath
    }
}

/// `seqwall run`: loads the rules, binds the queues (one worker thread each), serves the
/// control socket, and waits for signals: SIGHUP reloads, SIGTERM and SIGINT stop cleanly.
public final class Daemon: @unchecked Sendable {
    let options: DaemonOptions
    let logger: Logger
    var workers: [QueueWorker] = []
    private let reloadLock = NSLock()
    let status = DaemonStatus()
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

    func withReloadLock<T>(_ body: () -> T) -> T {
        reloadLock.lock()
        defer { reloadLock.unlock() }
        return body()
    }

    /// Runs until SIGTERM or SIGINT; returns the process exit status: 0 after a clean stop, 1
    /// when it could not start or when the state file could not be written at the stop (the
    /// next start would restore an older table, or none).
    public func run() -> Int32 {
        let policy: Policy
        do {
            policy = try RuleFile.load(path: options.rulesPath)
        } catch {
            for problem in error.errors { logger.error("\(problem)") }
            logger.error("not starting: \(options.rulesPath) has errors")
            return 1
        }
        status.policyLoaded(policy)
        if let path = options.stateFile { status.stateFileConfigured(path: path) }

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
        if let saved {
            restore(saved)
        } else {
            // Nothing says which connections are live: pick up those the rules allow for a
            // while, so that a start does not cut them (the session it was typed in included).
            // The threads have not started: the trackers are this thread's alone still.
            let now = SystemCall.monotonicNanoseconds()
            for worker in workers { worker.tracker.startPickupGrace(now: now) }
            if policy.pickupGrace > 0 {
                logger.info("no usable state: picking up live connections the rules allow for \(policy.pickupGrace) s (set pickup grace)")
            }
        }
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
        logger.info("seqwall \(BuildVersion.description) running: queue \(queues), rules \(options.rulesPath), control \(options.controlPath)\(metrics), \(Counted.text(policy.rules.count, "rule")), table limit \(policy.limits.states), drop log \(policy.dropLog.rawValue)")

        var diversionWatch: DiversionWatch?
        if options.idleWarningSeconds > 0 {
            let watch = DiversionWatch(queues: options.queues, idleSeconds: options.idleWarningSeconds, logger: logger)
            watch.start(now: SystemCall.monotonicNanoseconds())
            status.setWarnings(watch.warnings)
            diversionWatch = watch
        }

        // Snapshots between signals, so a SIGKILL loses at most one interval; the diversion
        // watch between them too.
        let snapshotInterval = UInt64(options.stateInterval) * 1_000_000_000
        let snapshots = options.stateFile != nil && snapshotInterval > 0
        var nextSnapshot = snapshots ? SystemCall.monotonicNanoseconds() &+ snapshotInterval : UInt64.max
        var nextCheck = diversionWatch.map { SystemCall.monotonicNanoseconds() &+ $0.interval } ?? UInt64.max
        while true {
            var received: Int32 = 0
            let now = SystemCall.monotonicNanoseconds()
            if now >= nextSnapshot {
                saveState()
                nextSnapshot = SystemCall.monotonicNanoseconds() &+ snapshotInterval
                continue
            }
            if let diversionWatch, now >= nextCheck {
                let packets = Dictionary(uniqueKeysWithValues: workers.map { worker in
                    (worker.queue, worker.mailbox.perform { $0.tracker.counters.seen })
                })
                diversionWatch.check(packets: packets, now: now)
                status.setWarnings(diversionWatch.warnings)
                nextCheck = SystemCall.monotonicNanoseconds() &+ diversionWatch.interval
                continue
            }
            let wake = min(nextSnapshot, nextCheck)
            if wake != UInt64.max {
                let left = wake - now
                var timeout = timespec(tv_sec: Int(left / 1_000_000_000), tv_nsec: Int(left % 1_000_000_000))
                received = sigtimedwait(&signals, nil, &timeout)
                guard received > 0 else { continue }   // the timeout (EAGAIN), or EINTR
            } else {
                guard sigwait(&signals, &received) == 0 else { continue }
            }
            if received == SIGHUP {
                restoreControlSocket(server)
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
        let finalSaved = saveState()
        stopWorkers(finished)
        // After the workers: every drop they logged is written, and the summaries.
        dropLogWriter.stop()
        guard finalSaved else {
            logger.error("seqwall stopped; queues released; the table was NOT saved to \(options.stateFile ?? ""): the next start restores an older snapshot or none")
            return 1
        }
        logger.info("seqwall stopped; queues released")
        return 0
    }

    /// SIGHUP: a control socket whose file was removed is bound again, so the CLI reaches
    /// the daemon without a restart.
    private func restoreControlSocket(_ server: ControlServer) {
        do {
            if try server.restoreSocketFile() {
                logger.notice("control socket \(options.controlPath) was gone: listening there again")
            }
        } catch {
            logger.error("control socket \(options.controlPath) is gone and cannot be made again: \(error)")
        }
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
            status.reloaded(error: error.description)
            return .failure(error.description)
        }
        for worker in workers {
            worker.mailbox.perform { $0.replacePolicy(policy) }
        }
        status.policyLoaded(policy)
        status.reloaded(error: nil)
        reloadsSucceeded.add(1, ordering: .relaxed)
        lastReloadSucceeded.store(true, ordering: .relaxed)
        logger.info("reloaded \(options.rulesPath): \(Counted.text(policy.rules.count, "rule")), drop log \(policy.dropLog.rawValue)")
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
            let selection: EventSelection
            do {
                selection = try request.events.map { names throws(FilterError) in try EventSelection(names: names) } ?? .all
            } catch {
                return .failure(error.description)
            }
            return watch(session: session, filter: filter, selection: selection)
        case .rules:
            return ControlReply(ok: true, rules: rulesRecord())
        case .flush:
            // The table is empty, the connections are not: pick them up again for a while, in
            // every worker from the same moment. `delete` starts no grace period; it cuts.
            var removed = 0
            var grace: UInt32 = 0
            let now = SystemCall.monotonicNanoseconds()
            for worker in workers {
                let (count, seconds) = worker.mailbox.perform { worker -> (Int, UInt32) in
                    // Counted as `count` and `list` see the table: an entry past its expiry
                    // that the wheel has not reaped yet goes too, but was never shown.
                    var live = 0
                    let current = SystemCall.monotonicNanoseconds()
                    _ = worker.tracker.removeConnections { connection in
                        if connection.expiresAt > current { live += 1 }
                        return true
                    }
                    let count = live
                    worker.tracker.startPickupGrace(now: now)
                    return (count, worker.tracker.policy.pickupGrace)
                }
                removed += count
                grace = max(grace, seconds)
            }
            guard grace > 0 else { return ControlReply(ok: true, count: removed) }
            logger.info("conntrack flush: \(Counted.text(removed, "connection")) removed; picking up live connections the rules allow for \(grace) s")
            return ControlReply(ok: true, count: removed,
                                message: "live connections the rules allow are picked up for \(grace) s (set pickup grace)")
        }
    }

    /// How often a watcher collects its events.
    static let watchIntervalMilliseconds: Int32 = 50

    /// Streams table changes to one client until it hangs up or the daemon stops. Each worker
    /// pushes into the watcher's own ring; this thread drains them.
    private func watch(session: ControlSession, filter: CompiledFilter, selection: EventSelection) -> ControlReply {
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
                    guard !clientGone, selection.kinds.contains(event.kind), filter.matches(event.connection) else { return }
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
            var cursor = ConnectionCursor.start
            while true {
                let (chunk, next, now) = worker.mailbox.perform { worker -> ([Connection], ConnectionCursor?, UInt64) in
                    var chunk: [Connection] = []
                    let next = worker.tracker.forEachConnection(from: cursor, examining: Daemon.listChunkSlots) {
                        chunk.append($0)
                    }
                    return (chunk, next, SystemCall.monotonicNanoseconds())
                }
                for connection in chunk where connection.expiresAt > now { body(worker.queue, connection, now) }
                guard let next else { break }
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
        var line = "restored \(Counted.text(restored, "connection")) from \(options.stateFile ?? "")"
        line += " (snapshot \(saved.downtime / 1_000_000) ms old; \(expired) expired meanwhile"
        if unserved > 0 { line += ", \(unserved) of queues not served now left out" }
        if duplicates > 0 { line += ", \(Counted.text(duplicates, "duplicate")) left out" }
        if full > 0 { line += ", \(full) left out: the table is full" }
        logger.info("\(line))")
    }

    /// Writes every worker's connections to the state file; false when that failed. A failure
    /// is logged (and shown by stats and the metrics); the file then keeps the last snapshot
    /// that was written whole. The first success after failures says so in the log.
    @discardableResult
    private func saveState() -> Bool {
        guard let path = options.stateFile else { return true }
        let started = SystemCall.monotonicNanoseconds()
        var encoder = StateSnapshot.Encoder(wallTime: SystemCall.wallClockNanoseconds(), monotonicNow: started)
        visitConnections { queue, connection, _ in encoder.append(connection, queue: queue) }
        let count = encoder.count
        do {
            try StateFile.write(encoder.finish(), to: path)
            let elapsed = (SystemCall.monotonicNanoseconds() - started) / 1_000_000
            logger.debug("state file \(path): \(Counted.text(count, "connection")) written in \(elapsed) ms")
            if let before = status.stateFileWritten(error: nil), !before.ok {
                logger.notice("state file \(path): written again (\(Counted.text(count, "connection"))) after \(Counted.text(Int(before.failures), "failed write")); last error: \(before.last_error ?? "")")
            }
            return true
        } catch {
            logger.error("state file \(path): \(error)")
            status.stateFileWritten(error: "\(error)")
            return false
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
        metrics.stateFile = status.stateFileHealth
        metrics.uptimeSeconds = status.uptimeSeconds
        metrics.version = BuildVersion.version
        metrics.commit = BuildVersion.commit
        metrics.pickupGraceEnds = pickupGrace()?.ends ?? 0
        return metrics.text
    }

    private func statistics() -> StatsRecord {
        let kernel = KernelQueueStatistics.read()
        let inputs = workers.map { worker in
            worker.mailbox.perform { worker in
                StatsRecord.QueueInput(queue: worker.queue, counters: worker.tracker.counters,
                                       connections: worker.tracker.connectionCount,
                                       halfOpen: worker.tracker.halfOpenCount,
                                       limit: worker.tracker.connectionLimit,
                                       enobufs: worker.adapter.enobufs,
                                       malformedMessages: worker.adapter.malformedMessages,
                                       sendErrors: worker.adapter.sendErrors,
                                       rejectAnswers: worker.adapter.rejectAnswers,
                                       rejectAnswersLimited: worker.adapter.rejectAnswersLimited,
                                       rejectAnswersFailed: worker.adapter.rejectAnswersFailed,
                                       kernel: kernel[worker.queue],
                                       halfOpenLimit: worker.tracker.halfOpenLimit,
                                       sources: worker.tracker.sourceTableUsage(now: SystemCall.monotonicNanoseconds()))
            }
        }
        var record = StatsRecord(queues: inputs)
        record.uptime_seconds = status.uptimeSeconds
        record.last_reload = status.lastReload
        record.rule_drops = ruleDrops()
        record.state_file = status.stateFileHealth
        record.warnings = status.currentWarnings
        record.version = BuildVersion.version
        record.commit = BuildVersion.commit
        if let grace = pickupGrace() {
            record.pickup?.grace_ends = grace.ends
            record.pickup?.grace_seconds_left = grace.secondsLeft
        }
        return record
    }

    /// The latest end of the workers' pickup grace periods, in seconds since 1970, and the
    /// seconds left of it; nil when no worker has one.
    private func pickupGrace() -> (ends: UInt64, secondsLeft: UInt64)? {
        let ends = workers.compactMap { worker in worker.mailbox.perform { $0.tracker.pickupGraceEnds } }.max()
        guard let ends else { return nil }
        let monotonicNow = SystemCall.monotonicNanoseconds()
        let wallNow = SystemCall.wallClockNanoseconds()
        let wallEnds = ends >= monotonicNow ? wallNow &+ (ends - monotonicNow)
                                            : wallNow &- min(wallNow, monotonicNow - ends)
        let left = ends > monotonicNow ? (ends - monotonicNow + 999_999_999) / 1_000_000_000 : 0
        return (wallEnds / 1_000_000_000, left)
    }
}
