import CNetfilterQueue
import Logging
import SeqwallCore
import SeqwallTelemetry
#if canImport(Glibc)
import Glibc
#endif

/// Counters of the adapter itself, beside the tracker's.
struct AdapterCounters {
    /// Receive overflows: the kernel dropped messages it could not queue to our socket.
    var enobufs: UInt64 = 0
    var malformedMessages: UInt64 = 0
    var sendErrors: UInt64 = 0
}

/// One NFQUEUE queue and the share of the connection table that belongs to it. Runs on its own
/// thread; everything it owns is touched only there (others reach it through its mailbox).
/// The queue-balance hash sends both directions of a flow to the same queue, so a shard never
/// needs another's connections.
final class QueueWorker: @unchecked Sendable {
    /// The mark a rejected packet comes back with (NF_REPEAT); iptables answers it with a RST.
    static let rejectMark: UInt32 = 0x5357
    static let receiveBufferSize = 128 * 1024
    static let sendBufferSize = 64 * 1024
    /// Packets taken from the socket before their verdicts go out in one send.
    static let batchLimit = 64
    /// Due connections removed after each batch of packets (a removal costs about as much as
    /// a packet), and in a turn without packets.
    static let expiryBudgetPerBatch = 256
    static let expiryBudgetWhenIdle = 8192

    let queue: UInt16
    let tracker: ConnectionTracker
    let mailbox: Mailbox<QueueWorker>
    private(set) var adapter = AdapterCounters()
    private let logger: Logger
    private var socket: NetfilterQueueSocket!
    private let receiveBuffer: UnsafeMutableRawPointer
    private let sendBuffer: UnsafeMutableRawPointer
    private var sendLength = 0
    private var now: UInt64 = 0
    private var running = true
    /// `conntrack watch` clients; touched only on this thread (added and removed by jobs).
    private var watchers: [WatchQueue] = []
    /// Where dropped packets go for the drop log (`set drop-log`), and its rate limit.
    let dropLog: DropLogChannel
    private var dropLogMode: DropLogMode
    private var dropLogSampler = DropLogSampler()
    /// Time per packet, for the metrics endpoint (measured in run()); plain integers owned by
    /// this thread, copied out by a scrape's job.
    private(set) var processing = LatencyHistogram()

    /// `capacity` and the global half-open limit are this worker's share: one of `shares`.
    init(queue: UInt16, settings: QueueSettings, policy: Policy, capacity: Int, shares: Int,
         logger: Logger) throws(SystemError) {
        self.queue = queue
        self.logger = logger
        tracker = ConnectionTracker(policy: policy, capacity: capacity, shares: shares, memoryAdvisor: SystemCall.adviseHugePages)
        dropLog = DropLogChannel(queue: queue)
        dropLogMode = policy.dropLog
        mailbox = try Mailbox()
        receiveBuffer = .allocate(byteCount: QueueWorker.receiveBufferSize, alignment: 16)
        sendBuffer = .allocate(byteCount: QueueWorker.sendBufferSize, alignment: 16)
        do {
            now = SystemCall.monotonicNanoseconds()
            socket = try NetfilterQueueSocket(queue: queue, settings: settings, scratch: receiveBuffer,
                                              scratchSize: QueueWorker.receiveBufferSize) { [unowned self] message in
                handle(message)
            }
            flushVerdicts()
        } catch {
            // Every stored property is set, so deinit runs and frees the buffers.
            throw error
        }
    }

    deinit {
        receiveBuffer.deallocate()
        sendBuffer.deallocate()
    }

    /// The thread body: packets, jobs and expiry until a stop job arrives.
    func run() {
        var descriptors = [
            pollfd(fd: socket.descriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: mailbox.eventDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        let context = Unmanaged.passUnretained(self).toOpaque()
        var moreDue = false
        while running {
            // While deadlines are left over from the last turn, only look for work; otherwise
            // wake at least four times a second, so connections go within about a second of
            // their deadline (the wheel's tick) even when no packet comes.
            let ready = poll(&descriptors, 2, moreDue ? 0 : 250)
            now = SystemCall.monotonicNanoseconds()
            let packets = ready > 0 && descriptors[0].revents != 0
            if packets {
                // The processing-time histogram measures from here (`now`, read as poll returned
                // with packets waiting) to the batch's verdicts handed to the kernel: receiving,
                // parsing, tracking, queueing the verdicts and sending them. One clock read per
                // batch, its time shared evenly among the packets the tracker decided in it, so
                // the histogram's count equals the packets seen.
                let seenBefore = tracker.counters.seen
                receiveBatch(context: context)
                let decided = tracker.counters.seen &- seenBefore
                if decided > 0 {
                    let elapsed = SystemCall.monotonicNanoseconds() &- now
                    processing.record(nanoseconds: elapsed / decided, times: decided)
                }
            }
            if ready > 0 && descriptors[1].revents != 0 {
                for job in mailbox.takeJobs() { job(self) }
            }
            // A slice of the due connections each turn: a small one between packet batches,
            // a larger one when idle, so a burst of deadlines never holds packets up.
            moreDue = tracker.expire(now: now, budget: packets ? QueueWorker.expiryBudgetPerBatch
                                                              : QueueWorker.expiryBudgetWhenIdle)
            publishEvents()
        }
        socket.close(scratch: sendBuffer)
    }

    func stop() { running = false }

    /// A reload: the new policy for the tracker, and its drop-log setting for this worker.
    func replacePolicy(_ policy: Policy) {
        tracker.replacePolicy(policy)
        dropLogMode = policy.dropLog
    }

    /// This worker's figures for a scrape of the metrics endpoint (a mailbox job, between
    /// batches, so they agree with each other).
    func metrics() -> QueueMetrics {
        var metrics = QueueMetrics(queue: queue)
        metrics.counters = tracker.counters
        metrics.connections = tracker.table.count
        metrics.connectionLimit = tracker.table.limit
        metrics.halfOpen = tracker.halfOpenCount
        metrics.halfOpenLimit = tracker.limiter.halfOpenLimit
        metrics.enobufs = adapter.enobufs
        metrics.malformedMessages = adapter.malformedMessages
        metrics.sendErrors = adapter.sendErrors
        metrics.processing = processing.snapshot()
        return metrics
    }

    // MARK: Watchers

    func addWatcher(_ watcher: WatchQueue) {
        watchers.append(watcher)
        tracker.recordsEvents = true
    }

    func removeWatcher(_ watcher: WatchQueue) {
        watchers.removeAll { $0 === watcher }
        tracker.recordsEvents = !watchers.isEmpty
        if watchers.isEmpty { tracker.events.reset() }
    }

    /// Hands the tracker's recorded events to every watcher, once per loop turn.
    private func publishEvents() {
        let events = tracker.events
        guard !watchers.isEmpty, events.count > 0 || events.lost > 0 else { return }
        for index in 0..<events.count {
            let event = events[index]
            for watcher in watchers { watcher.push(event) }
        }
        let lost = events.reset()
        for watcher in watchers { watcher.addLost(lost) }
    }

    /// Takes up to `batchLimit` waiting packets, then sends all their verdicts at once.
    private func receiveBatch(context: UnsafeMutableRawPointer) {
        for _ in 0..<QueueWorker.batchLimit {
            let received = socket.receive(into: receiveBuffer, capacity: QueueWorker.receiveBufferSize, wait: false)
            if received == -Int(EAGAIN) || received == -Int(EWOULDBLOCK) { break }
            if received == -Int(ENOBUFS) {
                // The kernel dropped messages for us; the socket carries on.
                adapter.enobufs += 1
                continue
            }
            if received < 0 {
                logger.warning("receive on queue \(queue) failed: \(SystemError("recv", code: Int32(-received)))")
                break
            }
            let result = mnl_cb_run(receiveBuffer, received, 0, socket.portID, { message, data in
                guard let message, let data else { return MNL_CB_OK }
                Unmanaged<QueueWorker>.fromOpaque(data).takeUnretainedValue().handle(message)
                return MNL_CB_OK
            }, context)
            if result < 0 { adapter.malformedMessages += 1 }
        }
        flushVerdicts()
    }

    /// Decides one queued packet and queues its verdict for the batch.
    @inline(__always)
    private func handle(_ message: UnsafePointer<nlmsghdr>) {
        var packet = seqwall_nfq_packet()
        guard seqwall_nfq_read_packet(message, &packet) == 0 else {
            adapter.malformedMessages += 1
            return
        }
        let verdict: Verdict
        if packet.mark == QueueWorker.rejectMark {
            // Our rejected packet came back: the REJECT rule is missing from the chain. Drop it
            // rather than loop.
            verdict = .drop(.rule)
        } else {
            let hook = QueueWorker.hook(of: packet)
            let bytes = UnsafeRawBufferPointer(start: packet.payload, count: Int(packet.payload_length))
            verdict = tracker.process(bytes, wireLength: Int(packet.wire_length), hook: hook, now: now)
        }
        appendVerdict(queue: packet.queue, id: packet.packet_id, verdict: verdict)
        if case .drop(let reason) = verdict {
            logDrop(reason, packet: packet)
        } else if verdict == .reject {
            logDrop(.rule, packet: packet, rejected: true)
        }
    }

    // MARK: Drop log

    /// Hands a dropped packet to the drop log as `set drop-log` says: `off` nothing, `sampled`
    /// within DropLogSampler's rate (the rest counted, and summarised by the writer), `full`
    /// every one. Nothing here formats, writes or allocates: the packet is parsed again into
    /// plain values and pushed into the ring the DropLogWriter thread drains.
    private func logDrop(_ reason: DropReason, packet: seqwall_nfq_packet, rejected: Bool = false) {
        switch dropLogMode {
        case .off:
            return
        case .sampled:
            guard dropLogSampler.admit(now: now) else {
                dropLog.suppress()
                return
            }
        case .full:
            break
        }
        let bytes = UnsafeRawBufferPointer(start: packet.payload, count: Int(packet.payload_length))
        let parsed = PacketParser.parse(bytes, wireLength: Int(packet.wire_length))
        var state = TCPState.none
        if case .tcp(let segment) = parsed, let (slot, _) = tracker.table.find(FlowKey(segment)) {
            state = tracker.table.connection(at: slot).pointee.state
        }
        dropLog.ring.push(DropLogRecord(parsed, reason: reason, rejected: rejected, state: state, queue: packet.queue))
    }

    /// The netfilter hook a packet was queued from: it decides direction in host mode.
    @inline(__always)
    static func hook(of packet: seqwall_nfq_packet) -> PacketHook {
        switch Int32(packet.hook) {
        case Int32(NF_INET_LOCAL_IN.rawValue): .input
        case Int32(NF_INET_LOCAL_OUT.rawValue): .output
        case Int32(NF_INET_FORWARD.rawValue): .forward
        default: .other
        }
    }

    @inline(__always)
    private func appendVerdict(queue: UInt16, id: UInt32, verdict: Verdict) {
        if sendLength + 128 > QueueWorker.sendBufferSize { flushVerdicts() }
        let length: UInt32
        switch verdict {
        case .accept:
            length = seqwall_nfq_put_verdict(sendBuffer + sendLength, queue, id, UInt32(NF_ACCEPT), 0, 0)
        case .drop:
            length = seqwall_nfq_put_verdict(sendBuffer + sendLength, queue, id, UInt32(NF_DROP), 0, 0)
        case .reject:
            // Back through the hook with our mark: the chain's REJECT rule answers with a RST.
            length = seqwall_nfq_put_verdict(sendBuffer + sendLength, queue, id, UInt32(NF_REPEAT), 1,
                                             QueueWorker.rejectMark)
        }
        sendLength += (Int(length) + 3) & ~3
    }

    private func flushVerdicts() {
        guard sendLength > 0 else { return }
        if socket != nil && socket.send(sendBuffer, length: sendLength) < 0 { adapter.sendErrors += 1 }
        sendLength = 0
    }
}
