import CNetfilterQueue
import Logging
import SeqwallCore
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

    /// `capacity` and the global half-open limit are this worker's share: one of `shares`.
    init(queue: UInt16, settings: QueueSettings, policy: Policy, capacity: Int, shares: Int,
         logger: Logger) throws(SystemError) {
        self.queue = queue
        self.logger = logger
        tracker = ConnectionTracker(policy: policy, capacity: capacity, shares: shares)
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
            if packets { receiveBatch(context: context) }
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

    /// `198.51.100.7:53` or `[2001:db8::7]:53`.
    static func endpoint(_ address: IPAddress, _ port: UInt16) -> String {
        address.isIPv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
    }

    /// Drop lines per second at most, and the burst allowed above it: a flood of bad packets
    /// must not become a flood of log lines.
    static let dropLogRate: UInt64 = 10
    static let dropLogBurst: UInt64 = 20
    private var dropLogTokens = QueueWorker.dropLogBurst
    private var dropLogRefilledAt: UInt64 = 0
    private var dropLogSuppressed: UInt64 = 0

    /// One line per dropped packet, rate-limited. The packet is parsed again only when a line
    /// is written, so the drop path itself stays as cheap as the accept path.
    private func logDrop(_ reason: DropReason, packet: seqwall_nfq_packet, rejected: Bool = false) {
        let elapsed = now &- dropLogRefilledAt
        let refill = elapsed / (1_000_000_000 / QueueWorker.dropLogRate)
        if refill > 0 {
            dropLogTokens = min(QueueWorker.dropLogBurst, dropLogTokens + refill)
            dropLogRefilledAt = now
        }
        guard dropLogTokens > 0 else {
            dropLogSuppressed += 1
            return
        }
        dropLogTokens -= 1
        let bytes = UnsafeRawBufferPointer(start: packet.payload, count: Int(packet.payload_length))
        var line = rejected ? "reject reason=\(reason)" : "drop reason=\(reason)"
        line += " queue=\(packet.queue) hook=\(QueueWorker.hook(of: packet)) in=\(packet.indev) out=\(packet.outdev)"
        switch PacketParser.parse(bytes, wireLength: Int(packet.wire_length)) {
        case .tcp(let segment):
            line += " tcp \(QueueWorker.endpoint(segment.source, segment.sourcePort))"
            line += " -> \(QueueWorker.endpoint(segment.destination, segment.destinationPort))"
            line += " flags=\(segment.flags.names) seq=\(segment.sequence) ack=\(segment.acknowledgment)"
            line += " win=\(segment.window) len=\(segment.payloadLength)"
            if let (slot, _) = tracker.table.find(FlowKey(segment)) {
                line += " state=\(tracker.table.connection(at: slot).pointee.state)"
            }
        case .datagram(let datagram):
            let key = datagram.key
            let protocolName = TrackedProtocol(protocolNumber: key.protocolNumber) ?? .udp
            if protocolName.hasPorts {
                line += " \(protocolName.conntrackName) \(QueueWorker.endpoint(key.source, key.sourcePort))"
                line += " -> \(QueueWorker.endpoint(key.destination, key.destinationPort))"
            } else {
                let echo = ICMPEcho.fields(of: datagram.kind == .echoReply ? key.reversed : key)
                line += " \(protocolName.conntrackName) \(key.source) -> \(key.destination)"
                line += " \(datagram.kind == .echoReply ? "echo-reply" : "echo-request") id=\(echo.identifier)"
            }
        case .icmpError(let error):
            let quoted = error.quoted
            line += " icmp-error type=\(error.type) code=\(error.code) \(error.source) -> \(error.destination)"
            line += " quoting proto=\(quoted.protocolNumber) \(quoted.source) -> \(quoted.destination)"
            if quoted.protocolNumber == TrackedProtocol.tcpNumber || quoted.protocolNumber == TrackedProtocol.udpNumber {
                line += " sport=\(quoted.sourcePort) dport=\(quoted.destinationPort)"
            }
            if quoted.protocolNumber == TrackedProtocol.tcpNumber { line += " seq=\(error.quotedSequence)" }
        case .neighbourDiscovery(let source, let destination):
            line += " neighbour-discovery \(source) -> \(destination)"
        case .other(let protocolNumber, let source, let destination):
            line += " proto=\(protocolNumber) \(source) -> \(destination)"
        case .invalid:
            line += " length=\(packet.wire_length)"
        }
        if dropLogSuppressed > 0 {
            line += " (\(dropLogSuppressed) earlier drops not logged)"
            dropLogSuppressed = 0
        }
        logger.info("\(line)")
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
