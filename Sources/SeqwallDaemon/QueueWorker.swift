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
    /// Answers to rejected packets (RejectSender): sent, held back by the rate limit, and not
    /// sent (no raw socket, or the kernel refused the send).
    var rejectAnswers: UInt64 = 0
    var rejectAnswersLimited: UInt64 = 0
    var rejectAnswersFailed: UInt64 = 0
}

/// One NFQUEUE queue and the share of the connection table that belongs to it. Runs on its own
/// thread; everything it owns is touched only there (others reach it through its mailbox).
/// The queue-balance hash sends both directions of a flow to the same queue, so a shard never
/// needs another's connections.
final class QueueWorker: @unchecked Sendable {
    static let sendBufferSize = 64 * 1024
    /// Packets taken from the socket in one `recvmmsg` and decided together; their verdicts go
    /// out in one send.
    static let batchLimit = ConnectionTracker.batchCapacity
    /// Full batches taken back to back before the worker looks at its mailbox and the expiry
    /// again: a busy queue skips a poll per batch, and jobs still wait at most this many.
    static let batchesPerTurn = 4
    /// Due connections removed after each batch of packets (a removal costs about as much as
    /// a packet), and in a turn without packets.
    static let expiryBudgetPerBatch = 256
    static let expiryBudgetWhenIdle = 8192

    let queue: UInt16
    private let realtimePriority: Int32?
    let tracker: ConnectionTracker
    let mailbox: Mailbox<QueueWorker>
    private(set) var adapter = AdapterCounters()
    private let logger: Logger
    private var socket: NetfilterQueueSocket!
    private let received: ReceiveBatch
    /// The packets of the batch being collected (read from `received`'s slots, whose bytes they
    /// point into), as the tracker takes them, and their verdicts.
    private let pending: UnsafeMutablePointer<seqwall_nfq_packet>
    private let pendingQueued: UnsafeMutablePointer<QueuedPacket>
    private let pendingVerdicts: UnsafeMutablePointer<Verdict>
    private var pendingCount = 0
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
    /// The answers to rejected packets: nil when the raw sockets could not be opened (no
    /// CAP_NET_RAW), and a reject is then a silent drop, counted as a failed answer.
    private let rejectSender: RejectSender?
    private let answerBuffer: UnsafeMutableRawPointer
    private var answerLimit = AnswerRateLimit()
    private var recentAnswers = RecentAnswers()
    private var localBroadcasts = LocalBroadcasts()
    /// Time per packet, for the metrics endpoint (measured in run()); plain integers owned by
    /// this thread, copied out by a scrape's job.
    private(set) var processing = LatencyHistogram()

    /// `capacity` and the global half-open limit are this worker's share: one of `shares`.
    init(queue: UInt16, settings: QueueSettings, policy: Policy, capacity: Int, shares: Int,
         logger: Logger) throws(SystemError) {
        self.queue = queue
        self.logger = logger
        realtimePriority = settings.realtimePriority
        tracker = ConnectionTracker(policy: policy, capacity: capacity, shares: shares,
                                    memoryAdvisor: SystemCall.adviseHugePages)
        dropLog = DropLogChannel(queue: queue)
        dropLogMode = policy.dropLog
        mailbox = try Mailbox()
        received = ReceiveBatch(capacity: QueueWorker.batchLimit, copyRange: Int(settings.copyRange))
        pending = .allocate(capacity: QueueWorker.batchLimit)
        pending.initialize(repeating: seqwall_nfq_packet(), count: QueueWorker.batchLimit)
        pendingQueued = .allocate(capacity: QueueWorker.batchLimit)
        pendingQueued.initialize(repeating: QueuedPacket(bytes: UnsafeRawBufferPointer(start: nil, count: 0),
                                                         wireLength: 0, hook: .other),
                                 count: QueueWorker.batchLimit)
        pendingVerdicts = .allocate(capacity: QueueWorker.batchLimit)
        pendingVerdicts.initialize(repeating: .accept, count: QueueWorker.batchLimit)
        sendBuffer = .allocate(byteCount: QueueWorker.sendBufferSize, alignment: 16)
        answerBuffer = .allocate(byteCount: RejectAnswer.capacity, alignment: 16)
        do {
            rejectSender = try RejectSender()
        } catch {
            rejectSender = nil
            logger.warning("queue \(queue): cannot open raw sockets to answer rejected packets (\(error)); `reject` rules drop without an answer. seqwall needs CAP_NET_RAW for them.")
        }
        do {
            now = SystemCall.monotonicNanoseconds()
            // Packets that arrive while the queue is being configured are decided one by one:
            // the scratch buffer they sit in is reused by the next receive.
            socket = try NetfilterQueueSocket(queue: queue, settings: settings, scratch: received.storage,
                                              scratchSize: received.storageSize) { [unowned self] message in
                collect(message)
                decidePending()
            }
            flushVerdicts()
        } catch {
            // Every stored property is set, so deinit runs and frees the buffers.
            throw error
        }
    }

    deinit {
        pending.deallocate()
        pendingQueued.deallocate()
        pendingVerdicts.deallocate()
        sendBuffer.deallocate()
        answerBuffer.deallocate()
    }

    /// The thread body: packets, jobs and expiry until a stop job arrives.
    func run() {
        if let realtimePriority {
            // A verdict waits while the worker waits for a CPU: on a loaded machine that wait,
            // not the work, is what a packet's latency tail is made of (`--realtime-priority`).
            var parameters = sched_param(sched_priority: realtimePriority)
            let result = pthread_setschedparam(pthread_self(), SCHED_FIFO, &parameters)
            if result != 0 {
                logger.warning("queue \(queue): cannot run at real-time priority \(realtimePriority): \(SystemError("pthread_setschedparam", code: result)); running at normal priority")
            }
        }
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
                // Full batches back to back, up to `batchesPerTurn`: a batch that came back full
                // says more are waiting, so poll would only say so again.
                for _ in 0..<QueueWorker.batchesPerTurn {
                    if receiveBatch(context: context) < QueueWorker.batchLimit { break }
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
        metrics.connections = tracker.connectionCount
        metrics.connectionLimit = tracker.connectionLimit
        metrics.halfOpen = tracker.halfOpenCount
        metrics.halfOpenLimit = tracker.halfOpenLimit
        metrics.enobufs = adapter.enobufs
        metrics.malformedMessages = adapter.malformedMessages
        metrics.sendErrors = adapter.sendErrors
        metrics.rejectAnswers = adapter.rejectAnswers
        metrics.rejectAnswersLimited = adapter.rejectAnswersLimited
        metrics.rejectAnswersFailed = adapter.rejectAnswersFailed
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

    /// Takes the waiting packets, up to `batchLimit`, with one `recvmmsg`, decides them as one
    /// batch and sends all their verdicts at once. Returns how many datagrams it took (0 when
    /// none was waiting or the receive failed).
    ///
    /// The processing-time histogram measures from `now` (read as poll returned, or as the
    /// previous batch's verdicts went out) to this batch's verdicts handed to the kernel:
    /// receiving, parsing, tracking, queueing the verdicts and sending them. The time is shared
    /// evenly among the packets the tracker decided, so the histogram's count equals the packets
    /// seen. The closing clock read is the next batch's `now`: two reads per batch at most.
    private func receiveBatch(context: UnsafeMutableRawPointer) -> Int {
        var count: Int
        repeat {
            count = socket.receive(received)
            // ENOBUFS: the kernel dropped messages for us; the socket carries on.
            if count == -Int(ENOBUFS) { adapter.enobufs += 1 }
        } while count == -Int(ENOBUFS)
        if count < 0 {
            if count != -Int(EAGAIN) && count != -Int(EWOULDBLOCK) {
                logger.warning("receive on queue \(queue) failed: \(SystemError("recvmmsg", code: Int32(-count)))")
            }
            return 0
        }
        let seenBefore = tracker.counters.seen
        for index in 0..<count {
            guard let (bytes, length) = received.message(index) else {
                // Cut short (MSG_TRUNC; ReceiveBatch's slots leave a wide margin, so this should
                // never happen): the packet cannot be read whole, so it is not judged but
                // dropped, failing closed, and counted as malformed. Its id is still there, and
                // a packet without a verdict would sit in the kernel's queue for good.
                adapter.malformedMessages += 1
                var queue: UInt16 = 0, id: UInt32 = 0
                if seqwall_nfq_read_truncated_packet_id(received.slot(index), received.slotSize, &queue, &id) == 0 {
                    decidePending()
                    appendVerdict(queue: queue, id: id, verdict: .drop(.truncated))
                }
                continue
            }
            let result = mnl_cb_run(bytes, length, 0, socket.portID, { message, data in
                guard let message, let data else { return MNL_CB_OK }
                // The worker outlives its receives: no retain and release per message.
                Unmanaged<QueueWorker>.fromOpaque(data)._withUnsafeGuaranteedRef { $0.collect(message) }
                return MNL_CB_OK
            }, context)
            if result < 0 { adapter.malformedMessages += 1 }
        }
        decidePending()
        flushVerdicts()
        let decided = tracker.counters.seen &- seenBefore
        let finished = SystemCall.monotonicNanoseconds()
        if decided > 0 {
            processing.record(nanoseconds: (finished &- now) / decided, times: decided)
        }
        now = finished
        return count
    }

    /// Reads one queued packet's message into the pending batch.
    @inline(__always)
    private func collect(_ message: UnsafePointer<nlmsghdr>) {
        var packet = seqwall_nfq_packet()
        guard seqwall_nfq_read_packet(message, &packet) == 0 else {
            adapter.malformedMessages += 1
            return
        }
        if pendingCount == QueueWorker.batchLimit { decidePending() }
        pending[pendingCount] = packet
        pendingQueued[pendingCount] = QueuedPacket(
            bytes: UnsafeRawBufferPointer(start: packet.payload, count: Int(packet.payload_length)),
            wireLength: Int(packet.wire_length), hook: QueueWorker.hook(of: packet))
        pendingCount += 1
    }

    /// Decides the pending packets as one batch and queues their verdicts (and drop-log
    /// records) in order.
    private func decidePending() {
        guard pendingCount > 0 else { return }
        tracker.process(batch: UnsafeBufferPointer(start: pendingQueued, count: pendingCount),
                        verdicts: pendingVerdicts, now: now)
        for index in 0..<pendingCount {
            let packet = pending[index]
            var verdict = pendingVerdicts[index]
            switch verdict {
            case .reject:
                answer(packet)
            case .drop(.noConnection), .drop(.icmpUnrelated):
                if recentAnswers.mayHold(now: now) && isOwnAnswer(packet) {
                    tracker.passOwnAnswer(insteadOf: verdict)
                    verdict = .accept
                }
            default:
                break
            }
            appendVerdict(queue: packet.queue, id: packet.packet_id, verdict: verdict)
            if case .drop(let reason) = verdict {
                if reason == .fragment { dropLog.countFragment() }
                logDrop(reason, packet: packet)
            } else if verdict == .reject {
                logDrop(.rule, packet: packet, rejected: true)
            }
        }
        pendingCount = 0
    }

    // MARK: Answers to rejected packets

    /// Answers a rejected packet (RejectAnswer): an RST for TCP, a port unreachable for UDP,
    /// within the rate limit. Rejects are rare; the packet is parsed again here rather than
    /// carried out of the tracker. An unreachable's source is the datagram's destination when it
    /// was addressed to this host (INPUT), else the kernel's choice (icmp_send, icmpv6_send).
    private func answer(_ packet: seqwall_nfq_packet) {
        guard let rejectSender else {
            adapter.rejectAnswersFailed += 1
            return
        }
        let bytes = UnsafeRawBufferPointer(start: packet.payload, count: Int(packet.payload_length))
        let length: Int
        switch PacketParser.parse(bytes, wireLength: Int(packet.wire_length)) {
        case .tcp(let segment):
            length = RejectAnswer.reset(answering: segment, into: answerBuffer)
        case .datagram(let datagram) where datagram.kind == .udp:
            let local = QueueWorker.hook(of: packet) == .input ? datagram.key.destination : nil
            length = RejectAnswer.portUnreachable(quoting: bytes, wireLength: Int(packet.wire_length),
                                                  source: local, into: answerBuffer)
        default:
            length = 0
        }
        guard length > 0 else { return }
        // The answer's destination is the refused packet's source; its source the refused
        // packet's destination (bytes 12-15 of an IPv4 answer), which must not be a broadcast.
        if answerBuffer.load(as: UInt8.self) >> 4 == 4 {
            let refusedDestination = UInt32(bigEndian: answerBuffer.load(fromByteOffset: 12, as: UInt32.self))
            if refusedDestination != 0 && localBroadcasts.contains(refusedDestination, now: now) { return }
        }
        guard answerLimit.admit(now: now) else {
            adapter.rejectAnswersLimited += 1
            return
        }
        let answer = UnsafeRawBufferPointer(start: answerBuffer, count: length)
        if let ticket = AnswerTicket(PacketParser.parse(answer, wireLength: length)) {
            recentAnswers.remember(ticket, now: now)
        }
        let scope = packet.indev != 0 ? packet.indev : packet.outdev
        if rejectSender.send(answerBuffer, length: length, scope: scope) < 0 {
            adapter.rejectAnswersFailed += 1
        } else {
            adapter.rejectAnswers += 1
        }
    }

    /// Whether a packet the tracker would drop is one of seqwall's own recent answers coming
    /// back through the queue (RecentAnswers).
    private func isOwnAnswer(_ packet: seqwall_nfq_packet) -> Bool {
        let bytes = UnsafeRawBufferPointer(start: packet.payload, count: Int(packet.payload_length))
        guard let ticket = AnswerTicket(PacketParser.parse(bytes, wireLength: Int(packet.wire_length))) else {
            return false
        }
        return recentAnswers.contains(ticket, now: now)
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
        if reason == .fragment, let fragment = IPFragment(bytes, wireLength: Int(packet.wire_length)) {
            dropLog.ring.push(DropLogRecord(fragment, reason: reason, queue: packet.queue))
            return
        }
        let parsed = PacketParser.parse(bytes, wireLength: Int(packet.wire_length))
        var state = TCPState.none
        if case .tcp(let segment) = parsed, let (connection, _) = tracker.connection(for: FlowKey(segment)) {
            state = connection.state
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
        // A reject is dropped here; its answer went out on its own (answer(_:)).
        let code: UInt32
        if case .accept = verdict { code = UInt32(NF_ACCEPT) } else { code = UInt32(NF_DROP) }
        let length = seqwall_nfq_put_verdict(sendBuffer + sendLength, queue, id, code)
        sendLength += (Int(length) + 3) & ~3
    }

    private func flushVerdicts() {
        guard sendLength > 0 else { return }
        if socket != nil && socket.send(sendBuffer, length: sendLength) < 0 { adapter.sendErrors += 1 }
        sendLength = 0
    }
}
