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

    /// Ports 80 and 81 proxied, 8080 passed as usual; `mode` for `set synproxy`.
    static func tracker(mode: SynProxyMode = .always, states: Int = 1000) -> ConnectionTracker {
        var policy = Policy()
        policy.defaultInbound = .block
        policy.defaultOutbound = .pass
        policy.limits.states = states
        policy.synProxyMode = mode
        policy.rules = [
            Rule(action: .pass, direction: .inbound, ports: [PortRange(80), PortRange(81)], synProxy: SynProxyRule(),
                 location: at),
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

    @Test("a cookie ACK's opening event says proxied, as the connection does (conntrack watch, the sync)",
          arguments: Family.allCases)
    func openingEventProxied(family: Family) throws {
        let tracker = Self.tracker()
        tracker.recordsEvents = true
        _ = Self.process(tracker, Self.syn(family, port: 80))
        let ack = try #require(Self.cookieAck(tracker, family, sequence: 1001))
        #expect(Self.process(tracker, ack) == .drop(.synProxyHandshake))
        let events = tracker.events
        #expect(events.count == 1)
        let opening = events[0]
        #expect(opening.kind == .new && opening.connection.proxied)
        let (connection, _) = try #require(tracker.connection(for: opening.connection.key))
        #expect(connection.proxied)
        // An unproxied rule's opening says it is not.
        _ = events.reset()
        #expect(Self.process(tracker, Self.syn(family, port: 8080)) == .accept)
        #expect(events.count == 1 && events[0].kind == .new && !events[0].connection.proxied)
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

    // MARK: Closed ports (ClosedPortMemory)

    /// Another server, on the same rule, whose ports must not share the first one's marks.
    static func otherServer(_ family: Family) -> IPAddress {
        family == .ipv4 ? ip("203.0.113.20") : ip("2001:db8:2::20")
    }

    static func segment(_ family: Family, from source: IPAddress, to destination: IPAddress, ports: (UInt16, UInt16),
                        sequence: UInt32, acknowledgment: UInt32 = 0, flags: TCPFlags) -> [UInt8] {
        var builder = PacketBuilder(source: source, destination: destination)
        builder.sourcePort = ports.0
        builder.destinationPort = ports.1
        builder.sequence = sequence
        builder.acknowledgment = acknowledgment
        builder.flags = flags
        if flags.contains(.syn) { builder.options = [.mss(1460)] }
        return builder.build()
    }

    /// A client SYN (ISN 1000) from `clientPort` to `port` on `server`.
    static func syn(_ family: Family, to server: IPAddress, port: UInt16, from clientPort: UInt16) -> [UInt8] {
        segment(family, from: family.client, to: server, ports: (clientPort, port), sequence: 1000, flags: .syn)
    }

    /// A proxied handshake to `port` on `server` the server refuses: the client's SYN, its
    /// cookie ACK, seqwall's SYN to the server and the server's RST to it.
    static func refuse(_ tracker: ConnectionTracker, _ family: Family, server: IPAddress, port: UInt16,
                       from clientPort: UInt16, now: UInt64) throws {
        #expect(process(tracker, syn(family, to: server, port: port, from: clientPort), now: now)
            == .drop(.synProxyHandshake))
        guard case .tcp(let synAck) = parse(Array(tracker.synProxyOutbox[0])) else { throw Unexpected.notTCP }
        tracker.synProxyOutbox.reset()
        let ack = segment(family, from: family.client, to: server, ports: (clientPort, port), sequence: 1001,
                          acknowledgment: synAck.sequence &+ 1, flags: .ack)
        #expect(process(tracker, ack, now: now) == .drop(.synProxyHandshake))
        tracker.synProxyOutbox.reset()
        let refused = tracker.counters.synProxyRefused
        let reset = segment(family, from: server, to: family.client, ports: (port, clientPort), sequence: 0,
                            acknowledgment: 1001, flags: [.rst, .ack])
        #expect(process(tracker, reset, now: now) == .drop(.synProxyHandshake))
        #expect(tracker.counters.synProxyRefused == refused + 1 && tracker.synProxyOutbox.count == 1)
        tracker.synProxyOutbox.reset()
    }

    static let refusedAt: UInt64 = 1_000_000_000

    /// A tracker whose server has refused a proxied handshake to port 80 at `refusedAt`.
    static func refusedTracker(_ family: Family) throws -> ConnectionTracker {
        let tracker = tracker()
        try refuse(tracker, family, server: family.server, port: 80, from: 40000, now: refusedAt)
        return tracker
    }

    /// After one SYN passed to the refused port, the next is answered with a cookie again.
    static func expectProxiedAgain(_ tracker: ConnectionTracker, _ family: Family, now: UInt64) {
        #expect(synToRefused(tracker, family, from: 40002, now: now) == .drop(.synProxyHandshake))
        #expect(tracker.synProxyOutbox.count == 1 && tracker.counters.synProxyClosedPortsPassed == 1)
    }

    /// A client SYN from `clientPort` to the refused port.
    static func synToRefused(_ tracker: ConnectionTracker, _ family: Family, from clientPort: UInt16,
                             now: UInt64) -> Verdict {
        process(tracker, syn(family, to: family.server, port: 80, from: clientPort), now: now)
    }

    @Test("after the server refused a port, its next SYN goes to it unproxied, tracked; the server's RST ends it",
          arguments: Family.allCases)
    func closedPortPassed(family: Family) throws {
        let tracker = try Self.refusedTracker(family)
        #expect(tracker.connectionCount == 0)

        let now = Self.refusedAt + 1_000_000_000
        #expect(Self.synToRefused(tracker, family, from: 40001, now: now) == .accept)
        #expect(tracker.synProxyOutbox.count == 0 && tracker.counters.synProxyClosedPortsPassed == 1)
        #expect(tracker.counters.synProxyCookiesSent == 1)
        let key = FlowKey(source: family.client, destination: family.server, sourcePort: 40001, destinationPort: 80)
        let (connection, _) = try #require(tracker.connection(for: key))
        #expect(!connection.proxied && connection.state == .synSent && tracker.halfOpenCount == 1)

        // The server's own RST reaches the client, untranslated, and the connection goes.
        let reset = Self.segment(family, from: family.server, to: family.client, ports: (80, 40001), sequence: 0,
                                 acknowledgment: 1001, flags: [.rst, .ack])
        #expect(Self.process(tracker, reset, now: now) == .accept)
        #expect(tracker.connectionCount == 0 && tracker.halfOpenCount == 0 && tracker.synProxyOutbox.count == 0)

        // Still marked: the next SYN is passed too.
        #expect(Self.synToRefused(tracker, family, from: 40002, now: now) == .accept)
        #expect(tracker.counters.synProxyClosedPortsPassed == 2)
    }

    @Test("a closed port's mark lasts ClosedPortMemory.holdTime; after it, SYNs are proxied again",
          arguments: Family.allCases)
    func closedPortExpires(family: Family) throws {
        let tracker = try Self.refusedTracker(family)
        let last = Self.refusedAt + ClosedPortMemory.holdTime - 1
        #expect(Self.synToRefused(tracker, family, from: 40001, now: last) == .accept)
        Self.expectProxiedAgain(tracker, family, now: last + 1)
    }

    @Test("the server's SYN-ACK to a passed SYN shows the port open: its next SYNs are proxied again",
          arguments: Family.allCases)
    func closedPortOpens(family: Family) throws {
        let tracker = try Self.refusedTracker(family)
        let now = Self.refusedAt + 1_000_000_000
        #expect(Self.synToRefused(tracker, family, from: 40001, now: now) == .accept)
        let synAck = Self.segment(family, from: family.server, to: family.client, ports: (80, 40001), sequence: 7000,
                                  acknowledgment: 1001, flags: [.syn, .ack])
        #expect(Self.process(tracker, synAck, now: now) == .accept)
        let key = FlowKey(source: family.client, destination: family.server, sourcePort: 40001, destinationPort: 80)
        let (connection, _) = try #require(tracker.connection(for: key))
        #expect(connection.state == .synRecv && !connection.halfOpenCharges.contains(.synProxyPassed))
        #expect(tracker.synProxyOutbox.count == 0)

        Self.expectProxiedAgain(tracker, family, now: now)
    }

    @Test("a closed port's mark is its own: another port of the server and the same port of another server are proxied",
          arguments: Family.allCases)
    func closedPortIsItsOwn(family: Family) throws {
        let tracker = try Self.refusedTracker(family)
        let now = Self.refusedAt + 1_000_000_000
        #expect(Self.process(tracker, Self.syn(family, to: family.server, port: 81, from: 40001), now: now)
            == .drop(.synProxyHandshake))
        #expect(Self.process(tracker, Self.syn(family, to: Self.otherServer(family), port: 80, from: 40002), now: now)
            == .drop(.synProxyHandshake))
        #expect(tracker.synProxyOutbox.count == 2 && tracker.counters.synProxyClosedPortsPassed == 0)
        #expect(Self.synToRefused(tracker, family, from: 40003, now: now) == .accept)
    }
}
