import CNetfilterQueue
import Foundation
import Logging
import SeqwallControl
import SeqwallCore
@testable import SeqwallDaemon
import SeqwallRules
import SeqwallTestSupport
import Testing

/// A queue worker on a fake kernel queue: packets in as netlink messages, verdicts out as
/// netlink messages, read back as the kernel reads them.
@Suite("Queue worker")
struct QueueWorkerTests {
    /// Host mode: port 8080 open, 8082 rejected, everything else inbound blocked.
    static let rules = """
        default in block
        default out pass
        pass in tcp to port 8080
        reject in tcp to port 8082
        set pickup grace 0
        """

    static let accept = UInt32(NF_ACCEPT)
    static let drop = UInt32(NF_DROP)

    let kernel = FakeKernelQueue()
    let answers = FakeAnswerSender()

    func worker(answers: FakeAnswerSender?, settings: QueueSettings = QueueSettings(),
                connect: QueueWorker.Connect? = nil) throws -> QueueWorker {
        let policy = try RuleFile.parse(text: Self.rules, file: "test.rules")
        let kernel = self.kernel
        return try QueueWorker(queue: 0, settings: settings, policy: policy, capacity: 1024, shares: 1,
                               logger: Logger(label: "test"), answers: answers,
                               connect: connect ?? { _, _ in (kernel, kernel) })
    }

    func worker() throws -> QueueWorker { try worker(answers: answers) }

    /// A SYN from the test client to `port` on the server.
    static func syn(port: UInt16, from sourcePort: UInt16 = 40000, family: Family = .ipv4) -> [UInt8] {
        var builder = PacketBuilder(source: family.client, destination: family.server)
        builder.sourcePort = sourcePort
        builder.destinationPort = port
        builder.sequence = 1000
        return builder.build()
    }

    static func verdict(_ id: UInt32, _ verdict: UInt32) -> NetfilterQueueMessages.VerdictMessage {
        .init(queue: 0, packetID: id, verdict: verdict)
    }

    @Test("a batch's verdicts go back in one send, in order, with their ids, accepts and drops mixed")
    func batchOrder() throws {
        let worker = try worker()
        kernel.enqueue([
            FakeKernelQueue.message(Self.syn(port: 8080, from: 40001), id: 7),
            FakeKernelQueue.message(Self.syn(port: 8081, from: 40002), id: 8),
            FakeKernelQueue.message(Self.syn(port: 8080, from: 40003, family: .ipv6), id: 9),
            FakeKernelQueue.message(Self.syn(port: 9999, from: 40004, family: .ipv6), id: 10),
            FakeKernelQueue.message(Self.syn(port: 8080, from: 40005), id: 11),
        ])
        #expect(worker.receiveBatch() == 5)
        #expect(kernel.sent.count == 1)
        #expect(kernel.verdicts == [Self.verdict(7, Self.accept), Self.verdict(8, Self.drop),
                                    Self.verdict(9, Self.accept), Self.verdict(10, Self.drop),
                                    Self.verdict(11, Self.accept)])
        #expect(worker.tracker.counters.seen == 5 && worker.tracker.counters.accepted == 3)
        #expect(worker.tracker.counters[.rule] == 2)
        #expect(worker.adapter.malformedMessages == 0 && worker.adapter.sendErrors == 0)
    }

    @Test("a full batch and the next: every packet answered once, in order")
    func fullBatches() throws {
        let worker = try worker()
        let limit = QueueWorker.batchLimit
        for batch in 0..<2 {
            kernel.enqueue((0..<limit).map { index in
                let id = UInt32(batch * limit + index)
                return FakeKernelQueue.message(Self.syn(port: index % 2 == 0 ? 8080 : 8081,
                                                        from: UInt16(20000 + id)), id: id)
            })
        }
        #expect(worker.receiveBatch() == limit)
        #expect(worker.receiveBatch() == limit)
        #expect(worker.receiveBatch() == 0)
        let verdicts = kernel.verdicts
        #expect(verdicts.count == 2 * limit)
        #expect(verdicts == (0..<(2 * limit)).map {
            Self.verdict(UInt32($0), ($0 % limit) % 2 == 0 ? Self.accept : Self.drop)
        })
    }

    @Test("a reject: the packet is dropped and answered with an RST to its sender, on its interface")
    func reject() throws {
        let worker = try worker()
        kernel.enqueue([FakeKernelQueue.message(Self.syn(port: 8082), id: 3, inputInterface: 5)])
        _ = worker.receiveBatch()
        #expect(kernel.verdicts == [Self.verdict(3, Self.drop)])
        #expect(answers.answers.count == 1)
        let answer = try #require(answers.answers.first)
        #expect(answer.scope == 5)
        guard case .tcp(let segment) = parse(answer.bytes) else {
            Issue.record("the answer is not a TCP segment")
            return
        }
        #expect(segment.flags.contains(.rst))
        #expect(segment.source == Family.ipv4.server && segment.destination == Family.ipv4.client)
        #expect(segment.sourcePort == 8082 && segment.destinationPort == 40000)
        #expect(segment.acknowledgment == 1001)
        #expect(worker.adapter.rejectAnswers == 1 && worker.tracker.counters[.rule] == 1)
    }

    @Test("a reject without a way to answer, or whose answer fails: dropped all the same, counted")
    func rejectWithoutAnswer() throws {
        let silent = try worker(answers: nil)
        kernel.enqueue([FakeKernelQueue.message(Self.syn(port: 8082), id: 1)])
        _ = silent.receiveBatch()
        #expect(kernel.verdicts == [Self.verdict(1, Self.drop)])
        #expect(silent.adapter.rejectAnswersFailed == 1 && silent.adapter.rejectAnswers == 0)

        let refused = FakeAnswerSender()
        refused.failure = EPERM
        let failing = try worker(answers: refused)
        kernel.enqueue([FakeKernelQueue.message(Self.syn(port: 8082, from: 40010), id: 2)])
        _ = failing.receiveBatch()
        #expect(kernel.verdicts.last == Self.verdict(2, Self.drop))
        #expect(refused.answers.count == 1 && failing.adapter.rejectAnswersFailed == 1)
    }

    @Test("truncated and malformed messages: counted, dropped when their id can be read, the rest of the batch judged")
    func malformed() throws {
        let worker = try worker()
        let good = FakeKernelQueue.message(Self.syn(port: 8080, from: 40001), id: 1)
        // A length past the datagram's end.
        var overrun = FakeKernelQueue.message(Self.syn(port: 8080, from: 40002), id: 2)
        let overrunLength = UInt32(overrun.count + 8)
        overrun.withUnsafeMutableBytes { $0.storeBytes(of: overrunLength, as: UInt32.self) }
        // Shorter than a netlink header.
        let stub: [UInt8] = [1, 2, 3]
        // A packet message whose last attribute runs past the message: its id is readable.
        var badAttribute = FakeKernelQueue.message(Self.syn(port: 8080, from: 40004), id: 4)
        let last = badAttribute.count - (Self.syn(port: 8080).count + 3) / 4 * 4 - 4
        badAttribute.withUnsafeMutableBytes { $0.storeBytes(of: UInt16(0xFFF0), toByteOffset: last, as: UInt16.self) }
        // A packet message without its packet header: no id to answer.
        var headerless = [UInt8](good.prefix(NetfilterQueueMessages.attributesOffset))
        headerless.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(NetfilterQueueMessages.attributesOffset), as: UInt32.self) }
        // Cut short by the receive (MSG_TRUNC): the id survives.
        let cut = Array(FakeKernelQueue.message(Self.syn(port: 8080, from: 40006), id: 6).prefix(40))
        // A message the kernel never sends on this socket (a verdict): not a packet.
        var verdict = [UInt8](repeating: 0, count: NetfilterQueueMessages.verdictLength)
        _ = verdict.withUnsafeMutableBytes { NetfilterQueueMessages.putVerdict($0.baseAddress!, queue: 0, packetID: 9, accept: true) }
        let last8 = FakeKernelQueue.message(Self.syn(port: 8080, from: 40008), id: 8)
        kernel.enqueue(.datagrams([.bytes(good), .bytes(overrun), .bytes(stub), .bytes(badAttribute),
                                   .bytes(headerless), .truncated(cut), .bytes(verdict), .bytes(last8)]))
        #expect(worker.receiveBatch() == 8)
        #expect(kernel.verdicts == [Self.verdict(1, Self.accept), Self.verdict(4, Self.drop),
                                    Self.verdict(6, Self.drop), Self.verdict(8, Self.accept)])
        #expect(worker.adapter.malformedMessages == 6)
        #expect(worker.tracker.counters.seen == 2)
    }

    @Test("two packet messages in one datagram, and control messages beside them: both judged, nothing counted")
    func severalMessagesInOneDatagram() throws {
        let worker = try worker()
        var noop = [UInt8](repeating: 0, count: 16)
        noop.withUnsafeMutableBytes {
            $0.storeBytes(of: UInt32(16), as: UInt32.self)
            $0.storeBytes(of: UInt16(NLMSG_NOOP), toByteOffset: 4, as: UInt16.self)
        }
        func padded(_ bytes: [UInt8]) -> [UInt8] { bytes + [UInt8](repeating: 0, count: (4 - bytes.count % 4) % 4) }
        let datagram = padded(FakeKernelQueue.message(Self.syn(port: 8080, from: 40001), id: 1)) + noop
            + FakeKernelQueue.message(Self.syn(port: 8081, from: 40002), id: 2)
        kernel.enqueue([datagram])
        #expect(worker.receiveBatch() == 1)
        #expect(kernel.verdicts == [Self.verdict(1, Self.accept), Self.verdict(2, Self.drop)])
        #expect(worker.adapter.malformedMessages == 0)
    }

    @Test("ENOBUFS from the socket: counted, and the worker receives again")
    func enobufs() throws {
        let worker = try worker()
        kernel.enqueue(.error(ENOBUFS))
        kernel.enqueue(.error(ENOBUFS))
        kernel.enqueue([FakeKernelQueue.message(Self.syn(port: 8080), id: 1)])
        #expect(worker.receiveBatch() == 1)
        #expect(worker.adapter.enobufs == 2)
        #expect(kernel.verdicts == [Self.verdict(1, Self.accept)])
        // Another error ends the turn without a verdict or a count.
        kernel.enqueue(.error(EIO))
        #expect(worker.receiveBatch() == 0)
        #expect(worker.adapter.enobufs == 2 && kernel.sent.count == 1)
    }

    @Test("a refused send: counted as a send error; the next batch goes out")
    func sendErrors() throws {
        let worker = try worker()
        kernel.failSends([ENOBUFS])
        kernel.enqueue([FakeKernelQueue.message(Self.syn(port: 8080, from: 40001), id: 1)])
        kernel.enqueue([FakeKernelQueue.message(Self.syn(port: 8080, from: 40002), id: 2)])
        _ = worker.receiveBatch()
        #expect(worker.adapter.sendErrors == 1)
        _ = worker.receiveBatch()
        #expect(worker.adapter.sendErrors == 1)
        #expect(kernel.verdicts == [Self.verdict(1, Self.accept), Self.verdict(2, Self.accept)])
    }

    @Test("packets delivered while the queue is bound are decided, their verdicts sent once it is")
    func packetsWhileBinding() throws {
        let kernel = self.kernel
        let early = FakeKernelQueue.message(Self.syn(port: 8081), id: 42)
        _ = try worker(answers: answers) { _, deliver in
            early.withUnsafeBytes { bytes in
                var walk = NetfilterQueueMessages.Walk(bytes)
                while let message = walk.next() {
                    if case .packet(let packet) = NetfilterQueueMessages.decode(message) { deliver(packet) }
                }
            }
            return (kernel, kernel)
        }
        #expect(kernel.verdicts == [Self.verdict(42, Self.drop)])
    }

    @Test("run() judges what the queue delivers, and stop() ends it, closing the queue")
    func runAndStop() throws {
        let worker = try worker()
        kernel.enqueue([FakeKernelQueue.message(Self.syn(port: 8080, from: 40001), id: 1)])
        kernel.enqueue([FakeKernelQueue.message(Self.syn(port: 8081, from: 40002), id: 2)])
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            worker.run()
            done.signal()
        }
        thread.start()
        let deadline = Date().addingTimeInterval(20)
        while kernel.verdicts.count < 2 && Date() < deadline { usleep(10_000) }
        #expect(kernel.verdicts == [Self.verdict(1, Self.accept), Self.verdict(2, Self.drop)])
        #expect(!kernel.closed)
        worker.mailbox.post { $0.stop() }
        #expect(done.wait(timeout: .now() + 20) == .success)
        #expect(kernel.closed)
    }

    @Test("the figures stats and the metrics endpoint show: the adapter's counters, the tracker's, fail-open")
    func metrics() throws {
        var settings = QueueSettings()
        settings.failOpen = true
        let worker = try worker(answers: answers, settings: settings)
        kernel.enqueue(.error(ENOBUFS))
        kernel.enqueue(.datagrams([.bytes(FakeKernelQueue.message(Self.syn(port: 8080), id: 1)),
                                   .bytes([0, 1, 2]),
                                   .bytes(FakeKernelQueue.message(Self.syn(port: 8082, from: 40001), id: 2))]))
        kernel.failSends([EPERM])
        _ = worker.receiveBatch()
        // Taken by the worker's own thread, through its mailbox, as the daemon takes them.
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            worker.run()
            done.signal()
        }
        thread.start()
        let figures = QueueWorker.metrics(of: [worker])
        worker.mailbox.post { $0.stop() }
        #expect(done.wait(timeout: .now() + 20) == .success)
        let queue = try #require(figures.first)
        #expect(figures.count == 1 && queue.queue == 0 && queue.failOpen)
        #expect(queue.enobufs == 1 && queue.malformedMessages == 1 && queue.sendErrors == 1)
        #expect(queue.rejectAnswers == 1 && queue.rejectAnswersLimited == 0 && queue.rejectAnswersFailed == 0)
        #expect(queue.counters.seen == 2 && queue.counters.accepted == 1 && queue.counters[.rule] == 1)
        // The worker has stopped: its tracker is this thread's to read.
        #expect(queue.connections > 0 && queue.connections == worker.tracker.connectionCount)
        #expect(queue.halfOpen == 1)
        #expect(queue.connectionLimit == worker.tracker.connectionLimit)
        #expect(queue.processing.count == 2)
        let stats = StatsRecord(queues: figures)
        #expect(stats.packets.seen == 2 && stats.queues.map(\.enobufs) == [1] && stats.queues.map(\.send_errors) == [1])
        #expect(stats.queues.map(\.reject_answers) == [1] && stats.connections.current == queue.connections)
    }
}
