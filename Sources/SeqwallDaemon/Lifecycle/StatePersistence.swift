import Logging
import SeqwallControl
import SeqwallCore

/// The connection table kept across restarts (`seqwall run --state-file PATH`): read at the
/// start, written every `--state-interval` seconds and at the stop. A write that fails is
/// logged and shown by `stats` and the metrics (DaemonStatus); the file then keeps the last
/// snapshot that was written whole (StateFile writes beside it and renames).
final class StatePersistence {
    private unowned let daemon: Daemon
    private let path: String?
    private let interval: UInt64
    private var logger: Logger { daemon.logger }
    /// When the next scheduled snapshot is due (monotonic); never without a file or interval.
    private(set) var nextSnapshot = UInt64.max

    init(daemon: Daemon) {
        self.daemon = daemon
        path = daemon.options.stateFile
        interval = UInt64(daemon.options.stateInterval) * 1_000_000_000
        if let path {
            daemon.status.stateFileConfigured(path: path)
            if interval > 0 { nextSnapshot = SystemCall.monotonicNanoseconds() &+ interval }
        }
    }

    /// Reads and decodes the state file; nil (with one warning line, unless the file is
    /// simply not there) when there is nothing to restore.
    func load(maximumRecords: Int) -> StateSnapshot.Loaded? {
        guard let path else { return nil }
        let bytes: [UInt8]
        do {
            let maximumBytes = StateSnapshot.headerLength + maximumRecords * StateSnapshot.recordLength
                + StateSnapshot.maximumTableSectionLength + 4 + maximumRecords * (4 + StateSnapshot.proxyStateLength)
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
    func restore(_ saved: StateSnapshot.Loaded) {
        let byQueue = Dictionary(uniqueKeysWithValues: daemon.workers.map { ($0.queue, $0) })
        var restored = 0, unserved = 0, duplicates = 0, full = 0, expired = saved.expired
        let now = SystemCall.monotonicNanoseconds()
        for entry in saved.entries {
            guard let worker = byQueue[entry.queue] else {
                unserved += 1
                continue
            }
            switch worker.tracker.restore(entry.connection, proxy: entry.proxy, now: now) {
            case .restored: restored += 1
            case .expired: expired += 1
            case .duplicate: duplicates += 1
            case .tableFull: full += 1
            }
        }
        var line = "restored \(Counted.text(restored, "connection")) from \(path ?? "")"
        line += " (snapshot \(saved.downtime / 1_000_000) ms old; \(expired) expired meanwhile"
        if unserved > 0 { line += ", \(unserved) of queues not served now left out" }
        if duplicates > 0 { line += ", \(Counted.text(duplicates, "duplicate")) left out" }
        if full > 0 { line += ", \(full) left out: the table is full" }
        logger.info("\(line))")
    }

    /// The companion file of overload deadlines (Daemon+Overload.swift), beside the state
    /// file: a persist table's entries are in the state file, their deadlines here.
    static let expiriesSuffix = ".expiries"

    /// Files the overload deadlines saved with the state file, after its tables are in force.
    func restoreOverloadExpiries() {
        guard let path else { return }
        do {
            guard case .contents(let bytes) = try StateFile.read(path: path + StatePersistence.expiriesSuffix,
                                                                  maximumBytes: StateSnapshot.maximumTableSectionLength) else { return }
            let filed = daemon.restoreOverloadExpiries(String(decoding: bytes, as: UTF8.self))
            if filed > 0 { logger.info("restored \(Counted.text(filed, "overload deadline")) from \(path)\(StatePersistence.expiriesSuffix)") }
        } catch {
            logger.warning("state file \(path)\(StatePersistence.expiriesSuffix) \(error): overload entries keep no deadline")
        }
    }

    /// The periodic snapshot: writes, and schedules the next one an interval after this one.
    func saveOnSchedule() {
        save()
        nextSnapshot = SystemCall.monotonicNanoseconds() &+ interval
    }

    /// Writes every worker's connections to the state file; false when that failed. The first
    /// success after failures says so in the log.
    @discardableResult
    func save() -> Bool {
        guard let path else { return true }
        let started = SystemCall.monotonicNanoseconds()
        var encoder = StateSnapshot.Encoder(wallTime: SystemCall.wallClockNanoseconds(), monotonicNow: started)
        daemon.visitConnections { queue, connection, proxy, _ in encoder.append(connection, queue: queue, proxy: proxy) }
        let (tables, expiries) = daemon.withReloadLock { (daemon.persistentTableChanges(), daemon.overloadExpiriesText()) }
        encoder.tables = tables
        let count = encoder.count
        do {
            try StateFile.write(encoder.finish(), to: path)
            // Written second: a stop between the two leaves deadlines of the last snapshot,
            // which at worst delete an entry the newer file still holds on time or late. No
            // deadline pending: no file (an old one would only be read for nothing).
            if expiries.isEmpty {
                _ = SystemCall.unlink(path + StatePersistence.expiriesSuffix)
            } else {
                try StateFile.write(Array(expiries.utf8), to: path + StatePersistence.expiriesSuffix)
            }
            let elapsed = (SystemCall.monotonicNanoseconds() - started) / 1_000_000
            logger.debug("state file \(path): \(Counted.text(count, "connection")) written in \(elapsed) ms")
            if let before = daemon.status.stateFileWritten(error: nil), !before.ok {
                logger.notice("state file \(path): written again (\(Counted.text(count, "connection"))) after \(Counted.text(Int(before.failures), "failed write")); last error: \(before.last_error ?? "")")
            }
            return true
        } catch {
            logger.error("state file \(path): \(error)")
            daemon.status.stateFileWritten(error: "\(error)")
            return false
        }
    }
}
