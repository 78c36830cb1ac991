import Logging
import SeqwallControl
import SeqwallCore

/// Answers the control socket's requests (SeqwallControl's protocol), one small function per
/// command. A request that cannot be carried out gets a failure reply that says why; nothing
/// a client sends stops the daemon. Runs on the control server's client threads and reaches
/// the workers only through their mailboxes.
final class DaemonControl: Sendable {
    private unowned let daemon: Daemon
    private let statistics: DaemonStatistics

    /// How often a watcher collects its events.
    static let watchIntervalMilliseconds: Int32 = 50

    init(daemon: Daemon, statistics: DaemonStatistics) {
        self.daemon = daemon
        self.statistics = statistics
    }

    func handle(_ request: ControlRequest, session: ControlSession) -> ControlReply {
        let filter: CompiledFilter
        do {
            filter = try (request.filter ?? ConnectionFilter()).compiled()
        } catch {
            return .failure(error.description)
        }
        switch request.command {
        case .ping: return ControlReply(ok: true, message: "pong")
        case .reload: return daemon.reload()
        case .stats: return ControlReply(ok: true, stats: statistics.statistics())
        case .count: return count(filter)
        case .list: return list(filter, session: session)
        case .delete: return delete(filter, session: session)
        case .watch: return watch(request, filter: filter, session: session)
        case .rules: return ControlReply(ok: true, rules: daemon.rulesRecord())
        case .flush: return flush()
        case .sync:
            guard let status = daemon.sync?.status else { return .failure("seqwall runs without state sync (--sync-peer)") }
            var reply = ControlReply(ok: true)
            reply.sync = status
            return reply
        case .table:
            guard let table = request.table else { return .failure("bad request: table needs {\"table\":{\"name\":...,\"operation\":...}}") }
            return daemon.changeTable(table)
        }
    }

    private func count(_ filter: CompiledFilter) -> ControlReply {
        var total = 0
        daemon.visitConnections { _, connection, _ in if filter.matches(connection) { total += 1 } }
        return ControlReply(ok: true, count: total)
    }

    private func list(_ filter: CompiledFilter, session: ControlSession) -> ControlReply {
        var shown = 0
        var clientGone = false
        daemon.visitConnections { _, connection, now in
            guard !clientGone, filter.matches(connection) else { return }
            let line = ControlServer.encode(ConnectionLine(connection: ConnectionRecord(connection, now: now)))
            if session.emit(line) { shown += 1 } else { clientGone = true }
        }
        return ControlReply(ok: true, count: shown)
    }

    /// Says what was deleted, as conntrack -D does.
    private func delete(_ filter: CompiledFilter, session: ControlSession) -> ControlReply {
        var removed = 0
        for worker in daemon.workers {
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
    }

    /// The table is empty, the connections are not: pick them up again for a while, in every
    /// worker from the same moment. `delete` starts no grace period; it cuts.
    private func flush() -> ControlReply {
        var removed = 0
        var grace: UInt32 = 0
        let now = SystemCall.monotonicNanoseconds()
        for worker in daemon.workers {
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
        daemon.logger.info("conntrack flush: \(Counted.text(removed, "connection")) removed; picking up live connections the rules allow for \(grace) s")
        return ControlReply(ok: true, count: removed,
                            message: "live connections the rules allow are picked up for \(grace) s (set pickup grace)")
    }

    /// Streams table changes to one client until it hangs up or the daemon stops. Each worker
    /// pushes into the watcher's own ring; this thread drains them.
    private func watch(_ request: ControlRequest, filter: CompiledFilter, session: ControlSession) -> ControlReply {
        let selection: EventSelection
        do {
            selection = try request.events.map { names throws(FilterError) in try EventSelection(names: names) } ?? .all
        } catch {
            return .failure(error.description)
        }
        let queues = daemon.workers.map { worker in
            let queue = WatchQueue()
            worker.mailbox.post { $0.addWatcher(queue) }
            return (worker, queue)
        }
        defer {
            for (worker, queue) in queues { worker.mailbox.post { $0.removeWatcher(queue) } }
        }
        var shown = 0
        while !daemon.isStopping {
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
            if clientGone || session.hasHungUp(waitingMilliseconds: DaemonControl.watchIntervalMilliseconds) {
                return ControlReply(ok: true, count: shown)
            }
        }
        return ControlReply(ok: true, count: shown, message: "seqwall is stopping")
    }
}
