import SeqwallCore
import SeqwallTestSupport
import Testing

/// The classic scenarios of TCP connection management (RFC 9293 3.5-3.6, RFC 793 figures,
/// RFC 1337), each played through the tracker with real packets, data carried both ways, and
/// every verdict checked. Simultaneous open and the RST answering a SYN are in
/// ConnectionTrackerTests' OpeningTests.
@Suite("Classic connection scenarios")
struct ConnectionScenarioTests {
    // RFC 9293 3.5 figure 6 with data on the third segment: the ACK completing the handshake
    // already carries 500 bytes; the server answers with data; ASSURED, 5 days once all is acked.
    @Test(arguments: Family.allCases)
    func handshakeWithDataOnTheThirdSegment(family: Family) throws {
        let lab = Lab(family: family)
        let c = lab.clientISN, s = lab.serverISN
        #expect(lab.send(.client, .syn, seq: c, ack: 0) == .accept)
        #expect(lab.send(.server, [.syn, .ack], seq: s, ack: c &+ 1) == .accept)
        #expect(lab.send(.client, [.ack, .psh], seq: c &+ 1, ack: s &+ 1, payload: 500) == .accept)
        #expect(lab.state == .established)
        #expect(lab.connection?.status == [.seenReply, .assured])
        lab.clientNext = c &+ 501
        lab.serverNext = s &+ 1
        #expect(lab.data(.server, 1000) == .accept)
        #expect(lab.ackAll(.client) == .accept)
        #expect(lab.secondsLeft == 432_000)
        lab.expectCounters(seen: 5, accepted: 5, created: 1, destroyed: 0, halfOpen: 0)
    }

    /// Four-way close started by `closer`, data flowing until its FIN.
    private static func fourWayClose(_ family: Family, closer: Side) {
        let lab = Lab(family: family)
        let other: Side = closer == .client ? .server : .client
        lab.handshake()
        #expect(lab.data(.client, 100) == .accept)
        #expect(lab.data(.server, 200) == .accept)
        #expect(lab.fin(closer) == .accept)
        #expect(lab.state == .finWait)
        #expect(lab.secondsLeft == 120)
        #expect(lab.ackAll(other) == .accept)
        #expect(lab.state == .closeWait)
        #expect(lab.fin(other) == .accept)
        #expect(lab.state == .lastAck)
        #expect(lab.secondsLeft == 30)
        #expect(lab.ackAll(closer) == .accept)
        #expect(lab.state == .timeWait)
        #expect(lab.secondsLeft == 120)
        // The closer's FIN flag marks who started it.
        let connection = lab.connection
        let original = connection?.original.flags.contains(.closeInit) == true
        let reply = connection?.reply.flags.contains(.closeInit) == true
        #expect(original == (closer == .client) && reply == (closer == .server))
        lab.expectCounters(seen: 9, accepted: 9, created: 1, destroyed: 0, halfOpen: 0)
    }

    // RFC 9293 3.6 figure 12 (normal close): FIN, ACK, FIN, ACK, from the client side ...
    @Test(arguments: Family.allCases)
    func fourWayCloseFromTheClient(family: Family) {
        Self.fourWayClose(family, closer: .client)
    }

    // ... and from the server side (the reply direction's FIN starts the close).
    @Test(arguments: Family.allCases)
    func fourWayCloseFromTheServer(family: Family) {
        Self.fourWayClose(family, closer: .server)
    }

    // RFC 9293 3.6 figure 13 (simultaneous close): both FINs cross, each acknowledges the
    // other's: FIN_WAIT -> LAST_ACK -> TIME_WAIT.
    @Test(arguments: Family.allCases)
    func simultaneousClose(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        let c = lab.clientNext, s = lab.serverNext
        #expect(lab.send(.client, [.fin, .ack], seq: c, ack: s) == .accept)
        #expect(lab.state == .finWait)
        #expect(lab.send(.server, [.fin, .ack], seq: s, ack: c) == .accept)
        #expect(lab.state == .lastAck)
        #expect(lab.send(.client, .ack, seq: c &+ 1, ack: s &+ 1) == .accept)
        #expect(lab.state == .timeWait)
        #expect(lab.send(.server, .ack, seq: s &+ 1, ack: c &+ 1) == .accept)
        #expect(lab.state == .timeWait)
        lab.expectCounters(seen: 7, accepted: 7, created: 1, destroyed: 0, halfOpen: 0)
    }

    // Half-close (RFC 9293 3.6): after the client's FIN, the server goes on sending for a long
    // time and the client acknowledges; the window tracking goes on in that direction (data
    // beyond it is still dropped), and the close completes.
    @Test(arguments: Family.allCases)
    func halfCloseWithDataAfterTheFirstFin(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        #expect(lab.fin(.client) == .accept)
        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.state == .closeWait)
        for _ in 0..<200 {
            #expect(lab.data(.server, 1400) == .accept)
            #expect(lab.ackAll(.client) == .accept)
        }
        #expect(lab.state == .closeWait)
        #expect(lab.send(.server, [.ack, .psh], seq: lab.serverNext &+ 5_000_000, ack: lab.clientNext, payload: 100)
                == .drop(.seqAboveWindow))
        #expect(lab.fin(.server) == .accept)
        #expect(lab.state == .lastAck)
        #expect(lab.ackAll(.client) == .accept)
        #expect(lab.state == .timeWait)
        #expect(lab.tracker.counters.dropped == 1)
    }

    // Abortive close (RFC 9293 3.6, "abort"): in the middle of data, the client sends an RST
    // at its next sequence number: CLOSE for 10 s, then gone; later segments of the old
    // connection find nothing.
    @Test(arguments: Family.allCases)
    func abortiveReset(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        #expect(lab.data(.client, 1000) == .accept)
        #expect(lab.data(.server, 1000) == .accept)
        #expect(lab.send(.client, [.rst, .ack], seq: lab.clientNext, ack: lab.serverNext) == .accept)
        #expect(lab.state == .close)
        #expect(lab.secondsLeft == 10)
        lab.advance(seconds: 11)
        #expect(lab.data(.server, 100) == .drop(.noConnection))
        lab.expectCounters(seen: 7, accepted: 6, drops: [.noConnection: 1], created: 1, destroyed: 1, halfOpen: 0)
    }

    // RFC 793 figure 10 (half-open connection discovery): the client crashed and restarts
    // with a new SYN on the same tuple. The tracker, still ESTABLISHED, ignores the SYN; the
    // server answers with an ACK of the old connection; the client answers that with an RST at
    // the ACK's number, which closes; the client's retransmitted SYN then opens afresh.
    @Test(arguments: Family.allCases)
    func halfOpenClientRestarts(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        #expect(lab.data(.server, 300) == .accept)
        #expect(lab.ackAll(.client) == .accept)
        let newISN: UInt32 = 400
        #expect(lab.send(.client, .syn, seq: newISN, ack: 0) == .accept)
        #expect(lab.state == .established)
        #expect(lab.send(.server, .ack, seq: lab.serverNext, ack: lab.clientNext) == .accept)
        #expect(lab.send(.client, .rst, seq: lab.clientNext, ack: 0) == .accept)
        #expect(lab.state == .close)
        #expect(lab.send(.client, .syn, seq: newISN, ack: 0) == .accept)
        #expect(lab.state == .synSent)
        #expect(lab.send(.server, [.syn, .ack], seq: 9000, ack: newISN &+ 1) == .accept)
        #expect(lab.send(.client, .ack, seq: newISN &+ 1, ack: 9001) == .accept)
        #expect(lab.state == .established)
        lab.expectCounters(seen: 11, accepted: 11, created: 2, destroyed: 1, halfOpen: 0)
    }

    // The same from the other side: the server crashed and lost the connection; the client's
    // next data draws an RST whose sequence number is the data's ACK (RFC 9293 3.10.7.1,
    // "<SEQ=SEG.ACK><CTL=RST>"): exact, so it closes. The client's new SYN on the tuple the
    // other side reset may be out of sync, so it is ignored (passes); the SYN-ACK answering it
    // puts the tracker back in step (the kernel's ignored-SYN rule).
    @Test(arguments: Family.allCases)
    func halfOpenServerRestarted(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        #expect(lab.data(.client, 100) == .accept)
        #expect(lab.send(.server, .rst, seq: lab.serverNext, ack: 0) == .accept)
        #expect(lab.state == .close)
        #expect(lab.send(.client, .syn, seq: 70_000, ack: 0) == .accept)
        #expect(lab.state == .close)
        #expect(lab.send(.server, [.syn, .ack], seq: 9000, ack: 70_001) == .accept)
        #expect(lab.state == .synRecv)
        #expect(lab.send(.client, .ack, seq: 70_001, ack: 9001) == .accept)
        #expect(lab.state == .established)
        lab.expectCounters(seen: 8, accepted: 8, created: 1, destroyed: 0, halfOpen: 0)
    }

    // The server still holds a connection the client has forgotten (and the tracker with it):
    // the client's new SYN on the tuple opens SYN_SENT; the server answers with a challenge
    // ACK of its old connection (RFC 5961 4), which passes unchanged (sSS -> sIG); the client
    // answers that with an RST at the ACK's number, which ends the server's old connection and
    // closes the entry ("reset in response to a challenge-ack"); the retransmitted SYN reopens.
    @Test(arguments: Family.allCases)
    func challengeAckToASynOnAHalfOpenServer(family: Family) {
        let lab = Lab(family: family)
        let c = lab.clientISN
        #expect(lab.send(.client, .syn, seq: c, ack: 0) == .accept)
        // The server's old connection: its ACK acknowledges old data far from the SYN.
        let oldAck: UInt32 = 3_000_000_000
        #expect(lab.send(.server, .ack, seq: 44_444, ack: oldAck) == .accept)
        #expect(lab.state == .synSent)
        #expect(lab.send(.client, .rst, seq: oldAck, ack: 0) == .accept)
        #expect(lab.state == .close)
        #expect(lab.send(.client, .syn, seq: c, ack: 0) == .accept)
        #expect(lab.state == .synSent)
        #expect(lab.send(.server, [.syn, .ack], seq: 8000, ack: c &+ 1) == .accept)
        #expect(lab.state == .synRecv)
    }

    // RFC 1337 TIME-WAIT assassination: the client is in TIME-WAIT; an old duplicate segment
    // reaches the server, which answers with an RST (or an attacker forges one). The RSTs to
    // the client are dropped (`time-wait-rst`), TIME_WAIT runs on, and only a new SYN (the
    // tuple reused) ends it. The client's own RST (exact) is not one of them: it passes and
    // closes the entry (CloseProgressTests), so this one is out of window and dropped.
    @Test(arguments: Family.allCases)
    func timeWaitAssassinationAttempt(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        #expect(lab.fin(.client) == .accept)
        #expect(lab.fin(.server) == .accept)
        #expect(lab.ackAll(.client) == .accept)
        #expect(lab.state == .timeWait)
        lab.advance(seconds: 30)
        #expect(lab.send(.server, .rst, seq: lab.serverNext, ack: 0) == .drop(.timeWaitRST))
        #expect(lab.send(.server, [.rst, .ack], seq: lab.serverNext &+ 77, ack: lab.clientNext) == .drop(.timeWaitRST))
        #expect(lab.send(.client, .rst, seq: lab.clientNext &+ 90_000_000, ack: 0) == .drop(.rstOutOfWindow))
        #expect(lab.state == .timeWait)
        #expect(lab.secondsLeft == 90)
        lab.advance(seconds: 10)
        #expect(lab.send(.client, .syn, seq: lab.clientNext &+ 1_000_000, ack: 0) == .accept)
        #expect(lab.state == .synSent)
        lab.expectCounters(seen: 10, accepted: 7, drops: [.timeWaitRST: 2, .rstOutOfWindow: 1], created: 2,
                           destroyed: 1, halfOpen: 1)
    }
}
