import Foundation
import Logging
import SeqwallControl
import SeqwallCore
import SeqwallRules
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public struct DaemonOptions: Sendable {
    public var rulesPath: String
    public var queues: [UInt16] = [0]
    public var controlPath: String = ControlLimits.defaultSocketPath
    public var settings = QueueSettings()

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
    private var reloads = 0
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

        let queueCount = max(1, options.queues.count)
        let share = (policy.limits.states + queueCount - 1) / queueCount
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

        var finished: [DispatchSemaphore] = []
        for worker in workers {
            let done = DispatchSemaphore(value: 0)
            finished.append(done)
            let thread = Thread {
                worker.run()
                done.signal()
            }
            thread.name = "seqwall-queue-\(worker.queue)"
            thread.stackSize = 1 << 20
            thread.start()
        }

        let server: ControlServer
        do {
            server = try ControlServer(path: options.controlPath, logger: logger) { [self] request, session in
                handle(request, session: session)
            }
        } catch {
            logger.error("cannot open the control socket: \(error)")
            stopWorkers(finished)
            return 1
        }
        server.start()

        let queues = options.queues.map(String.init).joined(separator: ", ")
        logger.info("seqwall running: queue \(queues), rules \(options.rulesPath), control \(options.controlPath), \(policy.rules.count) rules, table limit \(policy.limits.states)")

        while true {
            var received: Int32 = 0
            guard sigwait(&signals, &received) == 0 else { continue }
            if received == SIGHUP {
                _ = reload()
                continue
            }
            logger.info("signal \(received == SIGTERM ? "SIGTERM" : "SIGINT"): stopping")
            break
        }
        stopping.store(true, ordering: .relaxed)
        server.stop()
        stopWorkers(finished)
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
            return .failure(error.description)
        }
        for worker in workers {
            worker.mailbox.perform { $0.tracker.replacePolicy(policy) }
        }
        reloads += 1
        logger.info("reloaded \(options.rulesPath): \(policy.rules.count) rules")
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
            visitConnections { connection, _ in if filter.matches(connection) { total += 1 } }
            return ControlReply(ok: true, count: total)
        case .list:
            var shown = 0
            var clientGone = false
            visitConnections { connection, now in
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
    private func visitConnections(_ body: (Connection, UInt64) -> Void) {
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
                for connection in chunk where connection.expiresAt > now { body(connection, now) }
                if next >= worker.tracker.table.capacity { break }
                cursor = next
            }
        }
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
                                       sendErrors: worker.adapter.sendErrors, kernel: kernel[worker.queue],
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
