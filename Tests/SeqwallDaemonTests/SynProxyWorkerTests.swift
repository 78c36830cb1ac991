import CNetfilterQueue
import Logging
import SeqwallControl
import SeqwallCore
@testable import SeqwallDaemon
import SeqwallRules
import SeqwallTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The SYN proxy through a queue worker on a fake kernel queue (docs/synproxy.md): the
/// handshakes seqwall answers itself, what it sends through the raw sockets (checksums
/// checked), and the translated packets it sends back in the verdicts, compared byte for byte
/// with the packets the other half of the connection must see, built from scratch.
@Suite("SYN proxy through a queue worker")
struct SynProxyWorkerTests {
    static let rules = """
        default in block
        default out pass
        pass in tcp to port 80 synproxy
        set pickup grace 0
        """

    static let accept = UInt32(NF_ACCEPT)
    static let drop = UInt32(NF_DROP)
    static let clientISN: UInt32 = 1000
    static let serverISN: UInt32 = 700_000

    let kernel = FakeKernelQueue()
    let answers = FakeAnswerSender()
    let family: Family
    let worker: QueueWorker
    private var nextID: UInt32 = 1

    init(_ family: Family, settings: QueueSettings = QueueSettings().copyingWholePackets()) throws {
        self.family = family
        let policy = try RuleFile.parse(text: Self.rules, file: "test.rules")
        let kernel = self.kernel
        worker = try QueueWorker(queue: 0, settings: settings, policy: policy,
                                 capacity: 1024, shares: 1, logger: Logger(label: "test"), answers: answers,
                                 connect: { _, _ in (kernel, kernel) })
    }

    /// A segment of the client (port `port` to 80) or of the server (80 to `port`).
    func packet(fromClient: Bool, port: UInt16 = 40000, sequence: UInt32, acknowledgment: UInt32,
                flags: TCPFlags, window: UInt16, options: [TCPOptionSpec] = [], payload: Int = 0) -> PacketBuilder {
        var builder = fromClient ? PacketBuilder(source: family.client, destination: family.server)
            : PacketBuilder(source: family.server, destination: family.client)
        builder.sourcePort = fromClient ? port : 80
        builder.destinationPort = fromClient ? 80 : port
        builder.sequence = sequence
        builder.acknowledgment = acknowledgment
        builder.flags = flags
        builder.window = window
        builder.options = options
        builder.payloadLength = payload
        return builder
    }

    /// Hands one packet to the worker; returns its verdict and what the worker sent itself.
    mutating func deliver(_ builder: PacketBuilder, wireLength: Int? = nil)
        -> (verdict: NetfilterQueueMessages.VerdictMessage?, sent: [TCPSegment]) {
        let id = nextID
        nextID += 1
        let before = answers.answers.count
        let verdictsBefore = kernel.verdicts.count
        kernel.enqueue([FakeKernelQueue.message(builder.build(), id: id, wireLength: wireLength)])
        _ = worker.receiveBatch()
        let sent = answers.answers[before...].map { answer -> TCPSegment in
            #expect(tcpChecksumHolds(answer.bytes), "seqwall's own segment has a bad checksum")
            guard case .tcp(let segment) = parse(answer.bytes) else {
                Issue.record("seqwall sent something that is not a TCP segment")
                return TCPSegment(source: family.client, destination: family.client, sourcePort: 0,
                                  destinationPort: 0, sequence: 0, acknowledgment: 0, flags: [], window: 0)
            }
            return segment
        }
        let verdict = kernel.verdicts.dropFirst(verdictsBefore).first ?? nil
        #expect(verdict?.packetID == id)
        return (verdict, sent)
    }

    /// The client's SYN and its cookie ACK on `port`: returns the cookie and the timestamp value
    /// of seqwall's SYN-ACK.
    mutating func handshakeWithSeqwall(port: UInt16) throws -> (cookie: UInt32, timestamp: UInt32) {
        let syn = deliver(packet(fromClient: true, port: port, sequence: Self.clientISN, acknowledgment: 0,
                                 flags: .syn, window: 64240,
                                 options: [.mss(1460), .sackPermitted, .timestamps(value: 5000, echo: 0),
                                           .noOperation, .windowScale(7)]))
        #expect(syn.verdict?.verdict == Self.drop)
        let synAck = try #require(syn.sent.first)
        #expect(syn.sent.count == 1)
        #expect(synAck.flags == [.syn, .ack] && synAck.window == 0)
        #expect(synAck.source == family.server && synAck.destination == family.client)
        #expect(synAck.sourcePort == 80 && synAck.destinationPort == port)
        #expect(synAck.acknowledgment == Self.clientISN + 1)
        #expect(synAck.options.hasTimestamps && synAck.options.timestampEcho == 5000)
        #expect(synAck.options.sackPermitted && synAck.options.hasWindowScale && synAck.options.windowScale == 7)
        let cookie = synAck.sequence
        let timestamp = synAck.options.timestampValue
        #expect(worker.tracker.connection(for: FlowKey(synAck)) == nil, "a SYN stores nothing")

        let ack = deliver(packet(fromClient: true, port: port, sequence: Self.clientISN + 1,
                                 acknowledgment: cookie &+ 1, flags: .ack, window: 502,
                                 options: [.noOperation, .noOperation, .timestamps(value: 5001, echo: timestamp)]))
        #expect(ack.verdict?.verdict == Self.drop)
        let serverSyn = try #require(ack.sent.first)
        #expect(ack.sent.count == 1)
        #expect(serverSyn.flags == .syn && serverSyn.sequence == Self.clientISN)
        #expect(serverSyn.source == family.client && serverSyn.destination == family.server)
        #expect(serverSyn.sourcePort == port && serverSyn.destinationPort == 80)
        #expect(serverSyn.options.mss == (family == .ipv4 ? 1460 : 1440))
        #expect(serverSyn.options.hasWindowScale && serverSyn.options.windowScale == 7)
        #expect(serverSyn.options.sackPermitted)
        #expect(serverSyn.options.hasTimestamps && serverSyn.options.timestampValue == 5001)
        let (connection, _) = try #require(worker.tracker.connection(for: FlowKey(serverSyn)))
        #expect(connection.proxied && connection.state == .synSent)
        #expect(ConnectionRecord(connection, now: 0).proxied == true)
        return (cookie, timestamp)
    }

    @Test("a queue bound not to proxy (--synproxy-queue names another) drops the rule's SYN unanswered",
          arguments: Family.allCases)
    static func wrongQueue(family: Family) throws {
        var settings = QueueSettings()
        settings.proxiesSynProxyRules = false
        var test = try SynProxyWorkerTests(family, settings: settings)
        let syn = test.deliver(test.packet(fromClient: true, sequence: Self.clientISN, acknowledgment: 0, flags: .syn,
                                           window: 64240, options: [.mss(1460)]))
        #expect(syn.verdict?.verdict == Self.drop && syn.sent.isEmpty)
        #expect(test.worker.tracker.counters[.synProxyWrongQueue] == 1)
        #expect(test.worker.tracker.counters.synProxyCookiesSent == 0 && test.worker.tracker.connectionCount == 0)
    }

    @Test("a cookie SYN-ACK with no route to its destination is counted unroutable, not a send failure",
          arguments: Family.allCases)
    static func unroutable(family: Family) throws {
        var test = try SynProxyWorkerTests(family)
        for (port, errno) in [(40000, ENETUNREACH), (40001, EHOSTUNREACH), (40002, EPERM)] {
            test.answers.failure = errno
            let syn = test.deliver(test.packet(fromClient: true, port: UInt16(port), sequence: Self.clientISN,
                                               acknowledgment: 0, flags: .syn, window: 64240, options: [.mss(1460)]))
            #expect(syn.verdict?.verdict == Self.drop && syn.sent.count == 1)
        }
        #expect(test.worker.adapter.synProxyUnroutable == 2 && test.worker.adapter.synProxySendFailures == 1)
        let stats = StatsRecord(queues: [test.worker.metrics()])
        #expect(stats.synproxy?.unroutable == 2 && stats.synproxy?.send_failures == 1)
    }

    @Test("handshakes answered by seqwall, data translated both ways, a refusal, a forged ACK, a closed port's SYN",
          arguments: Family.allCases)
    static func proxied(family: Family) throws {
        var test = try SynProxyWorkerTests(family)
        try test.run()
    }

    mutating func run() throws {
        let (cookie, proxyTimestamp) = try handshakeWithSeqwall(port: 40000)

        // The server's SYN-ACK: an ACK to the server in the client's name, and a window update
        // to the client in the server's; the SYN-ACK itself is dropped.
        let serverTimestamp: UInt32 = 90000
        let synAck = deliver(packet(fromClient: false, sequence: Self.serverISN, acknowledgment: Self.clientISN + 1,
                                    flags: [.syn, .ack], window: 65535,
                                    options: [.mss(1460), .sackPermitted,
                                              .timestamps(value: serverTimestamp, echo: 5001), .noOperation,
                                              .windowScale(6)]))
        #expect(synAck.verdict?.verdict == Self.drop)
        try #require(synAck.sent.count == 2)
        let toServer = synAck.sent[0]
        #expect(toServer.flags == .ack && toServer.destination == family.server)
        #expect(toServer.sequence == Self.clientISN + 1 && toServer.acknowledgment == Self.serverISN + 1)
        #expect(toServer.window == 502)
        #expect(toServer.options.timestampValue == 5001 && toServer.options.timestampEcho == serverTimestamp)
        let update = synAck.sent[1]
        #expect(update.flags == .ack && update.destination == family.client)
        #expect(update.sequence == cookie &+ 1 && update.acknowledgment == Self.clientISN + 1)
        #expect(update.window == 65535 >> 7)
        #expect(update.options.timestampValue == proxyTimestamp && update.options.timestampEcho == 5001)
        let key = FlowKey(source: family.client, destination: family.server, sourcePort: 40000, destinationPort: 80)
        #expect(worker.tracker.connection(for: key)?.0.state == .established)

        let sequenceOffset = Self.serverISN &- cookie
        let timestampOffset = serverTimestamp &- proxyTimestamp

        // Client data: acknowledgment and timestamp echo move into the server's numbers.
        let clientData = deliver(packet(fromClient: true, sequence: Self.clientISN + 1, acknowledgment: cookie &+ 1,
                                        flags: [.ack, .psh], window: 502,
                                        options: [.noOperation, .noOperation,
                                                  .timestamps(value: 5002, echo: proxyTimestamp)],
                                        payload: 100))
        #expect(clientData.verdict?.verdict == Self.accept && clientData.sent.isEmpty)
        #expect(clientData.verdict?.payload == packet(
            fromClient: true, sequence: Self.clientISN + 1, acknowledgment: Self.serverISN + 1, flags: [.ack, .psh],
            window: 502, options: [.noOperation, .noOperation, .timestamps(value: 5002, echo: serverTimestamp)],
            payload: 100).build())

        // Server data: sequence number and timestamp value move into the client's numbers, the
        // window from the server's shift (6) to the one seqwall advertised (7).
        let serverData = deliver(packet(fromClient: false, sequence: Self.serverISN + 1,
                                        acknowledgment: Self.clientISN + 101, flags: [.ack, .psh], window: 1000,
                                        options: [.noOperation, .noOperation,
                                                  .timestamps(value: serverTimestamp + 1, echo: 5002)],
                                        payload: 200))
        #expect(serverData.verdict?.verdict == Self.accept)
        #expect(serverData.verdict?.payload == packet(
            fromClient: false, sequence: cookie &+ 1, acknowledgment: Self.clientISN + 101, flags: [.ack, .psh],
            window: 500, options: [.noOperation, .noOperation, .timestamps(value: proxyTimestamp &+ 1, echo: 5002)],
            payload: 200).build())
        #expect(sequenceOffset &+ cookie == Self.serverISN && timestampOffset &+ proxyTimestamp == serverTimestamp)

        // A client ACK with a SACK block: every edge moves into the server's numbers.
        let sack = deliver(packet(fromClient: true, sequence: Self.clientISN + 101, acknowledgment: cookie &+ 51,
                                  flags: .ack, window: 502,
                                  options: [.noOperation, .noOperation, .timestamps(value: 5003, echo: proxyTimestamp &+ 1),
                                            .noOperation, .noOperation, .sack([(cookie &+ 101, cookie &+ 201)])]))
        #expect(sack.verdict?.verdict == Self.accept)
        #expect(sack.verdict?.payload == packet(
            fromClient: true, sequence: Self.clientISN + 101, acknowledgment: Self.serverISN + 51, flags: .ack,
            window: 502, options: [.noOperation, .noOperation, .timestamps(value: 5003, echo: serverTimestamp + 1),
                                   .noOperation, .noOperation, .sack([(Self.serverISN + 101, Self.serverISN + 201)])]).build())

        // A proxied packet copied short cannot be sent back whole: dropped with its reason.
        let short = packet(fromClient: true, sequence: Self.clientISN + 101, acknowledgment: cookie &+ 201,
                           flags: .ack, window: 502,
                           options: [.noOperation, .noOperation, .timestamps(value: 5004, echo: proxyTimestamp &+ 1)],
                           payload: 20)
        let shortBytes = short.build()
        kernel.enqueue([FakeKernelQueue.message(Array(shortBytes.prefix(shortBytes.count - 10)), id: 99,
                                                wireLength: shortBytes.count)])
        _ = worker.receiveBatch()
        #expect(kernel.verdicts.last??.verdict == Self.drop && kernel.verdicts.last??.payload == nil)
        #expect(worker.tracker.counters[.synProxyShortCopy] == 1)

        // The server refuses another client's handshake (a closed port): the client, which
        // believes itself connected, gets an RST at its next expected sequence number.
        let (refusedCookie, _) = try handshakeWithSeqwall(port: 40001)
        let reset = deliver(packet(fromClient: false, port: 40001, sequence: 0, acknowledgment: Self.clientISN + 1,
                                   flags: [.rst, .ack], window: 0))
        #expect(reset.verdict?.verdict == Self.drop)
        let clientReset = try #require(reset.sent.first)
        #expect(reset.sent.count == 1)
        #expect(clientReset.flags == .rst && clientReset.sequence == refusedCookie &+ 1)
        #expect(clientReset.source == family.server && clientReset.destination == family.client)
        #expect(clientReset.destinationPort == 40001)
        let refusedKey = FlowKey(source: family.client, destination: family.server, sourcePort: 40001,
                                 destinationPort: 80)
        #expect(worker.tracker.connection(for: refusedKey) == nil)

        // An ACK whose cookie seqwall never made: dropped with its own reason, nothing sent.
        let forged = deliver(packet(fromClient: true, port: 40002, sequence: Self.clientISN + 1,
                                    acknowledgment: 0x1234_5678, flags: .ack, window: 502))
        #expect(forged.verdict?.verdict == Self.drop && forged.sent.isEmpty)

        // The refusal marked the port closed: the next SYN to it goes to the server as it is.
        let passed = deliver(packet(fromClient: true, port: 40003, sequence: Self.clientISN, acknowledgment: 0,
                                    flags: .syn, window: 64240, options: [.mss(1460)]))
        #expect(passed.verdict?.verdict == Self.accept && passed.verdict?.payload == nil && passed.sent.isEmpty)

        let counters = worker.tracker.counters
        #expect(counters.synProxyClosedPortsPassed == 1)
        #expect(counters.synProxyCookiesSent == 2 && counters.synProxyValidAcks == 2)
        #expect(counters.synProxyInvalidAcks == 1 && counters[.synProxyBadCookie] == 1)
        #expect(counters.synProxyConnections == 2 && counters.synProxyRefused == 1)
        #expect(counters.synProxySegmentsLost == 0 && worker.adapter.synProxySendFailures == 0)
        // Client SYN and ACK twice, the server's SYN-ACK, the server's RST.
        #expect(counters[.synProxyHandshake] == 6)
        #expect(counters.seen == counters.accepted + counters.dropped)
        let stats = StatsRecord(queues: [worker.metrics()])
        #expect(stats.synproxy?.cookies_sent == 2 && stats.synproxy?.invalid_acks == 1)
        #expect(stats.synproxy?.server_refused == 1 && stats.drops["synproxy-bad-cookie"] == 1)
        #expect(stats.synproxy?.closed_ports_passed == 1)
    }
}
