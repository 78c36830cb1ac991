import SeqwallTestSupport
@testable import SeqwallCore
import Testing

/// The SYN proxy's hooks in the tracker (ConnectionTracker+SynProxy.swift) on their own: when a
/// SYN is answered and when it is not, what an unproxied rule's connection sees, the adaptive
/// switch, and a proxied segment without its bytes. The whole exchange, packets and verdicts,
/// is SynProxyWorkerTests' (SeqwallDaemonTests).
@Suite("SYN proxy in the tracker")
struct SynProxyEngineTests {
    static let at = SeqwallCore.SourceLocation(file: "synproxy.rules", line: 1, column: 1)

    /// Port 80 proxied, 8080 passed as usual; `mode` for `set synproxy`.
    static func tracker(mode: SynProxyMode = .always, states: Int = 1000) -> ConnectionTracker {
        var policy = Policy()
        policy.defaultInbound = .block
        policy.defaultOutbound = .pass
        policy.limits.states = states
        policy.synProxyMode = mode
        policy.rules = [
            Rule(action: .pass, direction: .inbound, ports: [PortRange(80)], synProxy: SynProxyRule(), location: at),
            Rule(action: .pass, direction: .inbound, ports: [PortRange(8080)], location: at),
        ]
        return ConnectionTracker(policy: policy)
    }

    static func syn(_ family: Family, port: UInt16, from sourcePort: UInt16 = 40000) -> [UInt8] {
        var builder = PacketBuilder(source: family.client, destination: family.server)
        builder.sourcePort = sourcePort
        builder.destinationPort = port
        builder.sequence = 1000
        builder.options = [.mss(1460)]
        return builder.build()
    }

    static func process(_ tracker: ConnectionTracker, _ packet: [UInt8], now: UInt64 = 1_000_000_000) -> Verdict {
        var bytes = packet
        return bytes.withUnsafeMutableBytes {
            tracker.process(UnsafeRawBufferPointer($0), wireLength: packet.count, hook: .input, now: now)
        }
    }

    @Test("a synproxy rule's SYN is answered and dropped, nothing stored; another rule's SYN is tracked",
          arguments: Family.allCases)
    func answeredOrTracked(family: Family) throws {
        let tracker = Self.tracker()
        #expect(Self.process(tracker, Self.syn(family, port: 80)) == .drop(.synProxyHandshake))
        #expect(tracker.connectionCount == 0 && tracker.synProxyOutbox.count == 1)
        let answer = Array(tracker.synProxyOutbox[0])
        #expect(tcpChecksumHolds(answer))
        guard case .tcp(let synAck) = parse(answer) else {
            Issue.record("the answer is not TCP")
            return
        }
        #expect(synAck.flags == [.syn, .ack] && synAck.acknowledgment == 1001 && synAck.window == 0)
        tracker.synProxyOutbox.reset()

        #expect(Self.process(tracker, Self.syn(family, port: 8080)) == .accept)
        #expect(tracker.connectionCount == 1 && tracker.synProxyOutbox.count == 0)
        let (connection, _) = try #require(tracker.connection(for: FlowKey(
            source: family.client, destination: family.server, sourcePort: 40000, destinationPort: 8080)))
        #expect(!connection.proxied)
        #expect(tracker.counters.synProxyCookiesSent == 1)
    }

    @Test("adaptive: SYNs go through unproxied until half-open connections reach the start share")
    func adaptive() {
        // 10 states, start at 20%: proxying starts at 2 half-open connections.
        let tracker = Self.tracker(mode: .adaptive(start: 20, end: 10), states: 10)
        #expect(Self.process(tracker, Self.syn(.ipv4, port: 80, from: 40001)) == .accept)
        #expect(Self.process(tracker, Self.syn(.ipv4, port: 80, from: 40002)) == .accept)
        #expect(tracker.halfOpenCount == 2 && tracker.synProxyOutbox.count == 0)
        #expect(Self.process(tracker, Self.syn(.ipv4, port: 80, from: 40003)) == .drop(.synProxyHandshake))
        #expect(tracker.synProxyOutbox.count == 1 && tracker.connectionCount == 2)
    }

    @Test("an ACK for no connection: a forged cookie is its own drop; off a synproxy rule, no-connection")
    func forgedCookie() {
        let tracker = Self.tracker()
        for port: UInt16 in [80, 8080] {
            var builder = PacketBuilder(source: Family.ipv4.client, destination: Family.ipv4.server)
            builder.destinationPort = port
            builder.sequence = 1001
            builder.acknowledgment = 0xABCD_0001
            builder.flags = .ack
            let expected: Verdict = port == 80 ? .drop(.synProxyBadCookie) : .drop(.noConnection)
            #expect(Self.process(tracker, builder.build()) == expected)
        }
        #expect(tracker.counters.synProxyInvalidAcks == 1 && tracker.synProxyOutbox.count == 0)
    }

    /// The client's ACK (port 80, sequence `sequence`, payload `payload`) to the cookie SYN-ACK
    /// the tracker just sent for `syn(family, port: 80)`.
    static func cookieAck(_ tracker: ConnectionTracker, _ family: Family, sequence: UInt32, payload: Int = 0)
        -> [UInt8]? {
        guard case .tcp(let synAck) = parse(Array(tracker.synProxyOutbox[0])) else { return nil }
        tracker.synProxyOutbox.reset()
        var ack = PacketBuilder(source: family.client, destination: family.server)
        ack.sequence = sequence
        ack.acknowledgment = synAck.sequence &+ 1
        ack.flags = .ack
        ack.payloadLength = payload
        return ack.build()
    }

    @Test("after the first ACK is lost, the client's zero-window probe (sequence = ISN) opens the connection",
          arguments: Family.allCases)
    func zeroWindowProbe(family: Family) throws {
        let tracker = Self.tracker()
        _ = Self.process(tracker, Self.syn(family, port: 80))
        let probe = try #require(Self.cookieAck(tracker, family, sequence: 1000))
        #expect(Self.process(tracker, probe) == .drop(.synProxyHandshake))
        #expect(tracker.counters.synProxyValidAcks == 1 && tracker.counters.synProxyConnections == 1)
        guard case .tcp(let serverSyn) = parse(Array(tracker.synProxyOutbox[0])) else {
            Issue.record("seqwall sent no SYN to the server")
            return
        }
        #expect(serverSyn.flags == .syn && serverSyn.sequence == 1000)
    }

    @Test("while the server has not answered, each client probe sends the server the same SYN again",
          arguments: Family.allCases)
    func serverSynResent(family: Family) throws {
        let tracker = Self.tracker()
        _ = Self.process(tracker, Self.syn(family, port: 80))
        let ack = try #require(Self.cookieAck(tracker, family, sequence: 1001))
        #expect(Self.process(tracker, ack) == .drop(.synProxyHandshake))
        let first = Array(tracker.synProxyOutbox[0])
        tracker.synProxyOutbox.reset()
        // The first SYN is lost: the client, facing a zero window, probes at its ISN.
        let probe = try #require(Self.cookieAckless(family, sequence: 1000))
        #expect(Self.process(tracker, probe, now: 1_300_000_000) == .drop(.synProxyHandshake))
        #expect(tracker.synProxyOutbox.count == 1)
        let again = Array(tracker.synProxyOutbox[0])
        #expect(again == first && tcpChecksumHolds(again))
        #expect(tracker.counters.synProxyConnections == 1 && tracker.connectionCount == 1)
        // The client's RST is not a probe: nothing is sent for it.
        tracker.synProxyOutbox.reset()
        var reset = PacketBuilder(source: family.client, destination: family.server)
        reset.sequence = 1001
        reset.flags = .rst
        _ = Self.process(tracker, reset.build(), now: 1_400_000_000)
        #expect(tracker.synProxyOutbox.count == 0)
    }

    /// A client segment on port 80 at `sequence`, acknowledging nothing new (a window probe).
    static func cookieAckless(_ family: Family, sequence: UInt32) -> [UInt8]? {
        var probe = PacketBuilder(source: family.client, destination: family.server)
        probe.sequence = sequence
        probe.flags = .ack
        return probe.build()
    }

    @Test("an ACK at the ISN with payload is no probe: its cookie is checked at sequence - 1 only")
    func probeWithPayload() throws {
        let tracker = Self.tracker()
        _ = Self.process(tracker, Self.syn(.ipv4, port: 80))
        let ack = try #require(Self.cookieAck(tracker, .ipv4, sequence: 1000, payload: 1))
        #expect(Self.process(tracker, ack) == .drop(.synProxyBadCookie))
        #expect(tracker.counters.synProxyConnections == 0 && tracker.synProxyOutbox.count == 0)
    }

    @Test("on a queue that does not proxy, a synproxy rule's SYN is dropped unanswered and its ACK is any ACK")
    func wrongQueue() {
        let tracker = Self.tracker()
        tracker.proxiesSynProxyRules = false
        #expect(Self.process(tracker, Self.syn(.ipv4, port: 80)) == .drop(.synProxyWrongQueue))
        #expect(tracker.synProxyOutbox.count == 0 && tracker.connectionCount == 0)
        var ack = PacketBuilder(source: Family.ipv4.client, destination: Family.ipv4.server)
        ack.sequence = 1001
        ack.acknowledgment = 0xABCD_0001
        ack.flags = .ack
        #expect(Self.process(tracker, ack.build()) == .drop(.noConnection))
        #expect(tracker.counters.synProxyInvalidAcks == 0 && tracker.counters[.synProxyWrongQueue] == 1)
        // Another rule's connections are tracked as usual.
        #expect(Self.process(tracker, Self.syn(.ipv4, port: 8080)) == .accept)
    }

    /// Takes a proxied connection on port 80 through both handshakes (the server's ISN 5000);
    /// returns a client data segment of it, before translation.
    static func establish(_ tracker: ConnectionTracker) throws -> PacketBuilder {
        _ = process(tracker, syn(.ipv4, port: 80))
        guard case .tcp(let synAck) = parse(Array(tracker.synProxyOutbox[0])) else { throw Unexpected.notTCP }
        tracker.synProxyOutbox.reset()
        var ack = PacketBuilder(source: Family.ipv4.client, destination: Family.ipv4.server)
        ack.sequence = 1001
        ack.acknowledgment = synAck.sequence &+ 1
        ack.flags = .ack
        #expect(process(tracker, ack.build()) == .drop(.synProxyHandshake))
        #expect(tracker.counters.synProxyConnections == 1 && tracker.synProxyOutbox.count == 1)
        let synAckFromServer = fromServer(sequence: 5000, acknowledgment: 1001, flags: [.syn, .ack])
        #expect(process(tracker, synAckFromServer.build()) == .drop(.synProxyHandshake))
        tracker.synProxyOutbox.reset()
        var data = ack
        data.flags = [.ack, .psh]
        data.payloadLength = 10
        return data
    }

    /// A segment from port 80 of the server to the client's port 40000 (IPv4).
    static func fromServer(sequence: UInt32, acknowledgment: UInt32, flags: TCPFlags,
                           payloadLength: Int = 0) -> PacketBuilder {
        var builder = PacketBuilder(source: Family.ipv4.server, destination: Family.ipv4.client)
        builder.sourcePort = 80
        builder.destinationPort = 40000
        builder.sequence = sequence
        builder.acknowledgment = acknowledgment
        builder.flags = flags
        builder.payloadLength = payloadLength
        return builder
    }

    enum Unexpected: Error { case notTCP }

    @Test("a proxied connection's segment handed over without its bytes cannot be translated: dropped")
    func segmentWithoutBytes() throws {
        let tracker = Self.tracker()
        let data = try Self.establish(tracker)
        guard case .tcp(let segment) = parse(data.build()) else {
            Issue.record("not TCP")
            return
        }
        #expect(tracker.process(segment, hook: .input, now: 1_000_000_000) == .drop(.synProxyShortCopy))
        #expect(Self.process(tracker, data.build()) == .acceptRewritten)
    }
}
