import SeqwallTestSupport
@testable import SeqwallCore
import Testing

/// The SYN proxy's three handshake steps (SynProxyHandshake) end to end: the client's SYN, its
/// ACK with the cookie, the server's SYN-ACK, and the first packets translated afterwards.
@Suite("SYN proxy handshake")
struct SynProxyHandshakeTests {
    static let cookies = SynCookie(current: SipHashKey(k0: 11, k1: 22), previous: SipHashKey(k0: 33, k1: 44))

    static func endpoints(_ ipv4: Bool) -> (IPAddress, IPAddress) {
        ipv4 ? (IPAddress(ipv4: 0xC000_0201), IPAddress(ipv4: 0xCB00_7107))
            : (IPAddress(high: 0x2001_0DB8_0000_0000, low: 1), IPAddress(high: 0x2001_0DB8_0000_0001, low: 7))
    }

    static func syn(ipv4: Bool, timestamps: Bool = true) -> TCPSegment {
        let (client, server) = endpoints(ipv4)
        var options = TCPOptions()
        options.mss = 1460
        options.hasWindowScale = true
        options.windowScale = 8
        options.sackPermitted = true
        options.hasTimestamps = timestamps
        options.timestampValue = timestamps ? 5000 : 0
        return TCPSegment(source: client, destination: server, sourcePort: 40000, destinationPort: 80,
                          sequence: 0xFFFF_FFFF, acknowledgment: 0, flags: .syn, window: 64240, options: options)
    }

    /// The client's ACK for `synAck`, as a real stack sends it.
    static func ack(for synAck: TCPSegment, syn: TCPSegment) -> TCPSegment {
        var options = TCPOptions()
        if synAck.options.hasTimestamps {
            options.hasTimestamps = true
            options.timestampValue = 5001
            options.timestampEcho = synAck.options.timestampValue
        }
        return TCPSegment(source: syn.source, destination: syn.destination, sourcePort: syn.sourcePort,
                          destinationPort: syn.destinationPort, sequence: syn.sequence &+ 1,
                          acknowledgment: synAck.sequence &+ 1, flags: .ack, window: 502, options: options)
    }

    @Test(arguments: [true, false])
    func wholeHandshakeWithEveryOption(ipv4: Bool) throws {
        let syn = Self.syn(ipv4: ipv4)
        let rule = SynProxyRule(windowScale: 7)
        let synAck = SynProxyHandshake.synAck(answering: syn, rule: rule, cookies: Self.cookies, counter: 100,
                                              timestampClock: 0x0012_3456)
        #expect(synAck.flags == [.syn, .ack] && synAck.window == 0)
        #expect(synAck.source == syn.destination && synAck.destinationPort == 40000)
        #expect(synAck.acknowledgment == 0)               // the client's ISN + 1, wrapped
        #expect(synAck.options.mss == (ipv4 ? 1460 : 1440))
        #expect(synAck.options.windowScale == 7 && synAck.options.sackPermitted)
        #expect(synAck.options.timestampEcho == 5000)
        #expect(synAck.options.timestampValue <= 0x0012_3456)

        let ack = Self.ack(for: synAck, syn: syn)
        let state = try #require(SynProxyHandshake.accept(ack: ack, rule: rule, cookies: Self.cookies, counter: 101))
        #expect(state.cookie == synAck.sequence && state.clientISN == syn.sequence)
        #expect(state.options == SynCookieOptions(mss: ipv4 ? 1460 : 1440, windowScale: 8, sackPermitted: true,
                                                  timestamps: true))
        #expect(state.advertisedWindowScale == 7)

        let serverSyn = SynProxyHandshake.serverSyn(for: state, ack: ack)
        #expect(serverSyn.source == syn.source && serverSyn.destination == syn.destination)
        #expect(serverSyn.sequence == syn.sequence && serverSyn.flags == .syn)
        #expect(serverSyn.options.windowScale == 8 && serverSyn.options.hasWindowScale
                && serverSyn.options.sackPermitted && serverSyn.options.timestampValue == 5001)

        var serverOptions = TCPOptions()
        serverOptions.mss = 1400
        serverOptions.hasWindowScale = true
        serverOptions.windowScale = 9
        serverOptions.hasTimestamps = true
        serverOptions.timestampValue = 0x7000_0000
        serverOptions.timestampEcho = 5001
        let serverSynAck = TCPSegment(source: syn.destination, destination: syn.source, sourcePort: 80,
                                      destinationPort: 40000, sequence: 0x1234_0000, acknowledgment: syn.sequence &+ 1,
                                      flags: [.syn, .ack], window: 65160, options: serverOptions)
        var proxied = state
        let (toServer, toClient) = try #require(SynProxyHandshake.serverAnswered(&proxied, synAck: serverSynAck))
        #expect(proxied.sequenceOffset == 0x1234_0000 &- synAck.sequence)
        #expect(proxied.timestampOffset == 0x7000_0000 &- synAck.options.timestampValue)
        #expect(proxied.serverWindowScale == 9)
        #expect(toServer.sequence == syn.sequence &+ 1 && toServer.acknowledgment == 0x1234_0001)
        #expect(toServer.source == syn.source && toServer.window == 502 && toServer.flags == .ack)
        #expect(toServer.options.timestampValue == 5001 && toServer.options.timestampEcho == 0x7000_0000)
        #expect(toClient.sequence == synAck.sequence &+ 1 && toClient.acknowledgment == syn.sequence &+ 1)
        #expect(toClient.window == 65160 >> 7)
        #expect(toClient.options.timestampValue == synAck.options.timestampValue)
        #expect(toClient.options.timestampEcho == 5001)

        // The server's first data segment reaches the client right after the SYN-ACK it saw.
        let (client, server) = Self.endpoints(ipv4)
        var data = PacketBuilder(source: server, destination: client)
        data.sourcePort = 80
        data.destinationPort = 40000
        data.sequence = 0x1234_0001
        data.acknowledgment = syn.sequence &+ 1
        data.flags = .ack
        data.payloadLength = 10
        data.options = [.noOperation, .noOperation, .timestamps(value: 0x7000_0010, echo: 5001)]
        var bytes = data.build()
        let ok = bytes.withUnsafeMutableBytes {
            SynProxyTranslation.translate($0, tcpOffset: ipv4 ? 20 : 40, fromClient: false,
                                          sequenceOffset: proxied.sequenceOffset,
                                          timestampOffset: proxied.timestampOffset,
                                          windowScale: (server: 9, client: 7))
        }
        #expect(ok)
        let parsed = bytes.withUnsafeBytes { PacketParser.parse($0, wireLength: bytes.count) }
        guard case .tcp(let seen) = parsed else {
            Issue.record("not TCP: \(parsed)")
            return
        }
        #expect(seen.sequence == synAck.sequence &+ 1)
        #expect(seen.options.timestampValue == synAck.options.timestampValue &+ 0x10)
    }

    @Test func withoutTimestampsOnlyTheMSSTravels() throws {
        let syn = Self.syn(ipv4: true, timestamps: false)
        let synAck = SynProxyHandshake.synAck(answering: syn, rule: SynProxyRule(), cookies: Self.cookies, counter: 7,
                                              timestampClock: 0)
        #expect(!synAck.options.hasTimestamps && !synAck.options.hasWindowScale && !synAck.options.sackPermitted)
        let state = try #require(SynProxyHandshake.accept(ack: Self.ack(for: synAck, syn: syn), rule: SynProxyRule(),
                                                          cookies: Self.cookies, counter: 7))
        #expect(state.options == SynCookieOptions(mss: 1460))
        let serverSyn = SynProxyHandshake.serverSyn(for: state, ack: Self.ack(for: synAck, syn: syn))
        #expect(serverSyn.options.mss == 1460 && !serverSyn.options.hasWindowScale && !serverSyn.options.hasTimestamps)
    }

    @Test func badAcksOpenNothing() {
        let syn = Self.syn(ipv4: true)
        let synAck = SynProxyHandshake.synAck(answering: syn, rule: SynProxyRule(), cookies: Self.cookies, counter: 7,
                                              timestampClock: 1 << 20)
        let ack = Self.ack(for: synAck, syn: syn)
        var forged = ack
        forged.acknowledgment &+= 1
        var stale = ack
        stale.sequence &+= 1
        var fin = ack
        fin.flags = [.ack, .fin]
        for bad in [forged, stale, fin] {
            #expect(SynProxyHandshake.accept(ack: bad, rule: SynProxyRule(), cookies: Self.cookies, counter: 7) == nil)
        }
        #expect(SynProxyHandshake.accept(ack: ack, rule: SynProxyRule(), cookies: Self.cookies, counter: 9) == nil)
    }

    @Test func serverRefusalReachesTheClient() throws {
        let syn = Self.syn(ipv4: false)
        let synAck = SynProxyHandshake.synAck(answering: syn, rule: SynProxyRule(), cookies: Self.cookies, counter: 1,
                                              timestampClock: 1 << 20)
        let state = try #require(SynProxyHandshake.accept(ack: Self.ack(for: synAck, syn: syn), rule: SynProxyRule(),
                                                          cookies: Self.cookies, counter: 1))
        let reset = TCPSegment(source: syn.destination, destination: syn.source, sourcePort: 80, destinationPort: 40000,
                               sequence: 0, acknowledgment: syn.sequence &+ 1, flags: [.rst, .ack], window: 0)
        var unchanged = state
        #expect(SynProxyHandshake.serverAnswered(&unchanged, synAck: reset) == nil)
        let refusal = SynProxyHandshake.refusal(state, reset: reset)
        #expect(refusal.flags == .rst && refusal.sequence == synAck.sequence &+ 1)
        #expect(refusal.destination == syn.source && refusal.destinationPort == 40000)
    }
}
