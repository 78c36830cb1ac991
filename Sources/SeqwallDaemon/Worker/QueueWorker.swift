import Logging
import SeqwallControl
import SeqwallCore
import SeqwallTelemetry
#if canImport(Glibc)
import Glibc
#endif

/// One NFQUEUE queue and the share of the connection table that belongs to it. Runs on its own
/// thread; everything it owns is touched only there (others reach it through its mailbox).
/// The queue-balance hash sends both directions of a flow to the same queue, so a shard never
/// needs another's connections.
final class QueueWorker: @unchecked Sendable {
    static let sendBufferSize = 64 * 1024
    /// Room past `sendBufferSize` for one verdict that carries a whole packet (a proxied
    /// connection's, rewritten), which never shares the buffer beyond it.
    static let payloadRoom = Int(QueueSettings.wholePacket) + NetfilterQueueMessages.verdictCapacity + 8
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
    /// Whether the kernel accepts what a full queue cannot hold (QueueSettings.failOpen).
    private let failOpen: Bool
    let tracker: ConnectionTracker
    let mailbox: Mailbox<QueueWorker>
    private(set) var adapter = AdapterCounters()
    private let logger: Logger
    /// The queue's two ends, called once per batch each. Set once the worker is whole (the
    /// kernel's socket hands over packets while it binds the queue), before any batch.
    private var source: (any PacketSource)!
    private var sink: (any VerdictSink)!
    private let received: ReceiveBatch
    /// The packets of the batch being collected (read from `received`'s slots, whose bytes they
    /// point into), as the tracker takes them, and their verdicts.
    private let pending: UnsafeMutablePointer<NetfilterQueuePacket>
    private let pendingQueued: UnsafeMutablePointer<QueuedPacket>
    private let pendingVerdicts: UnsafeMutablePointer<Verdict>
    private var pendingCount = 0
    private let sendBuffer: UnsafeMutableRawPointer
    private var sendLength = 0
    private var now: UInt64 = 0
    private var running = true
    /// `conntrack watch` clients; touched only on this thread (added and removed by jobs).
    private var watchers: [WatchQueue] = []
    /// The state sync's ring and sweep (docs/ha.md), set before the thread starts; nil: no sync.
    private(set) var sync: WorkerSync?
    /// Sources over a connection limit with overload, for the daemon's thread
    /// (Daemon+Overload.swift); preallocated, so filling it allocates nothing.
    let overloadRing = SingleProducerRing<OverloadEvent>(capacity: 1024)
    /// Where dropped packets go for the drop log (`set drop-log`), and its rate limit.
    let dropLog: DropLogChannel
    private var dropLogMode: DropLogMode
    private var dropLogSampler = DropLogSampler()
    /// The answers to rejected packets: nil when the raw sockets could not be opened (no
    /// CAP_NET_RAW), and a reject is then a silent drop, counted as a failed answer.
    private let answers: (any AnswerSender)?
    private let answerBuffer: UnsafeMutableRawPointer
    private var answerLimit = AnswerRateLimit()
    private var recentAnswers = RecentAnswers()
    private var localBroadcasts = LocalBroadcasts()
    /// Time per packet, for the metrics endpoint (measured in run()); plain integers owned by
    /// this thread, copied out by a scrape's job.
    private(set) var processing = LatencyHistogram()

    /// Opens the queue's two ends for a worker: `scratch` for the replies to configuration
    /// requests, `deliver` for packets that arrive before the first batch (each decided at once).
    typealias Connect = (_ scratch: ReceiveBatch, _ deliver: (NetfilterQueuePacket) -> Void)
        throws(SystemError) -> (any PacketSource, any VerdictSink)

    /// A worker on the kernel's queue `queue`: an NFQUEUE socket, and raw sockets for the
    /// answers to rejects. `capacity` and the global half-open limit are this worker's share:
    /// one of `shares`.
    convenience init(queue: UInt16, settings: QueueSettings, policy: Policy, capacity: Int, shares: Int,
                     logger: Logger) throws(SystemError) {
        let answers: RejectSender?
        do {
            answers = try RejectSender()
        } catch {
            answers = nil
            logger.warning("queue \(queue): cannot open raw sockets to answer rejected packets (\(error)); `reject` rules drop without an answer. seqwall needs CAP_NET_RAW for them.")
        }
        try self.init(queue: queue, settings: settings, policy: policy, capacity: capacity, shares: shares,
                      logger: logger, answers: answers) { scratch, deliver throws(SystemError) in
            let socket = try NetfilterQueueSocket(queue: queue, settings: settings, scratch: scratch, onPacket: deliver)
            return (socket, socket)
        }
    }

    /// A worker on the ends `connect` opens. `answers` nil: a reject is a silent drop, counted
    /// as a failed answer.
    init(queue: UInt16, settings: QueueSettings, policy: Policy, capacity: Int, shares: Int,
         logger: Logger, answers: (any AnswerSender)?, connect: Connect) throws(SystemError) {
        self.queue = queue
        self.logger = logger
        self.answers = answers
        realtimePriority = settings.realtimePriority
        failOpen = settings.failOpen
        tracker = ConnectionTracker(policy: policy, capacity: capacity, shares: shares,
                                    regionProvider: HugePageRegions.provider)
        tracker.proxiesSynProxyRules = settings.proxiesSynProxyRules
        dropLog = DropLogChannel(queue: queue)
        dropLogMode = policy.dropLog
        mailbox = try Mailbox()
        received = ReceiveBatch(capacity: QueueWorker.batchLimit, copyRange: Int(settings.copyRange))
        pending = .allocate(capacity: QueueWorker.batchLimit)
        pending.initialize(repeating: NetfilterQueuePacket(), count: QueueWorker.batchLimit)
        pendingQueued = .allocate(capacity: QueueWorker.batchLimit)
        pendingQueued.initialize(repeating: NetfilterQueuePacket().queued, count: QueueWorker.batchLimit)
        pendingVerdicts = .allocate(capacity: QueueWorker.batchLimit)
        pendingVerdicts.initialize(repeating: .accept, count: QueueWorker.batchLimit)
        sendBuffer = .allocate(byteCount: QueueWorker.sendBufferSize + QueueWorker.payloadRoom, alignment: 16)
        answerBuffer = .allocate(byteCount: RejectAnswer.capacity, alignment: 16)
        // Every stored property is set: a throw from here on runs deinit, which frees the
        // buffers.
        now = SystemCall.monotonicNanoseconds()
        // Packets that arrive while the queue is being configured are decided one by one: the
        // scratch buffer they sit in is reused by the next receive.
        (source, sink) = try connect(received) { [unowned self] packet in
            collect(packet)
            decidePending()
        }
        flushVerdicts()
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
            pollfd(fd: source.descriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: mailbox.eventDescriptor, events: Int16(POLLIN), revents: 0),
        ]
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
                    if receiveBatch() < QueueWorker.batchLimit { break }
                }
            }
            if ready > 0 && descriptors[1].revents != 0 {
                for job in mailbox.takeJobs() { job(self) }
            }
            // Before expiry: what expiry removes is not a change to sync.
            if sync != nil { publishEvents() }
            // A slice of the due connections each turn: a small one between packet batches,
            // a larger one when idle, so a burst of deadlines never holds packets up.
            moreDue = tracker.expire(now: now, budget: packets ? QueueWorker.expiryBudgetPerBatch
                                                              : QueueWorker.expiryBudgetWhenIdle)
            publishEvents(expiring: true)
            sync?.sweep(tracker, now: now)
            if tracker.overloads.count > 0 { publishOverloads() }
        }
        source.close()
    }

    func stop() { running = false }

    /// A reload: the new policy for the tracker, and its drop-log setting for this worker.
    func replacePolicy(_ policy: Policy, carry: RuleCounterCarry? = nil) {
        tracker.replacePolicy(policy, carry: carry)
        dropLogMode = policy.dropLog
    }

    /// This worker's figures (a mailbox job, between batches, so they agree with each other).
    func metrics() -> QueueMetrics {
        var metrics = QueueMetrics(queue: queue, tracker: tracker, now: SystemCall.monotonicNanoseconds())
        metrics.enobufs = adapter.enobufs
        metrics.malformedMessages = adapter.malformedMessages
        metrics.sendErrors = adapter.sendErrors
        metrics.rejectAnswers = adapter.rejectAnswers
        metrics.rejectAnswersLimited = adapter.rejectAnswersLimited
        metrics.rejectAnswersFailed = adapter.rejectAnswersFailed
        metrics.synProxySendFailures = adapter.synProxySendFailures
        metrics.synProxyUnroutable = adapter.synProxyUnroutable
        metrics.failOpen = failOpen
        metrics.dropLogSuppressed = dropLog.suppressed
        metrics.dropLogLost = dropLog.lost
        metrics.processing = processing.snapshot()
        return metrics
    }

    /// Every worker's figures for `seqwall stats` and the metrics endpoint, each taken by its
    /// own thread, with the kernel's figures for its queue.
    static func metrics(of workers: [QueueWorker]) -> [QueueMetrics] {
        let kernel = KernelQueueStatistics.read()
        return workers.map { worker in
            var metrics = worker.mailbox.perform { $0.metrics() }
            metrics.kernel = kernel[worker.queue]
            return metrics
        }
    }

    // MARK: Watchers

    func addWatcher(_ watcher: WatchQueue) {
        watchers.append(watcher)
        tracker.recordsEvents = true
    }

    func removeWatcher(_ watcher: WatchQueue) {
        watchers.removeAll { $0 === watcher }
        tracker.recordsEvents = !watchers.isEmpty || sync != nil
        if !tracker.recordsEvents { tracker.events.reset() }
    }

    /// Sends this worker's table changes to the sync thread; before the thread starts.
    func attachSync(_ sync: WorkerSync) {
        self.sync = sync
        tracker.recordsEvents = true
    }

    /// Hands the tracker's recorded events to every watcher, and to the sync unless they came
    /// from expiry, once per loop turn.
    private func publishEvents(expiring: Bool = false) {
        let events = tracker.events
        guard !watchers.isEmpty || sync != nil, events.count > 0 || events.lost > 0 else { return }
        if let sync, !expiring { sync.take(events, from: tracker) }
        for index in 0..<events.count {
            let event = events[index]
            for watcher in watchers { watcher.push(event) }
        }
        let lost = events.reset()
        for watcher in watchers { watcher.addLost(lost) }
    }

    /// Moves the tracker's overloads into the ring, once per loop turn.
    private func publishOverloads() {
        let overloads = tracker.overloads
        for index in 0..<overloads.count { overloadRing.push(overloads[index]) }
        overloadRing.addLost(overloads.reset())
    }

    /// Takes the waiting packets, up to `batchLimit`, in one receive from the source, decides
    /// them as one batch and sends all their verdicts to the sink at once. Returns how many
    /// datagrams it took (0 when none was waiting or the receive failed).
    ///
    /// The processing-time histogram measures from `now` (read as poll returned, or as the
    /// previous batch's verdicts went out) to this batch's verdicts handed to the kernel:
    /// receiving, parsing, tracking, queueing the verdicts and sending them. The time is shared
    /// evenly among the packets the tracker decided, so the histogram's count equals the packets
    /// seen. The closing clock read is the next batch's `now`: two reads per batch at most.
    func receiveBatch() -> Int {
        var count: Int
        repeat {
            count = source.receive(into: received)
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
            guard let datagram = received.message(index) else {
                // Cut short (MSG_TRUNC; ReceiveBatch's slots leave a wide margin, so this should
                // never happen): the packet cannot be read whole, so it is not judged but
                // dropped, failing closed, and counted as malformed. Its id is still there, and
                // a packet without a verdict would sit in the kernel's queue for good.
                adapter.malformedMessages += 1
                if let (queue, id) = NetfilterQueueMessages.truncatedPacketID(received.truncatedMessage(index)) {
                    dropUnread(queue: queue, id: id)
                }
                continue
            }
            var walk = NetfilterQueueMessages.Walk(datagram)
            while let message = walk.next() {
                switch NetfilterQueueMessages.decode(message) {
                case .packet(let packet):
                    collect(packet)
                case .malformed(let queue, let id):
                    // Dropped, failing closed, when its id can be read, as a cut-short one.
                    adapter.malformedMessages += 1
                    if let id { dropUnread(queue: queue, id: id) }
                case .ignored:
                    break
                }
            }
            if walk.malformed { adapter.malformedMessages += 1 }
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

    /// Drops a packet whose message could not be read whole, after the packets before it, so
    /// the verdicts keep the order the packets came in.
    private func dropUnread(queue: UInt16, id: UInt32) {
        decidePending()
        appendVerdict(queue: queue, id: id, verdict: .drop(.truncated))
    }

    /// Adds one queued packet to the pending batch.
    @inline(__always)
    private func collect(_ packet: NetfilterQueuePacket) {
        if pendingCount == QueueWorker.batchLimit { decidePending() }
        pending[pendingCount] = packet
        pendingQueued[pendingCount] = packet.queued
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
            case .acceptRewritten:
                // The tracker checked that the copy is the whole packet (`synproxy-short-copy`).
                // A payload attribute's length is 16 bits: a packet that does not fit one (only
                // a GSO packet could) is dropped, never cut.
                if packet.payload.count <= NetfilterQueueMessages.largestPayload {
                    appendRewritten(queue: packet.queue, id: packet.packetID, payload: packet.payload)
                    continue
                }
                verdict = .drop(.synProxyShortCopy)
            default:
                break
            }
            appendVerdict(queue: packet.queue, id: packet.packetID, verdict: verdict)
            if case .drop(let reason) = verdict {
                if reason == .fragment { dropLog.countFragment() }
                logDrop(reason, packet: packet)
            } else if case .reject = verdict {
                logDrop(.rule, packet: packet, rejected: true)
            }
        }
        pendingCount = 0
        if tracker.synProxyOutbox.count > 0 { sendSynProxySegments() }
    }

    /// Sends the SYN proxy's segments (the cookie SYN-ACKs, the SYNs and ACKs to servers, the
    /// window updates and RSTs to clients) through the raw sockets, as the answers to rejects
    /// go: they leave through the namespace's routing and OUTPUT hook, which the gateway
    /// diversion does not queue (docs/synproxy.md).
    private func sendSynProxySegments() {
        let outbox = tracker.synProxyOutbox
        for index in 0..<outbox.count {
            let segment = outbox[index]
            guard let answers, let base = segment.baseAddress else {
                adapter.synProxySendFailures += 1
                continue
            }
            let sent = answers.send(base, length: segment.count, scope: 0)
            if sent >= 0 { continue }
            // A spoofed SYN's source often has no route back: counted apart, so that a flood
            // does not hide real failures.
            if sent == -Int(EHOSTUNREACH) || sent == -Int(ENETUNREACH) {
                adapter.synProxyUnroutable += 1
            } else {
                adapter.synProxySendFailures += 1
            }
        }
        outbox.reset()
    }

    // MARK: Answers to rejected packets

    /// Answers a rejected packet (RejectAnswer): an RST for TCP, a port unreachable for UDP,
    /// within the rate limit. Rejects are rare; the packet is parsed again here rather than
    /// carried out of the tracker. An unreachable's source is the datagram's destination when it
    /// was addressed to this host (INPUT), else the kernel's choice (icmp_send, icmpv6_send).
    private func answer(_ packet: NetfilterQueuePacket) {
        guard let answers else {
            adapter.rejectAnswersFailed += 1
            return
        }
        let bytes = packet.payload
        let length: Int
        switch PacketParser.parse(bytes, wireLength: packet.wireLength) {
        case .tcp(let segment):
            length = RejectAnswer.reset(answering: segment, into: answerBuffer)
        case .datagram(let datagram) where datagram.kind == .udp:
            let local = packet.hook == .input ? datagram.key.destination : nil
            length = RejectAnswer.portUnreachable(quoting: bytes, wireLength: packet.wireLength,
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
        let scope = packet.inputInterface != 0 ? packet.inputInterface : packet.outputInterface
        if answers.send(answerBuffer, length: length, scope: scope) < 0 {
            adapter.rejectAnswersFailed += 1
        } else {
            adapter.rejectAnswers += 1
        }
    }

    /// Whether a packet the tracker would drop is one of seqwall's own recent answers coming
    /// back through the queue (RecentAnswers).
    private func isOwnAnswer(_ packet: NetfilterQueuePacket) -> Bool {
        let bytes = packet.payload
        guard let ticket = AnswerTicket(PacketParser.parse(bytes, wireLength: packet.wireLength)) else {
            return false
        }
        return recentAnswers.contains(ticket, now: now)
    }

    // MARK: Drop log

    /// Hands a dropped packet to the drop log as `set drop-log` says: `off` nothing, `sampled`
    /// within DropLogSampler's rate (the rest counted, and summarised by the writer), `full`
    /// every one. Nothing here formats, writes or allocates: the packet is parsed again into
    /// plain values and pushed into the ring the DropLogWriter thread drains.
    private func logDrop(_ reason: DropReason, packet: NetfilterQueuePacket, rejected: Bool = false) {
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
        let bytes = packet.payload
        if reason == .fragment, let fragment = IPFragment(bytes, wireLength: packet.wireLength) {
            dropLog.ring.push(DropLogRecord(fragment, reason: reason, queue: packet.queue))
            return
        }
        let parsed = PacketParser.parse(bytes, wireLength: packet.wireLength)
        var state = TCPState.none
        if case .tcp(let segment) = parsed, let (connection, _) = tracker.connection(for: FlowKey(segment)) {
            state = connection.state
        }
        dropLog.ring.push(DropLogRecord(parsed, reason: reason, rejected: rejected, state: state, queue: packet.queue))
    }

    @inline(__always)
    private func appendVerdict(queue: UInt16, id: UInt32, verdict: Verdict) {
        if sendLength + NetfilterQueueMessages.verdictCapacity > QueueWorker.sendBufferSize { flushVerdicts() }
        // A reject is dropped here; its answer went out on its own (answer(_:)).
        let accept: Bool
        if case .accept = verdict { accept = true } else { accept = false }
        sendLength += NetfilterQueueMessages.putVerdict(sendBuffer + sendLength, queue: queue, packetID: id, accept: accept)
    }

    /// An accept verdict that replaces the packet with `payload`, the whole packet as the
    /// tracker rewrote it.
    private func appendRewritten(queue: UInt16, id: UInt32, payload: UnsafeRawBufferPointer) {
        if sendLength + NetfilterQueueMessages.verdictCapacity + payload.count + 4 > QueueWorker.sendBufferSize {
            flushVerdicts()
        }
        sendLength += NetfilterQueueMessages.putVerdict(sendBuffer + sendLength, queue: queue, packetID: id,
                                                        payload: payload)
    }

    /// Sends the queued verdicts as one datagram.
    private func flushVerdicts() {
        guard sendLength > 0 else { return }
        if let sink, sink.send(sendBuffer, length: sendLength) < 0 { adapter.sendErrors += 1 }
        sendLength = 0
    }
}
