import Foundation
import Logging
import SeqwallControl
import SeqwallCore
import SeqwallSync
import SeqwallTelemetry
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The state sync's thread (docs/ha.md, docs/sync-protocol.md): drains the workers' rings into
/// the session, which coalesces, seals and numbers; sends and receives the UDP datagrams; hands
/// the peer's entries to every worker, a batch per mailbox post; answers the peer's bulk
/// requests with the table. The protocol itself is SeqwallSync's SyncSession.
final class SyncService: @unchecked Sendable {
    let options: SyncOptions
    /// The SYN cookie secret the sync key gives every node (SyncKey.cookieSecret).
    let cookieSecret: SynCookieSecret
    private let socket: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private var session: SyncSession
    private var workers: [QueueWorker] = []
    private var rings: [SingleProducerRing<SyncChange>] = []
    private var proxyRings: [SingleProducerRing<SyncProxyEntry>] = []
    private let logger: Logger
    private let finished = DispatchSemaphore(value: 0)
    private let published = Mutex(SyncStatus())
    /// The addresses as `sync status` shows them, formatted once: the thread publishes its
    /// status every turn.
    private let peerName: String
    private let listenName: String
    private var changesLost: UInt64 = 0
    /// A turn's datagrams, sent in one call (its `errors` are `sync status`'s send_errors).
    private let sendBatch: SyncSendBatch
    /// Refusals are logged at most once per `logInterval`, with the count since the last line.
    static let logInterval: UInt64 = 10_000_000_000
    private var nextLog: UInt64 = 0
    private var refusedSinceLog: [String: UInt64] = [:]
    static let datagramLimit = 2048
    /// `sync status` is refreshed this often, not every turn: copying it out is a good part of
    /// a quiet turn's work.
    static let publishInterval: UInt64 = 50_000_000
    private var nextPublish: UInt64 = 0
    /// After a turn that took fewer than `busyDatagrams` datagrams, the socket is not looked
    /// at again for `receivePause`: the peer's records come a few at a time (each connection's
    /// changes gathered for the coalescing interval, 50 ms), and every turn that takes them
    /// wakes this thread and then every worker (a mailbox job). Taken every 10 ms they wait in
    /// the socket's buffer and go to the workers as one batch, with fewer wake-ups (BENCHMARKS.md,
    /// State sync end to end, The receiving side). A turn that found many (a bulk) reads on at
    /// once, so that the buffer does not overflow.
    static let receivePause: UInt64 = 10_000_000
    static let busyDatagrams = 32

    /// Reads the key and binds the socket: a bad key or address stops the start. `epochFile`:
    /// where the last epoch is kept (SyncEpochFile), nil without a state file.
    init(options: SyncOptions, epochFile: String?, logger: Logger) throws(SyncKeyFile.Problem) {
        self.options = options
        self.logger = logger
        let key = try SyncKeyFile.read(path: options.keyPath)
        cookieSecret = key.cookieSecret
        guard options.listen.address.isIPv4 == options.peer.address.isIPv4 else {
            throw SyncKeyFile.Problem(description: "--sync-listen and --sync-peer must be of one address family")
        }
        let listen = SocketAddress(options.listen)
        let descriptor = SystemCall.socket(listen.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
                                           | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard descriptor >= 0 else { throw SyncKeyFile.Problem(description: "\(SystemError("creating the sync socket"))") }
        if !options.listen.address.isIPv4 { SystemCall.setOption(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, Int32(1)) }
        // The unit starts seqwall before the network is configured (dist/seqwall.service.in,
        // Before=network-pre.target): bind to the sync address before it exists (ip(7),
        // IP_FREEBIND; ipv6(7), IPV6_FREEBIND, 78, which Glibc's module does not export).
        if options.listen.address.isIPv4 {
            SystemCall.setOption(descriptor, Int32(IPPROTO_IP), IP_FREEBIND, Int32(1))
        } else {
            SystemCall.setOption(descriptor, Int32(IPPROTO_IPV6), 78, Int32(1))
        }
        guard listen.withPointer({ SystemCall.bind(descriptor, $0, $1) }) == 0 else {
            let error = SystemError("binding the sync address \(options.listen)")
            SystemCall.close(descriptor)
            throw SyncKeyFile.Problem(description: "\(error)")
        }
        var ends: [Int32] = [0, 0]
        guard SystemCall.pipe(&ends) == 0 else {
            SystemCall.close(descriptor)
            throw SyncKeyFile.Problem(description: "\(SystemError("creating a pipe"))")
        }
        for end in ends { _ = SystemCall.fcntl(end, F_SETFL, SystemCall.fcntl(end, F_GETFL) | O_NONBLOCK) }
        socket = descriptor
        wakeRead = ends[0]
        wakeWrite = ends[1]
        sendBatch = SyncSendBatch(peer: SocketAddress(options.peer), slotSize: SyncService.datagramLimit)
        // The epoch: wall-clock seconds at the start, above every earlier start's
        // (SyncEpochFile); the node number: random, each start's own key (SyncCipher).
        var generator = SystemRandomNumberGenerator()
        let clock = UInt32(truncatingIfNeeded: SystemCall.wallClockNanoseconds() / 1_000_000_000)
        let epoch = SyncEpochFile.take(path: epochFile, clock: clock, logger: logger)
        session = SyncSession(key: key, node: UInt32.random(in: 1...UInt32.max, using: &generator), epoch: epoch,
                              regions: HugePageRegions.provider)
        peerName = options.peer.description
        listenName = options.listen.description
        var status = SyncStatus()
        status.peer = peerName
        status.listen = listenName
        published.withLock { $0 = status }
    }

    deinit {
        SystemCall.close(socket)
        SystemCall.close(wakeRead)
        SystemCall.close(wakeWrite)
    }

    /// Gives every worker a ring; before their threads start.
    func attach(to workers: [QueueWorker]) {
        self.workers = workers
        for worker in workers {
            let sync = WorkerSync()
            worker.attachSync(sync)
            rings.append(sync.ring)
            proxyRings.append(sync.proxyRing)
        }
    }

    func start() {
        startDaemonThread(named: "seqwall-sync", signalling: finished) { [self] in serve() }
    }

    /// Ends the thread; before the workers stop (a bulk being collected waits on them).
    func stop() {
        var one: UInt8 = 1
        _ = SystemCall.write(wakeWrite, &one, 1)
        finished.wait()
    }

    /// The figures as of the thread's last turn.
    var status: SyncStatus { published.withLock { $0 } }

    // MARK: The loop

    private func serve() {
        var descriptors = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: socket, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: SyncService.datagramLimit)
        var quietUntil: UInt64 = 0
        while true {
            // While pausing, the socket's entry is left out of the poll (a negative descriptor,
            // poll(2)), and the wait ends when the pause does.
            let before = SystemCall.monotonicNanoseconds()
            let pausing = before < quietUntil
            descriptors[1].fd = pausing ? -1 : socket
            descriptors[1].revents = 0
            let wait = pausing ? Int32(min(10, (quietUntil - before + 999_999) / 1_000_000)) : 10
            _ = SystemCall.poll(&descriptors, wait)
            if descriptors[0].revents != 0 { return }
            let now = SystemCall.monotonicNanoseconds(), wallNow = SystemCall.wallClockNanoseconds()
            var toApply: [SyncEntry] = []
            var proxiesToApply: [SyncProxyEntry] = []
            var bulkRequested = false
            if !pausing && descriptors[1].revents != 0 {
                var taken = 0
                defer { if taken < SyncService.busyDatagrams { quietUntil = now &+ SyncService.receivePause } }
                while let datagram = receive(into: &buffer) {
                    taken += 1
                    let receipt: SyncSession.Receipt
                    if datagram.from {
                        receipt = session.receive(datagram.bytes, now: now, wallNow: wallNow)
                    } else {
                        receipt = SyncSession.Receipt(refused: .unknownPeer)
                    }
                    // The turn's first datagram's entries are handed on as they are, not copied.
                    if toApply.isEmpty { toApply = receipt.entries } else { toApply += receipt.entries }
                    proxiesToApply += receipt.proxies
                    bulkRequested = bulkRequested || receipt.bulkRequested
                    if let refused = receipt.refused { noteRefused(refused, now: now) }
                }
            }
            if !toApply.isEmpty || !proxiesToApply.isEmpty {
                let entries = toApply, proxies = proxiesToApply
                // Every worker: the queue this node's kernel will give the flow is unknown
                // (docs/ha.md, Which worker).
                for worker in workers {
                    worker.mailbox.post { worker in
                        worker.sync?.apply(entries, proxies: proxies, to: worker.tracker,
                                           now: SystemCall.monotonicNanoseconds())
                    }
                }
            }
            if bulkRequested {
                let (connections, proxies) = collectBulk()
                session.startBulk(connections, proxies: proxies)
            }
            // Each worker's changes read in its ring, a run at a time, their keys touched
            // together (SyncCoalescer.add(contentsOf:)).
            for ring in rings {
                ring.drainRuns { session.submit(contentsOf: $0, now: now) }
                changesLost += ring.takeLost()
            }
            var proxies: [SyncProxyEntry] = []
            for ring in proxyRings {
                ring.drain { proxies.append($0) }
                changesLost += ring.takeLost()
            }
            if !proxies.isEmpty { session.sendProxies(proxies, now: now, wallNow: wallNow) }
            session.tick(now: now, wallNow: wallNow)
            session.drainOutgoing { sendBatch.add($0, on: socket) }
            sendBatch.flush(on: socket)
            if now >= nextPublish {
                nextPublish = now &+ SyncService.publishInterval
                publish(now: now)
            }
        }
    }

    private func receive(into buffer: inout [UInt8]) -> (bytes: [UInt8], from: Bool)? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let count = buffer.withUnsafeMutableBytes { bytes in
            withUnsafeMutablePointer(to: &storage) { address in
                address.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    SystemCall.receiveFrom(socket, bytes.baseAddress, bytes.count, $0, &length)
                }
            }
        }
        guard count >= 0 else { return nil }
        let fromPeer = SocketAddress(received: storage).map { $0.endpoint == options.peer } ?? false
        return (Array(buffer.prefix(count)), fromPeer)
    }

    /// Every connection of every worker, one per flow (each worker may hold a copy of a synced
    /// one: the one with the most packets is the live one), and the proxied ones' states.
    private func collectBulk() -> ([Connection], [SyncProxyEntry]) {
        var byKey: [FlowKey: (Connection, SynProxyState?)] = [:]
        Daemon.visitConnections(of: workers) { _, connection, proxy, _ in
            let packets = connection.packetsOriginal &+ connection.packetsReply
            if let (held, _) = byKey[connection.key], held.packetsOriginal &+ held.packetsReply >= packets { return }
            byKey[connection.key] = (connection, proxy)
        }
        return (byKey.values.map(\.0),
                byKey.values.compactMap { connection, proxy in proxy.map { SyncProxyEntry(key: connection.key, state: $0) } })
    }

    private func noteRefused(_ refusal: SyncRefusal, now: UInt64) {
        if refusal == .unknownPeer {
            session.countRefusal(refusal)
        }
        refusedSinceLog[refusal.name, default: 0] += 1
        guard now >= nextLog else { return }
        nextLog = now &+ SyncService.logInterval
        let counts = refusedSinceLog.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        logger.warning("sync: refused messages from \(options.peer) or elsewhere: \(counts) (seqwall sync status)")
        refusedSinceLog.removeAll()
    }

    private func publish(now: UInt64) {
        var status = session.status(now: now)
        status.peer = peerName
        status.listen = listenName
        status.changes_lost = changesLost
        status.send_errors = sendBatch.errors
        published.withLock { $0 = status }
    }
}
