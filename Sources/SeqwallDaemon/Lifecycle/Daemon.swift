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

/// `seqwall run`: loads the rules, binds the queues (one worker thread each), serves the
/// control socket and the metrics, and waits for signals: SIGHUP reloads, SIGTERM and SIGINT
/// (or `stop()`) stop cleanly. What is asked of it is answered by DaemonControl, the figures it
/// shows are assembled by DaemonStatistics, and the table kept across restarts by
/// StatePersistence; this type starts, runs and stops them.
public final class Daemon: @unchecked Sendable {
    let options: DaemonOptions
    let logger: Logger
    var workers: [QueueWorker] = []
    /// Whether every queue was bound copying whole packets, as `synproxy` rules need when no
    /// `--synproxy-queue` is named (Daemon+SynProxy.swift); set at start, before any reload.
    var copiesWholePackets = false
    /// The SYN cookie secret every worker's keys come from (Daemon+SynProxy.swift).
    var cookieSecret = SynCookieSecret.random()
    /// The state sync with the peer (`--sync-peer`), nil without one.
    private(set) var sync: SyncService?
    let status = DaemonStatus()
    /// The tables as the rule files define them, before `seqwall table` changed any (Daemon+Tables);
    /// under the reload lock.
    var tableDefinitions: [AddressTable] = []
    /// Deadlines of entries overloads added with `expire`, and the overloads' figures
    /// (Daemon+Overload.swift); under the reload lock.
    var overloadExpiries = OverloadExpiries()
    var overloadFigures = StatsRecord.Overload()
    private var workersFinished: [DispatchSemaphore] = []
    private let reloadLock = NSLock()
    private let stopping = Atomic<Bool>(false)
    /// The thread in `run`, which takes the signals, and whether `stop()` came before it did.
    private let runThread = Mutex<(thread: pthread_t?, stopRequested: Bool)>((nil, false))
    var isStopping: Bool { stopping.load(ordering: .relaxed) }

    /// Connections examined per visit to a worker: keeps each visit to a few milliseconds.
    static let listChunkSlots = 16384

    /// Makes the worker of one queue, with its share of the table: on the kernel's NFQUEUE in
    /// `seqwall run`, on a fake queue in tests.
    typealias WorkerFactory = (_ queue: UInt16, _ settings: QueueSettings, _ policy: Policy, _ capacity: Int,
                               _ shares: Int) throws(SystemError) -> QueueWorker
    private let makeWorker: WorkerFactory?

    public convenience init(options: DaemonOptions, logger: Logger) {
        self.init(options: options, logger: logger, makeWorker: nil)
    }

    /// `makeWorker` nil: each queue's worker is bound to the kernel's queue.
    init(options: DaemonOptions, logger: Logger, makeWorker: WorkerFactory?) {
        self.options = options
        self.logger = logger
        self.makeWorker = makeWorker
    }

    /// Runs until SIGTERM, SIGINT or `stop()`; returns the process exit status: 0 after a clean
    /// stop, 1 when it could not start or when the state file could not be written at the stop
    /// (the next start would restore an older table, or none).
    public func run() -> Int32 {
        var signals = takeSignals()
        defer { runThread.withLock { $0 = (nil, false) } }
        let persistence = StatePersistence(daemon: self)
        let statistics = DaemonStatistics(daemon: self)
        let policy: Policy
        let metricsServer: MetricsServer?
        let dropLogWriter: DropLogWriter
        let controlServer: ControlServer
        do {
            policy = try loadRules()
            metricsServer = try bindMetrics(statistics)
            sync = try openSync()
            if let sync { cookieSecret = sync.cookieSecret }
            try startWorkers(policy: policy, persistence: persistence)
            dropLogWriter = DropLogWriter(channels: workers.map(\.dropLog), logger: logger)
            dropLogWriter.start()
            controlServer = try openControlSocket(DaemonControl(daemon: self, statistics: statistics), dropLogWriter)
        } catch {
            return 1
        }
        controlServer.start()
        metricsServer?.start()
        sync?.start()
        logStarted(policy)
        waitForStop(&signals, controlServer: controlServer, persistence: persistence)
        return shutDown(controlServer: controlServer, metricsServer: metricsServer, persistence: persistence,
                        dropLogWriter: dropLogWriter)
    }

    /// Makes `run` stop as SIGTERM does; callable from any thread, before `run` too.
    public func stop() {
        runThread.withLock { state in
            state.stopRequested = true
            if let thread = state.thread { SystemCall.signalThread(thread, SIGTERM) }
        }
    }

    /// Parses and checks the rule files again and swaps the policy in every worker, between
    /// packets. A file with errors changes nothing.
    func reload() -> ControlReply {
        withReloadLock {
            let loaded: Policy
            let warnings: [RuleWarning]
            do throws(RuleErrors) {
                let (parsed, found) = try RuleFile.loadWithWarnings(path: options.rulesPath,
                                                                    tableRegionProvider: HugePageRegions.provider)
                (loaded, warnings) = (try checkingSynProxy(parsed), found)
            } catch {
                for problem in error.errors { logger.error("reload refused: \(problem)") }
                status.reloaded(error: error.description)
                return .failure(error.description)
            }
            let policy = applyingTableChanges(persistentTableChanges(), to: loaded)
            // Every worker holds the policy in force: one plan serves them all.
            let carry = RuleCounterCarry(from: status.currentPolicy.policy.rules, to: policy.rules)
            for worker in workers {
                worker.mailbox.perform { $0.replacePolicy(policy, carry: carry) }
            }
            status.policyLoaded(policy)
            status.reloaded(error: nil)
            logger.info("reloaded \(options.rulesPath): \(Counted.text(policy.rules.count, "rule")), drop log \(policy.dropLog.rawValue)")
            for warning in warnings { logger.warning("\(warning)") }
            return ControlReply(ok: true, message: (["reloaded \(options.rulesPath)"] + warnings.map(\.description))
                .joined(separator: "\n"))
        }
    }

    func withReloadLock<T>(_ body: () -> T) -> T {
        reloadLock.lock()
        defer { reloadLock.unlock() }
        return body()
    }

    /// Visits every connection of every worker, a chunk of slots per visit: the worker copies
    /// the chunk out and goes back to its packets while the chunk is formatted here.
    func visitConnections(_ body: (UInt16, Connection, UInt64) -> Void) {
        Daemon.visitConnections(of: workers) { queue, connection, _, now in body(queue, connection, now) }
    }

    /// `visitConnections` with each proxied connection's SYN proxy state (the state file).
    func visitConnections(_ body: (UInt16, Connection, SynProxyState?, UInt64) -> Void) {
        Daemon.visitConnections(of: workers, body)
    }

    /// `visitConnections` over `workers` (the state sync's bulk too).
    static func visitConnections(of workers: [QueueWorker], _ body: (UInt16, Connection, SynProxyState?, UInt64) -> Void) {
        for worker in workers {
            var cursor = ConnectionCursor.start
            while true {
                let (chunk, next, now) = worker.mailbox.perform {
                    worker -> ([(Connection, SynProxyState?)], ConnectionCursor?, UInt64) in
                    var chunk: [(Connection, SynProxyState?)] = []
                    let next = worker.tracker.forEachConnection(from: cursor, examining: Daemon.listChunkSlots) {
                        chunk.append(($0, $1))
                    }
                    return (chunk, next, SystemCall.monotonicNanoseconds())
                }
                for (connection, proxy) in chunk where connection.expiresAt > now {
                    body(worker.queue, connection, proxy, now)
                }
                guard let next else { break }
                cursor = next
            }
        }
    }

    // MARK: Starting

    /// Thrown by a start step that has logged why the daemon does not start.
    private struct NotStarting: Error {}

    /// Signals are taken synchronously by this thread (sigwait); every thread started from
    /// here inherits the mask, so none of them is interrupted by one.
    private func takeSignals() -> sigset_t {
        var signals = sigset_t()
        sigemptyset(&signals)
        for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&signals, signal) }
        SystemCall.blockSignals(&signals)
        SystemCall.ignoreSignal(SIGPIPE)
        runThread.withLock { state in
            state.thread = pthread_self()
            // Blocked now, so it waits for the sigwait below.
            if state.stopRequested { SystemCall.signalThread(pthread_self(), SIGTERM) }
        }
        return signals
    }

    private func loadRules() throws(NotStarting) -> Policy {
        do {
            let (parsed, warnings) = try RuleFile.loadWithWarnings(path: options.rulesPath,
                                                                   tableRegionProvider: HugePageRegions.provider)
            let policy = parsed
            for warning in warnings { logger.warning("\(warning)") }
            status.policyLoaded(policy)
            return policy
        } catch {
            for problem in error.errors { logger.error("\(problem)") }
            logger.error("not starting: \(options.rulesPath) has errors")
            throw NotStarting()
        }
    }

    /// Bound before the queues, so a bad address or a port in use stops the start at once.
    private func bindMetrics(_ statistics: DaemonStatistics) throws(NotStarting) -> MetricsServer? {
        guard let address = options.metricsAddress else { return nil }
        do {
            return try MetricsServer(address: address, logger: logger) { statistics.metricsText() }
        } catch {
            logger.error("cannot serve metrics: \(error)")
            throw NotStarting()
        }
    }

    /// Binds every queue, fills the tables from the state file (or starts the pickup grace)
    /// and starts a thread for each worker.
    private func startWorkers(policy defined: Policy, persistence: StatePersistence) throws(NotStarting) {
        let queueCount = max(1, options.queues.count)
        let share = (defined.limits.states + queueCount - 1) / queueCount
        // Read before the queues are bound, so packets wait only for the insertions.
        let saved = persistence.load(maximumRecords: share * queueCount)
        let policy = withReloadLock { applyingTableChanges(saved?.tables ?? [:], to: defined) }
        status.policyLoaded(policy)
        chooseCopyRange(policy)
        do {
            for queue in options.queues {
                let settings = settings(forQueue: queue)
                if let makeWorker {
                    workers.append(try makeWorker(queue, settings, policy, share, queueCount))
                } else {
                    workers.append(try QueueWorker(queue: queue, settings: settings, policy: policy,
                                                   capacity: share, shares: queueCount, logger: logger))
                }
            }
        } catch {
            logger.error("cannot bind the queue: \(error)")
            workers.removeAll()
            throw NotStarting()
        }
        if let saved {
            persistence.restore(saved)
            persistence.restoreOverloadExpiries()
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
        sync?.attach(to: workers)
        if copiesWholePackets { handCookieKeys(started: false) }
        for worker in workers {
            let done = DispatchSemaphore(value: 0)
            workersFinished.append(done)
            startDaemonThread(named: "seqwall-q\(worker.queue)", stackSize: 1 << 20, signalling: done) {
                worker.run()
            }
        }
    }

    private func openControlSocket(_ control: DaemonControl, _ dropLogWriter: DropLogWriter) throws(NotStarting) -> ControlServer {
        do {
            return try ControlServer(path: options.controlPath, logger: logger) { request, session in
                control.handle(request, session: session)
            }
        } catch {
            logger.error("cannot open the control socket: \(error)")
            stopWorkers()
            dropLogWriter.stop()
            throw NotStarting()
        }
    }

    private func logStarted(_ policy: Policy) {
        let queues = options.queues.map(String.init).joined(separator: ", ")
        let metrics = options.metricsAddress.map { ", metrics http://\($0)/metrics" } ?? ""
        logger.info("seqwall \(BuildVersion.description) running: queue \(queues), rules \(options.rulesPath), control \(options.controlPath)\(metrics), \(Counted.text(policy.rules.count, "rule")), table limit \(policy.limits.states), drop log \(policy.dropLog.rawValue)")
    }

    // MARK: Running

    /// Takes signals until one says stop: SIGHUP reloads. Between them the state file is
    /// written (so a SIGKILL loses at most one interval) and the diversion watch looks.
    private func waitForStop(_ signals: inout sigset_t, controlServer: ControlServer, persistence: StatePersistence) {
        let diversionWatch = startDiversionWatch()
        var nextCheck = diversionWatch.map { SystemCall.monotonicNanoseconds() &+ $0.interval } ?? UInt64.max
        var nextOverloads = UInt64(0)
        var nextCookieKeys = copiesWholePackets ? Daemon.nextCookieKeys() : UInt64.max
        while true {
            let now = SystemCall.monotonicNanoseconds()
            if now >= nextCookieKeys {
                handCookieKeys(started: true)
                nextCookieKeys = Daemon.nextCookieKeys()
                continue
            }
            if now >= nextOverloads {
                if overloadsInUse { serviceOverloads() }
                nextOverloads = SystemCall.monotonicNanoseconds() &+ Daemon.overloadInterval
                continue
            }
            if now >= persistence.nextSnapshot {
                persistence.saveOnSchedule()
                continue
            }
            if let diversionWatch, now >= nextCheck {
                checkDiversion(diversionWatch, now: now)
                nextCheck = SystemCall.monotonicNanoseconds() &+ diversionWatch.interval
                continue
            }
            let wake = min(persistence.nextSnapshot, nextCheck, nextOverloads, nextCookieKeys)
            let received = SystemCall.waitForSignal(&signals, nanoseconds: wake == UInt64.max ? nil : wake - now)
            switch received {
            case 0:
                continue   // the time for the next task, or EINTR
            case SIGHUP:
                restoreControlSocket(controlServer)
                _ = reload()
            default:
                logger.info("signal \(received == SIGINT ? "SIGINT" : "SIGTERM"): stopping")
                return
            }
        }
    }

    private func startDiversionWatch() -> DiversionWatch? {
        guard options.idleWarningSeconds > 0 else { return nil }
        let watch = DiversionWatch(queues: options.queues, idleSeconds: options.idleWarningSeconds, logger: logger)
        watch.start(now: SystemCall.monotonicNanoseconds())
        status.setWarnings(watch.warnings)
        return watch
    }

    private func checkDiversion(_ watch: DiversionWatch, now: UInt64) {
        let packets = Dictionary(uniqueKeysWithValues: workers.map { worker in
            (worker.queue, worker.mailbox.perform { $0.tracker.counters.seen })
        })
        watch.check(packets: packets, now: now)
        status.setWarnings(watch.warnings)
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

    // MARK: Stopping

    private func shutDown(controlServer: ControlServer, metricsServer: MetricsServer?, persistence: StatePersistence,
                          dropLogWriter: DropLogWriter) -> Int32 {
        stopping.store(true, ordering: .relaxed)
        sync?.stop()
        controlServer.stop()
        metricsServer?.stop()
        // While the workers still hold the queues: the table as it is at the last packet
        // seqwall decides. After this, the kernel lets packets by (--queue-bypass).
        let finalSaved = persistence.save()
        stopWorkers()
        // After the workers: every drop they logged is written, and the summaries.
        dropLogWriter.stop()
        guard finalSaved else {
            logger.error("seqwall stopped; queues released; the table was NOT saved to \(options.stateFile ?? ""): the next start restores an older snapshot or none")
            return 1
        }
        logger.info("seqwall stopped; queues released")
        return 0
    }

    private func stopWorkers() {
        for worker in workers { worker.mailbox.post { $0.stop() } }
        for done in workersFinished { done.wait() }
        workersFinished.removeAll()
        workers.removeAll()
    }
}
