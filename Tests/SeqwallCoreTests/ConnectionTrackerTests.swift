import SeqwallCore
import SeqwallTestSupport
import Testing

private let fiveDays: UInt64 = 432_000

@Suite("Tracker: handshake and data")
struct HandshakeTests {
    // Kernel tcp_conntracks: NONE -syn-> SYN_SENT -synack(reply)-> SYN_RECV -ack(orig)-> ESTABLISHED.
    // nf_conntrack_tcp_packet sets ASSURED on the first in-window packet whose old state is
    // SYN_RECV (or ESTABLISHED) and new state ESTABLISHED, once a reply was seen: the 3rd ACK.
    // Timeouts: SYN_SENT 120 s, SYN_RECV 60 s, ESTABLISHED 5 days (tcp_timeouts).
    @Test(arguments: Family.allCases)
    func threeWayHandshake(family: Family) throws {
        let lab = Lab(family: family)
        let c = lab.clientISN, s = lab.serverISN

        #expect(lab.send(.client, .syn, seq: c, ack: 0, options: [.mss(1460)]) == .accept)
        var connection = try #require(lab.connection)
        #expect(connection.state == .synSent)
        #expect(connection.status == [])                   // [UNREPLIED], not [ASSURED]
        #expect(connection.direction == .inbound)
        #expect(connection.key == lab.key)
        #expect(lab.secondsLeft == 120)
        lab.expectCounters(seen: 1, accepted: 1, created: 1, destroyed: 0, halfOpen: 1)

        lab.advance(seconds: 1)
        #expect(lab.send(.server, [.syn, .ack], seq: s, ack: c &+ 1, options: [.mss(1400)]) == .accept)
        connection = try #require(lab.connection)
        #expect(connection.state == .synRecv)
        #expect(connection.status == .seenReply)
        #expect(lab.secondsLeft == 60)
        lab.expectCounters(seen: 2, accepted: 2, created: 1, destroyed: 0, halfOpen: 1)

        lab.advance(seconds: 1)
        #expect(lab.send(.client, .ack, seq: c &+ 1, ack: s &+ 1) == .accept)
        connection = try #require(lab.connection)
        #expect(connection.state == .established)
        #expect(connection.status == [.seenReply, .assured])
        #expect(lab.secondsLeft == fiveDays)
        lab.expectCounters(seen: 3, accepted: 3, created: 1, destroyed: 0, halfOpen: 0)

        // Per direction: td_end is the highest seq + len, SYN counting one; td_maxend is the
        // peer's ack + window; td_maxwin the largest window sent.
        #expect(connection.original.end == c &+ 1)
        #expect(connection.reply.end == s &+ 1)
        #expect(connection.original.maxEnd == c &+ 1 &+ 64240)
        #expect(connection.reply.maxEnd == s &+ 1 &+ 64240)
        #expect(connection.original.maxWindow == 64240)
        #expect(connection.reply.maxWindow == 64240)
        #expect(connection.original.maxAck == s &+ 1)
        #expect(connection.reply.maxAck == c &+ 1)
        // Accounting: 2 packets from the client, 1 from the server, wire bytes each.
        #expect(connection.packetsOriginal == 2)
        #expect(connection.packetsReply == 1)
        #expect(connection.bytesOriginal == lab.wireBytes(optionBytes: 4) + lab.wireBytes())
        #expect(connection.bytesReply == lab.wireBytes(optionBytes: 4))
    }

    // ASSURED needs a reply: an ACK in SYN_RECV from the server side (sSR -> sSR, "might
    // answer late resent SYN") keeps SYN_RECV and does not assure.
    @Test(arguments: Family.allCases)
    func serverAckInSynRecvDoesNotAssure(family: Family) {
        let lab = Lab(family: family)
        let c = lab.clientISN, s = lab.serverISN
        lab.send(.client, .syn, seq: c, ack: 0)
        lab.send(.server, [.syn, .ack], seq: s, ack: c &+ 1)
        #expect(lab.send(.server, .ack, seq: s &+ 1, ack: c &+ 1) == .accept)
        #expect(lab.state == .synRecv)
        #expect(lab.connection?.status == .seenReply)
        lab.expectCounters(seen: 3, accepted: 3, created: 1, destroyed: 0, halfOpen: 1)
    }

    // RFC 9293 3.5: data on the third segment of the handshake is fine.
    @Test(arguments: Family.allCases)
    func dataOnThirdSegment(family: Family) {
        let lab = Lab(family: family)
        let c = lab.clientISN, s = lab.serverISN
        lab.send(.client, .syn, seq: c, ack: 0)
        lab.send(.server, [.syn, .ack], seq: s, ack: c &+ 1)
        #expect(lab.send(.client, [.ack, .psh], seq: c &+ 1, ack: s &+ 1, payload: 300) == .accept)
        #expect(lab.state == .established)
        #expect(lab.connection?.original.end == c &+ 301)
        // Unacknowledged data: 300 s, not 5 days (TCP_CONNTRACK_UNACK).
        #expect(lab.secondsLeft == 300)
    }

    // Kernel tcp_in_window and timeout choice: data marks the sender DATA_UNACKNOWLEDGED and
    // the timeout is min(ESTABLISHED, UNACK = 300 s) until the receiver acks all of it.
    @Test(arguments: Family.allCases)
    func dataBothWays(family: Family) throws {
        let lab = Lab(family: family)
        lab.handshake()
        let c = lab.clientISN, s = lab.serverISN

        #expect(lab.data(.client, 100) == .accept)
        #expect(lab.connection?.original.end == c &+ 101)
        #expect(lab.connection?.original.flags.contains(.dataUnacknowledged) == true)
        #expect(lab.secondsLeft == 300)

        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.connection?.original.flags.contains(.dataUnacknowledged) == false)
        #expect(lab.secondsLeft == fiveDays)

        #expect(lab.data(.server, 200) == .accept)
        #expect(lab.connection?.reply.end == s &+ 201)
        #expect(lab.secondsLeft == 300)

        // Acked in part: still unacknowledged.
        #expect(lab.send(.client, .ack, seq: c &+ 101, ack: s &+ 101) == .accept)
        #expect(lab.secondsLeft == 300)
        #expect(lab.ackAll(.client) == .accept)
        #expect(lab.secondsLeft == fiveDays)

        let connection = try #require(lab.connection)
        #expect(connection.state == .established)
        #expect(connection.original.maxAck == s &+ 201)
        #expect(connection.reply.maxAck == c &+ 101)
        #expect(connection.packetsOriginal == 5)   // SYN, ACK, data, ACK, ACK
        #expect(connection.packetsReply == 3)      // SYN-ACK, ACK, data
        #expect(connection.bytesOriginal == 4 * lab.wireBytes() + lab.wireBytes(payload: 100))
        #expect(connection.bytesReply == 2 * lab.wireBytes() + lab.wireBytes(payload: 200))
        lab.expectCounters(seen: 8, accepted: 8, created: 1, destroyed: 0, halfOpen: 0)
    }

    // RFC 9293 3.4 and the kernel's before()/after(): sequence numbers wrap at 2^32 and the
    // window checks work across the wrap, including "ACK of unsent data" (III) just past it.
    @Test(arguments: Family.allCases)
    func sequenceWrapAround(family: Family) throws {
        let lab = Lab(family: family, clientISN: 0xFFFF_FF00, serverISN: 0xFFFF_FFF0)
        lab.handshake()
        #expect(lab.data(.client, 1000) == .accept)
        #expect(lab.clientNext == 0x0000_02E9)          // 0xFFFFFF01 + 1000 wrapped
        #expect(lab.connection?.original.end == 0x0000_02E9)
        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.data(.server, 500) == .accept)
        #expect(lab.serverNext == 0x0000_01E5)
        #expect(lab.ackAll(.client) == .accept)
        #expect(lab.data(.client, 1000) == .accept)
        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.state == .established)
        #expect(lab.secondsLeft == fiveDays)
        // One byte past what the server sent, across the wrap: acks unsent data.
        #expect(lab.send(.client, .ack, seq: lab.clientNext, ack: lab.serverNext &+ 1) == .drop(.ackAboveSent))
        // Far above the client's window, across the wrap.
        #expect(lab.send(.client, [.ack, .psh], seq: lab.clientNext &+ 10_000_000, ack: lab.serverNext, payload: 10)
                == .drop(.seqAboveWindow))
        lab.expectCounters(seen: 11, accepted: 9, drops: [.ackAboveSent: 1, .seqAboveWindow: 1],
                           created: 1, destroyed: 0, halfOpen: 0)
    }
}

@Suite("Tracker: closing")
struct ClosingTests {
    // tcp_conntracks: ESTABLISHED -fin(orig)-> FIN_WAIT -ack(reply)-> CLOSE_WAIT -fin(reply)->
    // LAST_ACK -ack(orig)-> TIME_WAIT; timeouts 120, 60, 30, 120 s. CLOSE_INIT marks the side
    // whose FIN moved the connection into FIN_WAIT.
    @Test(arguments: Family.allCases)
    func closeFromClient(family: Family) throws {
        let lab = Lab(family: family)
        lab.handshake()
        let c = lab.clientISN, s = lab.serverISN

        #expect(lab.send(.client, [.fin, .ack], seq: c &+ 1, ack: s &+ 1) == .accept)
        #expect(lab.state == .finWait)
        #expect(lab.secondsLeft == 120)
        #expect(lab.connection?.original.flags.contains(.closeInit) == true)
        #expect(lab.connection?.reply.flags.contains(.closeInit) == false)

        #expect(lab.send(.server, .ack, seq: s &+ 1, ack: c &+ 2) == .accept)
        #expect(lab.state == .closeWait)
        #expect(lab.secondsLeft == 60)

        #expect(lab.send(.server, [.fin, .ack], seq: s &+ 1, ack: c &+ 2) == .accept)
        #expect(lab.state == .lastAck)
        #expect(lab.secondsLeft == 30)

        #expect(lab.send(.client, .ack, seq: c &+ 2, ack: s &+ 2) == .accept)
        #expect(lab.state == .timeWait)
        #expect(lab.secondsLeft == 120)
        // The connection stays assured and in the table until TIME_WAIT runs out.
        #expect(lab.connection?.status == [.seenReply, .assured])
        lab.expectCounters(seen: 7, accepted: 7, created: 1, destroyed: 0, halfOpen: 0)
    }

    // The same from the server side: the reply direction's FIN starts the close.
    @Test(arguments: Family.allCases)
    func closeFromServer(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        let c = lab.clientISN, s = lab.serverISN

        #expect(lab.send(.server, [.fin, .ack], seq: s &+ 1, ack: c &+ 1) == .accept)
        #expect(lab.state == .finWait)
        #expect(lab.connection?.reply.flags.contains(.closeInit) == true)
        #expect(lab.connection?.original.flags.contains(.closeInit) == false)
        #expect(lab.send(.client, .ack, seq: c &+ 1, ack: s &+ 2) == .accept)
        #expect(lab.state == .closeWait)
        #expect(lab.send(.client, [.fin, .ack], seq: c &+ 1, ack: s &+ 2) == .accept)
        #expect(lab.state == .lastAck)
        #expect(lab.send(.server, .ack, seq: s &+ 2, ack: c &+ 2) == .accept)
        #expect(lab.state == .timeWait)
        #expect(lab.secondsLeft == 120)
        lab.expectCounters(seen: 7, accepted: 7, created: 1, destroyed: 0, halfOpen: 0)
    }

    // tcp_conntracks: FIN_WAIT -fin(reply)-> LAST_ACK (FINs seen both ways, the second acking
    // the first), then the last ACK; a retransmitted FIN in LAST_ACK stays there.
    @Test(arguments: Family.allCases)
    func finAckAnsweringFin(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        let c = lab.clientISN, s = lab.serverISN
        lab.send(.client, [.fin, .ack], seq: c &+ 1, ack: s &+ 1)
        #expect(lab.send(.server, [.fin, .ack], seq: s &+ 1, ack: c &+ 2) == .accept)
        #expect(lab.state == .lastAck)
        #expect(lab.send(.server, [.fin, .ack], seq: s &+ 1, ack: c &+ 2) == .accept)
        #expect(lab.state == .lastAck)
        #expect(lab.send(.client, .ack, seq: c &+ 2, ack: s &+ 2) == .accept)
        #expect(lab.state == .timeWait)
        lab.expectCounters(seen: 7, accepted: 7, created: 1, destroyed: 0, halfOpen: 0)
    }

    // RFC 5961 3.2 and the kernel's RST rules: in an assured ESTABLISHED connection, an RST
    // whose seq is exactly the peer's highest ACK (td_maxack) closes it: CLOSE, 10 s.
    @Test(arguments: Family.allCases, [Side.client, Side.server])
    func exactResetCloses(family: Family, side: Side) throws {
        let lab = Lab(family: family)
        lab.handshake()
        lab.data(.client, 50)
        lab.ackAll(.server)
        let verdict = side == .server
            ? lab.send(.server, .rst, seq: lab.serverNext, ack: 0)
            : lab.send(.client, [.rst, .ack], seq: lab.clientNext, ack: lab.serverNext)
        #expect(verdict == .accept)
        #expect(lab.state == .close)
        #expect(lab.secondsLeft == 10)
        lab.expectCounters(seen: 6, accepted: 6, created: 1, destroyed: 0, halfOpen: 0)

        // CLOSE runs out after 10 s; the next packet finds nothing.
        lab.advance(seconds: 11)
        #expect(lab.ackAll(.client) == .drop(.noConnection))
        #expect(lab.connection == nil)
        lab.expectCounters(seen: 7, accepted: 6, drops: [.noConnection: 1], created: 1, destroyed: 1, halfOpen: 0)
    }

    // docs/design.md, RST / RFC 5961 3.2: an RST below what the peer acknowledged, or above
    // the window, never closes the connection; the kernel marks it INVALID, seqwall drops it.
    @Test(arguments: Family.allCases)
    func outOfWindowResetDropped(family: Family) throws {
        let lab = Lab(family: family)
        lab.handshake()
        lab.advance(seconds: 5)
        let before = try #require(lab.connection)

        // Below td_maxack ("invalid rst").
        #expect(lab.send(.server, .rst, seq: lab.serverNext &- 1000, ack: 0) == .drop(.rstOutOfWindow))
        // Above the window: state kept for a challenge ACK, then the window check fails.
        #expect(lab.send(.server, .rst, seq: lab.serverNext &+ 10_000_000, ack: 0) == .drop(.rstOutOfWindow))
        #expect(lab.send(.client, [.rst, .ack], seq: lab.clientNext &+ 10_000_000, ack: lab.serverNext)
                == .drop(.rstOutOfWindow))
        let after = try #require(lab.connection)
        #expect(after.original == before.original && after.reply == before.reply)
        #expect(lab.state == .established)
        // nf_tcp_handle_invalid: the second out-of-window RST answers the first from the other
        // side, so the ends may have gone: 5 days shrink to the unacknowledged timeout.
        #expect(lab.secondsLeft == 300)

        // The connection is alive.
        #expect(lab.data(.client, 10) == .accept)
        #expect(lab.ackAll(.server) == .accept)
        lab.expectCounters(seen: 8, accepted: 5, drops: [.rstOutOfWindow: 3], created: 1, destroyed: 0, halfOpen: 0)
    }

    // RFC 5961 3.2 as the kernel does it: an in-window RST that is not exact keeps ESTABLISHED
    // (the receiver answers with a challenge ACK) but, being an RST, takes the CLOSE timeout;
    // the exact RST that follows closes.
    @Test(arguments: Family.allCases)
    func inWindowInexactResetKeepsState(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        #expect(lab.send(.server, .rst, seq: lab.serverNext &+ 100, ack: 0) == .accept)
        #expect(lab.state == .established)
        #expect(lab.secondsLeft == 10)
        // Challenge ACK from the client, then the exact RST.
        #expect(lab.ackAll(.client) == .accept)
        #expect(lab.state == .established)
        #expect(lab.send(.server, .rst, seq: lab.serverNext, ack: 0) == .accept)
        #expect(lab.state == .close)
        lab.expectCounters(seen: 6, accepted: 6, created: 1, destroyed: 0, halfOpen: 0)
    }

    // Kernel "RST is part of train": P seq:end followed by R end from the same side closes, even
    // though the peer has not acked the data yet (seq != td_maxack).
    @Test(arguments: Family.allCases)
    func resetEndingADataTrain(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        #expect(lab.data(.server, 100) == .accept)
        #expect(lab.send(.server, [.rst, .ack], seq: lab.serverNext, ack: lab.clientNext) == .accept)
        #expect(lab.state == .close)
        lab.expectCounters(seen: 5, accepted: 5, created: 1, destroyed: 0, halfOpen: 0)
    }

    // RFC 1337 (TIME-WAIT assassination): an RST addressed to the endpoint in TIME_WAIT (the
    // client, which closed first) is dropped (`time-wait-rst`) and the connection keeps its
    // state and timer; seqwall is stricter than the kernel here. The RSTs the client itself
    // sends are judged as in any state (CloseProgressTests).
    @Test(arguments: Family.allCases)
    func resetInTimeWaitDropped(family: Family) throws {
        let lab = Lab(family: family)
        lab.handshake()
        let c = lab.clientISN, s = lab.serverISN
        lab.closeToTimeWait()
        lab.advance(seconds: 30)
        let before = try #require(lab.connection)

        #expect(lab.send(.server, .rst, seq: s &+ 2, ack: 0) == .drop(.timeWaitRST))
        #expect(lab.send(.server, [.rst, .ack], seq: s &+ 2, ack: c &+ 2) == .drop(.timeWaitRST))
        #expect(lab.connection == before)
        #expect(lab.secondsLeft == 90)
        lab.expectCounters(seen: 8, accepted: 6, drops: [.timeWaitRST: 2], created: 1, destroyed: 0, halfOpen: 0)
    }

    // RFC 5961 4 / kernel IP_CT_EXP_CHALLENGE_ACK: a SYN in LAST_ACK is ignored (passes) and the
    // ACK that answers it is a challenge ACK, not the last ACK: LAST_ACK stays.
    @Test(arguments: Family.allCases)
    func challengeAckInLastAck(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        let c = lab.clientISN, s = lab.serverISN
        lab.send(.client, [.fin, .ack], seq: c &+ 1, ack: s &+ 1)
        lab.send(.server, [.fin, .ack], seq: s &+ 1, ack: c &+ 2)
        #expect(lab.state == .lastAck)
        #expect(lab.send(.client, .syn, seq: c &+ 100_000, ack: 0) == .accept)
        #expect(lab.state == .lastAck)
        #expect(lab.send(.server, .ack, seq: s &+ 2, ack: c &+ 2) == .accept)
        #expect(lab.state == .lastAck)
        // The real last ACK.
        #expect(lab.send(.client, .ack, seq: c &+ 2, ack: s &+ 2) == .accept)
        #expect(lab.state == .timeWait)
        lab.expectCounters(seen: 8, accepted: 8, created: 1, destroyed: 0, halfOpen: 0)
    }
}

@Suite("Tracker: opening corner cases")
struct OpeningTests {
    // tcp_conntracks: SYN_SENT -syn(reply)-> SYN_SENT2 (simultaneous open, RFC 9293 3.5 figure
    // 7); SYN-ACKs move it to SYN_RECV; with IP_CT_TCP_SIMULTANEOUS_OPEN an ACK from the reply
    // side reaches ESTABLISHED, and ASSURED is set there.
    @Test(arguments: Family.allCases)
    func simultaneousOpen(family: Family) throws {
        let lab = Lab(family: family)
        let c = lab.clientISN, s = lab.serverISN
        #expect(lab.send(.client, .syn, seq: c, ack: 0) == .accept)
        #expect(lab.send(.server, .syn, seq: s, ack: 0) == .accept)
        #expect(lab.state == .synSent2)
        #expect(lab.connection?.status.contains(.simultaneousOpen) == true)
        lab.expectCounters(seen: 2, accepted: 2, created: 1, destroyed: 0, halfOpen: 1)

        #expect(lab.send(.server, [.syn, .ack], seq: s, ack: c &+ 1) == .accept)
        #expect(lab.state == .synRecv)
        #expect(lab.send(.client, [.syn, .ack], seq: c, ack: s &+ 1) == .accept)
        #expect(lab.state == .synRecv)
        #expect(lab.send(.server, .ack, seq: s &+ 1, ack: c &+ 1) == .accept)
        #expect(lab.state == .established)
        #expect(lab.connection?.status.contains(.assured) == true)
        lab.clientNext = c &+ 1
        lab.serverNext = s &+ 1
        #expect(lab.data(.client, 10) == .accept)
        #expect(lab.data(.server, 10) == .accept)
        lab.expectCounters(seen: 7, accepted: 7, created: 1, destroyed: 0, halfOpen: 0)
    }

    // tcp_conntracks sTW -syn(orig)-> sSS with CLOSE_INIT set: "reopened connection (RFC 1122
    // 4.2.2.13)": the old entry is deleted and the SYN judged as a new connection.
    @Test(arguments: Family.allCases)
    func synReopensTimeWait(family: Family) throws {
        let lab = Lab(family: family)
        lab.handshake()
        let c = lab.clientISN
        lab.closeToTimeWait()
        lab.advance(seconds: 10)

        let newISN = c &+ 1_000_000
        #expect(lab.send(.client, .syn, seq: newISN, ack: 0) == .accept)
        let connection = try #require(lab.connection)
        #expect(connection.state == .synSent)
        #expect(connection.status == [])
        #expect(connection.original.end == newISN &+ 1)
        #expect(connection.packetsOriginal == 1)
        #expect(connection.packetsReply == 0)
        #expect(lab.secondsLeft == 120)
        lab.expectCounters(seen: 7, accepted: 7, created: 2, destroyed: 1, halfOpen: 1)
        #expect(lab.tracker.connectionCount == 1)

        // And it completes like any new connection.
        #expect(lab.send(.server, [.syn, .ack], seq: 77, ack: newISN &+ 1) == .accept)
        #expect(lab.send(.client, .ack, seq: newISN &+ 1, ack: 78) == .accept)
        #expect(lab.state == .established)
    }

    // tcp_conntracks sTW -syn(reply)-> sSS: "reopened connection, but server may have switched
    // role": the new connection's original direction is the old server.
    @Test(arguments: Family.allCases)
    func replySynReopensWithRolesSwapped(family: Family) throws {
        let lab = Lab(family: family)
        lab.handshake()
        lab.closeToTimeWait()
        // The server (inside) opens toward the client (outside): outbound, default pass.
        #expect(lab.send(.server, .syn, seq: 9_999, ack: 0) == .accept)
        let (connection, direction) = try #require(lab.tracker.connection(for: lab.key))
        #expect(direction == .reply)
        #expect(connection.key == lab.key.reversed)
        #expect(connection.state == .synSent)
        #expect(connection.direction == .outbound)
        lab.expectCounters(seen: 7, accepted: 7, created: 2, destroyed: 1, halfOpen: 1)
    }

    // The kernel's ignored-SYN resync: a SYN inside ESTABLISHED is ignored (sIG, passes); a
    // SYN-ACK from the other side acking exactly that SYN means both ends restarted, so the
    // connection goes back to SYN_RECV with the SYN's values, then ESTABLISHED.
    @Test(arguments: Family.allCases)
    func ignoredSynThenSynAckResyncs(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        let newISN = lab.clientISN &+ 3_000_000_000
        #expect(lab.send(.client, .syn, seq: newISN, ack: 0, options: [.windowScale(2), .sackPermitted]) == .accept)
        #expect(lab.state == .established)
        lab.expectCounters(seen: 4, accepted: 4, created: 1, destroyed: 0, halfOpen: 0)

        #expect(lab.send(.server, [.syn, .ack], seq: 123_456, ack: newISN &+ 1, options: [.windowScale(3)]) == .accept)
        #expect(lab.state == .synRecv)
        #expect(lab.connection?.original.end == newISN &+ 1)
        #expect(lab.connection?.original.scale == 2)
        #expect(lab.connection?.reply.scale == 3)
        lab.expectCounters(seen: 5, accepted: 5, created: 1, destroyed: 0, halfOpen: 1)

        #expect(lab.send(.client, .ack, seq: newISN &+ 1, ack: 123_457) == .accept)
        #expect(lab.state == .established)
        lab.expectCounters(seen: 6, accepted: 6, created: 1, destroyed: 0, halfOpen: 0)
    }

    // Kernel tcp_new: only a SYN opens a connection (pickup off, the default); anything else
    // without a connection is `no-connection`.
    @Test(arguments: Family.allCases)
    func strayPacketsWithoutConnection(family: Family) {
        let lab = Lab(family: family)
        #expect(lab.send(.client, .ack, seq: 1, ack: 1) == .drop(.noConnection))
        #expect(lab.send(.client, [.ack, .psh], seq: 1, ack: 1, payload: 10) == .drop(.noConnection))
        #expect(lab.send(.server, [.syn, .ack], seq: 1, ack: 1) == .drop(.noConnection))
        #expect(lab.send(.client, [.fin, .ack], seq: 1, ack: 1) == .drop(.noConnection))
        #expect(lab.send(.client, .rst, seq: 1, ack: 0) == .drop(.noConnection))
        #expect(lab.tracker.connectionCount == 0)
        lab.expectCounters(seen: 5, accepted: 0, drops: [.noConnection: 5], created: 0, destroyed: 0, halfOpen: 0)
    }

    // tcp_conntracks ORIGINAL synack sSS -> sIV ("client can't send SYN and then SYN/ACK"), and
    // ack/fin sSS -> sIV: dropped as `bad-transition`, state unchanged.
    @Test(arguments: Family.allCases)
    func invalidTransitionsInSynSent(family: Family) throws {
        let lab = Lab(family: family)
        let c = lab.clientISN
        lab.send(.client, .syn, seq: c, ack: 0)
        let before = try #require(lab.connection)
        #expect(lab.send(.client, [.syn, .ack], seq: c, ack: 1) == .drop(.badTransition))
        #expect(lab.send(.client, .ack, seq: c &+ 1, ack: 1) == .drop(.badTransition))
        #expect(lab.send(.client, [.fin, .ack], seq: c &+ 1, ack: 1) == .drop(.badTransition))
        #expect(lab.send(.server, [.fin, .ack], seq: 1, ack: c &+ 1) == .drop(.badTransition))
        #expect(lab.connection == before)
        lab.expectCounters(seen: 5, accepted: 1, drops: [.badTransition: 4], created: 1, destroyed: 0, halfOpen: 1)
    }

    // tcp_conntracks REPLY ack sSS -> sIG: an ACK from the server in SYN_SENT may be a challenge
    // ACK or a half-open peer; it passes and changes nothing.
    @Test(arguments: Family.allCases)
    func replyAckInSynSentIgnored(family: Family) {
        let lab = Lab(family: family)
        let c = lab.clientISN
        lab.send(.client, .syn, seq: c, ack: 0)
        #expect(lab.send(.server, .ack, seq: 777, ack: 888) == .accept)
        #expect(lab.state == .synSent)
        #expect(lab.connection?.reply.maxWindow == 0)
        lab.expectCounters(seen: 2, accepted: 2, created: 1, destroyed: 0, halfOpen: 1)
    }

    // Kernel nf_conntrack_tcp_packet: "if only reply is a RST ... delete the conntrack
    // immediately": a refused SYN leaves nothing behind, half-open count included.
    @Test(arguments: Family.allCases)
    func resetAnsweringSynDestroys(family: Family) {
        let lab = Lab(family: family)
        let c = lab.clientISN
        lab.send(.client, .syn, seq: c, ack: 0)
        lab.expectCounters(seen: 1, accepted: 1, created: 1, destroyed: 0, halfOpen: 1)
        #expect(lab.send(.server, [.rst, .ack], seq: 0, ack: c &+ 1) == .accept)
        #expect(lab.connection == nil)
        lab.expectCounters(seen: 2, accepted: 2, created: 1, destroyed: 1, halfOpen: 0)
        // The client may try again at once.
        #expect(lab.send(.client, .syn, seq: c &+ 5, ack: 0) == .accept)
        lab.expectCounters(seen: 3, accepted: 3, created: 2, destroyed: 1, halfOpen: 1)
    }

    // Kernel RST rules in SYN_RECV (not ESTABLISHED): the peer's td_maxack is set, so the RST
    // goes through tcp_in_window; one far above the window is INVALID and must not close.
    @Test(arguments: Family.allCases)
    func outOfWindowResetInSynRecvDropped(family: Family) throws {
        let lab = Lab(family: family)
        let c = lab.clientISN, s = lab.serverISN
        lab.send(.client, .syn, seq: c, ack: 0)
        lab.send(.server, [.syn, .ack], seq: s, ack: c &+ 1)
        // The server repeats its ACK (sSR -> sSR): last packet is an ACK, not yet assured.
        #expect(lab.send(.server, .ack, seq: s &+ 1, ack: c &+ 1) == .accept)
        let before = try #require(lab.connection)
        // An RST|ACK whose ACK matches that last ACK's end, but whose seq is 10 MB away.
        #expect(lab.send(.client, [.rst, .ack], seq: c &+ 10_000_001, ack: s &+ 1) == .drop(.rstOutOfWindow))
        #expect(lab.connection == before)
        #expect(lab.state == .synRecv)
        // An in-window RST does close it.
        #expect(lab.send(.client, [.rst, .ack], seq: c &+ 1, ack: s &+ 1) == .accept)
        #expect(lab.state == .close)
        lab.expectCounters(seen: 5, accepted: 4, drops: [.rstOutOfWindow: 1], created: 1, destroyed: 0, halfOpen: 0)
    }
}

@Suite("Tracker: policy and direction")
struct PolicyTests {
    private static func policy(_ family: Family, _ rules: [Rule] = [], defaultIn: RuleAction = .block,
                               defaultOut: RuleAction = .pass) -> Policy {
        var policy = Policy()
        policy.inside = [family.insideNetwork]
        policy.defaultInbound = defaultIn
        policy.defaultOutbound = defaultOut
        policy.rules = rules
        return policy
    }

    private static func rule(_ action: RuleAction, _ direction: Direction, ports: [PortRange] = [],
                             from: [IPNetwork] = []) -> Rule {
        Rule(action: action, direction: direction, from: from, ports: ports,
             location: SeqwallCore.SourceLocation(file: "t.rules", line: 1, column: 1))
    }

    // seqwall.rules(5): default in block; a new inbound connection nothing matched is dropped
    // as `rule` and leaves no state.
    @Test(arguments: Family.allCases)
    func inboundSynBlockedByDefault(family: Family) {
        let lab = Lab(family: family)
        lab.serverPort = 22
        #expect(lab.send(.client, .syn, seq: 1, ack: 0) == .drop(.rule))
        #expect(lab.connection == nil)
        // Its answer has no connection either.
        #expect(lab.send(.server, [.syn, .ack], seq: 1, ack: 2) == .drop(.noConnection))
        lab.expectCounters(seen: 2, accepted: 0, drops: [.rule: 1, .noConnection: 1], created: 0, destroyed: 0, halfOpen: 0)
    }

    // seqwall.rules(5): `pass in tcp to port 80` lets port 80 in, not 81; first match wins.
    @Test(arguments: Family.allCases)
    func passRuleByPort(family: Family) {
        let policy = Self.policy(family, [Self.rule(.block, .inbound, ports: [PortRange(80)], from: [
            IPNetwork(address: family.otherClient, prefixLength: family == .ipv4 ? 32 : 128)]),
                                          Self.rule(.pass, .inbound, ports: [PortRange(80), PortRange(8000, 8100)])])
        let lab = Lab(family: family, policy: policy)
        #expect(lab.send(.client, .syn, seq: 1, ack: 0) == .accept)
        #expect(lab.connection?.direction == .inbound)
        lab.serverPort = 8050
        #expect(lab.send(.client, .syn, seq: 1, ack: 0) == .accept)
        lab.serverPort = 81
        #expect(lab.send(.client, .syn, seq: 1, ack: 0) == .drop(.rule))
        // The earlier block rule for one source wins over the later pass.
        var blocked = PacketBuilder(source: family.otherClient, destination: family.server)
        blocked.destinationPort = 80
        let bytes = blocked.build()
        #expect(bytes.withUnsafeBytes { lab.tracker.process($0, wireLength: bytes.count, hook: .forward, now: lab.now) }
                == .drop(.rule))
        lab.expectCounters(seen: 4, accepted: 2, drops: [.rule: 2], created: 2, destroyed: 0, halfOpen: 2)
    }

    // seqwall.rules(5): a reject rule drops and asks for an RST (Verdict.reject), counted as
    // `rule`. The refusal is remembered for the CLOSE timeout (ConnectionStatus.rejected), never
    // as a half-open connection: a retransmitted SYN is refused again, the RST answering it
    // passes and ends the entry, anything else has no connection.
    @Test(arguments: Family.allCases)
    func rejectRule(family: Family) throws {
        let lab = Lab(family: family, policy: Self.policy(family, [Self.rule(.reject, .inbound, ports: [PortRange(23)])]))
        lab.serverPort = 23
        let c = lab.clientISN
        #expect(lab.send(.client, .syn, seq: c, ack: 0) == .reject)
        let refused = try #require(lab.connection)
        #expect(refused.status.contains(.rejected))
        #expect(!refused.state.isHalfOpen)
        #expect(lab.secondsLeft == 10)
        lab.expectCounters(seen: 1, accepted: 0, drops: [.rule: 1], created: 1, destroyed: 0, halfOpen: 0)

        #expect(lab.send(.client, .syn, seq: c, ack: 0) == .reject)
        #expect(lab.send(.client, .ack, seq: c &+ 1, ack: 1) == .drop(.noConnection))
        #expect(lab.send(.server, [.syn, .ack], seq: 1, ack: c &+ 1) == .drop(.noConnection))
        lab.expectCounters(seen: 4, accepted: 0, drops: [.rule: 2, .noConnection: 2], created: 1, destroyed: 0,
                           halfOpen: 0)

        #expect(lab.send(.server, [.rst, .ack], seq: 0, ack: c &+ 1) == .accept)
        #expect(lab.connection == nil)
        lab.expectCounters(seen: 5, accepted: 1, drops: [.rule: 2, .noConnection: 2], created: 1, destroyed: 1,
                           halfOpen: 0)

        // Unanswered, the entry goes with the CLOSE timeout.
        #expect(lab.send(.client, .syn, seq: c, ack: 0) == .reject)
        lab.advance(seconds: 11)
        lab.tracker.expire(now: lab.now, budget: lab.tracker.connectionLimit)
        #expect(lab.connection == nil)
        lab.expectCounters(seen: 6, accepted: 1, drops: [.rule: 3, .noConnection: 2], created: 2, destroyed: 2,
                           halfOpen: 0)
    }

    // docs/design.md, Direction (gateway mode, FORWARD): `in` is toward an inside network from
    // outside it; inside to outside is `out`; anything else counts as `in`, the stricter side.
    @Test(arguments: Family.allCases)
    func gatewayDirectionFromInside(family: Family) throws {
        let policy = Self.policy(family, [Self.rule(.block, .outbound, ports: [PortRange(25)])])
        let lab = Lab(family: family, policy: policy)
        #expect(lab.tracker.direction(of: .forward, source: family.client, destination: family.server) == .inbound)
        #expect(lab.tracker.direction(of: .forward, source: family.server, destination: family.client) == .outbound)
        #expect(lab.tracker.direction(of: .forward, source: family.client, destination: family.otherClient) == .inbound)
        // Inside to inside neither leaves nor enters: the stricter side, inbound.
        let neighbour = family == .ipv4 ? ip("203.0.113.20") : ip("2001:db8:2::20")
        #expect(lab.tracker.direction(of: .forward, source: family.server, destination: neighbour) == .inbound)
        #expect(lab.tracker.direction(of: .other, source: family.server, destination: family.client) == .outbound)

        // The server (inside) opens to the client (outside): outbound, default out pass.
        lab.clientPort = 443
        lab.serverPort = 50000
        #expect(lab.send(.server, .syn, seq: 1, ack: 0) == .accept)
        let (connection, direction) = try #require(lab.tracker.connection(for: lab.key))
        #expect(direction == .reply)
        #expect(connection.direction == .outbound)
        // Outbound to port 25 is blocked by the rule.
        lab.clientPort = 25
        #expect(lab.send(.server, .syn, seq: 1, ack: 0) == .drop(.rule))
        // Inbound (client -> server) to port 443: default in block.
        lab.serverPort = 443
        lab.clientPort = 40000
        #expect(lab.send(.client, .syn, seq: 1, ack: 0) == .drop(.rule))
        lab.expectCounters(seen: 3, accepted: 1, drops: [.rule: 2], created: 1, destroyed: 0, halfOpen: 1)
    }

    // docs/design.md, Direction (host mode): INPUT is `in` and OUTPUT is `out`, whatever the
    // addresses.
    @Test(arguments: Family.allCases)
    func hostModeHooks(family: Family) throws {
        let lab = Lab(family: family, policy: Self.policy(family))
        lab.serverPort = 8080
        // OUTPUT: the client is this host, opening out; passes, recorded outbound.
        #expect(lab.send(.client, .syn, seq: 1, ack: 0, hook: .output) == .accept)
        #expect(lab.connection?.direction == .outbound)
        // Its reply comes in on INPUT and belongs to the connection: no rule applies.
        #expect(lab.send(.server, [.syn, .ack], seq: 50, ack: 2, hook: .input) == .accept)
        #expect(lab.state == .synRecv)
        // INPUT: a new connection is inbound, even from an inside address; default in block.
        lab.clientPort = 40001
        #expect(lab.send(.server, .syn, seq: 1, ack: 0, hook: .input) == .drop(.rule))
        #expect(lab.send(.client, .syn, seq: 1, ack: 0, hook: .input) == .drop(.rule))
        #expect(lab.tracker.direction(of: .input, source: family.server, destination: family.client) == .inbound)
        #expect(lab.tracker.direction(of: .output, source: family.client, destination: family.server) == .outbound)
        lab.expectCounters(seen: 4, accepted: 2, drops: [.rule: 2], created: 1, destroyed: 0, halfOpen: 1)
    }

    // Packets of a tracked connection never go through the rules again (docs/design.md, Rule
    // evaluation): a policy that blocks everything, swapped in mid-connection, does not touch it.
    @Test(arguments: Family.allCases)
    func trackedConnectionsSkipRules(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        lab.tracker.replacePolicy(Self.policy(family, [], defaultIn: .block, defaultOut: .block))
        #expect(lab.data(.client, 10) == .accept)
        #expect(lab.data(.server, 10) == .accept)
        lab.expectCounters(seen: 5, accepted: 5, created: 1, destroyed: 0, halfOpen: 0)
    }

    // `limit states`: with the table full, a new connection is `table-full`; existing ones go on.
    @Test(arguments: Family.allCases)
    func tableFull(family: Family) {
        let lab = Lab(family: family, capacity: 1)
        lab.handshake()
        lab.clientPort = 40001
        #expect(lab.send(.client, .syn, seq: 1, ack: 0) == .drop(.tableFull))
        lab.clientPort = 40000
        #expect(lab.data(.client, 10) == .accept)
        #expect(lab.tracker.connectionCount == 1)
        lab.expectCounters(seen: 5, accepted: 4, drops: [.tableFull: 1], created: 1, destroyed: 0, halfOpen: 0)
    }

    // A rule written without a protocol (its tcp rule, without ports) decides the protocols
    // seqwall does not track too, counted as its rule; one with ports does not, nor does one
    // written for tcp. What no such rule matches follows the default.
    @Test(arguments: Family.allCases)
    func untrackedFollowsRulesWithoutProtocol(family: Family) {
        let location = SeqwallCore.SourceLocation(file: "test.rules", line: 1, column: 1)
        let host = family == .ipv4 ? 32 : 128
        var blockClient = Rule(action: .block, direction: .outbound,
                               from: [IPNetwork(address: family.server, prefixLength: host)], location: location)
        blockClient.anyProtocol = true
        var passPorted = Rule(action: .pass, direction: .inbound, ports: [PortRange(22)], location: location)
        passPorted.anyProtocol = true
        let passTCP = Rule(action: .pass, direction: .inbound, location: location)
        var passClient = Rule(action: .pass, direction: .inbound,
                              from: [IPNetwork(address: family.client, prefixLength: host)], location: location)
        passClient.anyProtocol = true
        var policy = Lab.defaultPolicy(family)
        policy.rules = [blockClient, passPorted, passTCP, passClient]
        #expect(policy.untrackedRules == [0, 3])
        let lab = Lab(family: family, policy: policy)
        func gre(from source: IPAddress, to destination: IPAddress) -> Verdict {
            var packet = PacketBuilder(source: source, destination: destination)
            packet.protocolNumber = 47
            packet.transport = [0, 0, 0x08, 0x00]
            let bytes = packet.build()
            return bytes.withUnsafeBytes { lab.tracker.process($0, wireLength: bytes.count, hook: .forward, now: lab.now) }
        }
        #expect(gre(from: family.client, to: family.server) == .accept)
        #expect(gre(from: family.server, to: family.client) == .drop(.rule))
        #expect(lab.tracker.ruleCounters[0] == RuleCounter(blocked: 1, lastMatch: lab.now))
        #expect(lab.tracker.ruleCounters[3] == RuleCounter(passed: 1, lastMatch: lab.now))
        #expect(lab.tracker.ruleCounters[1] == RuleCounter() && lab.tracker.ruleCounters[2] == RuleCounter())
        // Another outside host: no rule without a protocol matches it; the default blocks it.
        let stranger = family == .ipv4 ? ip("192.0.2.99") : ip("2001:db8:99::99")
        #expect(gre(from: stranger, to: family.server) == .drop(.unsupportedProtocol))
    }

    // Protocols seqwall does not track (here GRE) follow the direction's default: blocked
    // inbound as `unsupported-protocol`, passed outbound.
    @Test(arguments: Family.allCases)
    func nonTCPFollowsDefaults(family: Family) {
        let lab = Lab(family: family)
        var udp = PacketBuilder(source: family.client, destination: family.server)
        udp.protocolNumber = 47
        udp.transport = [0, 0, 0x08, 0x00]
        let inbound = udp.build()
        #expect(inbound.withUnsafeBytes { lab.tracker.process($0, wireLength: inbound.count, hook: .forward, now: lab.now) }
                == .drop(.unsupportedProtocol))
        udp.source = family.server
        udp.destination = family.client
        let outbound = udp.build()
        #expect(outbound.withUnsafeBytes { lab.tracker.process($0, wireLength: outbound.count, hook: .forward, now: lab.now) }
                == .accept)
        // Malformed packets are counted under their parse reason.
        let junk: [UInt8] = [0x45, 0, 0]
        #expect(junk.withUnsafeBytes { lab.tracker.process($0, wireLength: 3, hook: .forward, now: lab.now) }
                == .drop(.truncated))
        lab.expectCounters(seen: 3, accepted: 1, drops: [.unsupportedProtocol: 1, .truncated: 1], created: 0,
                           destroyed: 0, halfOpen: 0)
    }
}

@Suite("Tracker: timeouts")
struct TimeoutTests {
    // tcp_timeouts SYN_SENT = 2 min: at 119 s the entry is there, at 121 s it is gone and the
    // late SYN-ACK finds no connection.
    @Test(arguments: Family.allCases)
    func unansweredSynExpires(family: Family) {
        let lab = Lab(family: family)
        lab.send(.client, .syn, seq: lab.clientISN, ack: 0)
        lab.advance(seconds: 119)
        lab.tracker.expire(now: lab.now, budget: lab.tracker.connectionLimit)
        #expect(lab.state == .synSent)
        #expect(lab.secondsLeft == 1)
        lab.expectCounters(seen: 1, accepted: 1, created: 1, destroyed: 0, halfOpen: 1)
        lab.advance(seconds: 2)
        #expect(lab.send(.server, [.syn, .ack], seq: lab.serverISN, ack: lab.clientISN &+ 1) == .drop(.noConnection))
        #expect(lab.connection == nil)
        lab.expectCounters(seen: 2, accepted: 1, drops: [.noConnection: 1], created: 1, destroyed: 1, halfOpen: 0)
    }

    // Expiry removes an expired entry by itself (no packet needed), half-open count included.
    @Test(arguments: Family.allCases)
    func sweepRemovesExpired(family: Family) {
        let lab = Lab(family: family)
        lab.send(.client, .syn, seq: lab.clientISN, ack: 0)
        lab.advance(seconds: 121)
        lab.tracker.expire(now: lab.now, budget: lab.tracker.connectionLimit)
        #expect(lab.tracker.connectionCount == 0)
        lab.expectCounters(seen: 1, accepted: 1, created: 1, destroyed: 1, halfOpen: 0)
    }

    // Kernel: "do not renew timeout on SYN retransmit" (no reply seen yet): a retransmitted SYN
    // at 60 s leaves the expiry at 120 s.
    @Test(arguments: Family.allCases)
    func retransmittedSynDoesNotExtend(family: Family) {
        let lab = Lab(family: family)
        lab.send(.client, .syn, seq: lab.clientISN, ack: 0)
        lab.advance(seconds: 60)
        #expect(lab.send(.client, .syn, seq: lab.clientISN, ack: 0) == .accept)
        #expect(lab.secondsLeft == 60)
        lab.advance(seconds: 59)
        #expect(lab.secondsLeft == 1)
        lab.advance(seconds: 2)
        #expect(lab.send(.server, [.syn, .ack], seq: lab.serverISN, ack: lab.clientISN &+ 1) == .drop(.noConnection))
        lab.expectCounters(seen: 3, accepted: 2, drops: [.noConnection: 1], created: 1, destroyed: 1, halfOpen: 0)
    }

    // tcp_timeouts TIME_WAIT = 2 min.
    @Test(arguments: Family.allCases)
    func timeWaitExpires(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        let c = lab.clientISN, s = lab.serverISN
        lab.closeToTimeWait()
        lab.advance(seconds: 119)
        lab.tracker.expire(now: lab.now, budget: lab.tracker.connectionLimit)
        #expect(lab.secondsLeft == 1)
        lab.advance(seconds: 2)
        #expect(lab.send(.client, .ack, seq: c &+ 2, ack: s &+ 2) == .drop(.noConnection))
        #expect(lab.connection == nil)
        lab.expectCounters(seen: 7, accepted: 6, drops: [.noConnection: 1], created: 1, destroyed: 1, halfOpen: 0)
    }

    // Kernel timeout choice: ESTABLISHED is 5 days once everything is acked, UNACK (300 s) while
    // data is outstanding; at 299 s of silence the entry is still there, after 301 s it is gone.
    @Test(arguments: Family.allCases)
    func establishedTimeouts(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        #expect(lab.secondsLeft == fiveDays)
        lab.data(.client, 10)
        #expect(lab.secondsLeft == 300)
        lab.advance(seconds: 299)
        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.secondsLeft == fiveDays)
        lab.data(.server, 10)
        lab.advance(seconds: 301)
        #expect(lab.ackAll(.client) == .drop(.noConnection))
        lab.expectCounters(seen: 7, accepted: 6, drops: [.noConnection: 1], created: 1, destroyed: 1, halfOpen: 0)
    }

    // Kernel tcp_max_retrans = 3: after three identical ACKs in a row from one side, timeouts
    // above TCP_CONNTRACK_RETRANS (300 s) shrink to it; any other segment resets the count.
    @Test(arguments: Family.allCases)
    func retransmissionsShrinkTimeout(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()   // the 3rd ACK is the first of the series
        lab.ackAll(.client)
        lab.ackAll(.client)
        #expect(lab.secondsLeft == fiveDays)
        lab.ackAll(.client)
        #expect(lab.secondsLeft == 300)
        lab.ackAll(.server)
        #expect(lab.secondsLeft == fiveDays)
        lab.expectCounters(seen: 7, accepted: 7, created: 1, destroyed: 0, halfOpen: 0)
    }

    // Kernel timeout choice: a zero window (last_win == 0) also caps the timeout at RETRANS.
    @Test(arguments: Family.allCases)
    func zeroWindowShrinksTimeout(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        #expect(lab.ackAll(.server, window: 0) == .accept)
        #expect(lab.secondsLeft == 300)
        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.secondsLeft == fiveDays)
        lab.expectCounters(seen: 5, accepted: 5, created: 1, destroyed: 0, halfOpen: 0)
    }

    // docs/design.md, Timeouts: every timeout is settable; the tracker uses Policy.timeouts.
    @Test(arguments: Family.allCases)
    func policyTimeoutsHonoured(family: Family) {
        var policy = Lab.defaultPolicy(family)
        policy.timeouts.synSent = 30
        policy.timeouts.synRecv = 20
        policy.timeouts.established = 1000
        policy.timeouts.finWait = 40
        policy.timeouts.closeWait = 50
        policy.timeouts.lastAck = 15
        policy.timeouts.timeWait = 25
        policy.timeouts.close = 5
        policy.timeouts.unacknowledged = 100
        let lab = Lab(family: family, policy: policy)
        let c = lab.clientISN, s = lab.serverISN

        lab.send(.client, .syn, seq: c, ack: 0)
        #expect(lab.secondsLeft == 30)
        lab.send(.server, [.syn, .ack], seq: s, ack: c &+ 1)
        #expect(lab.secondsLeft == 20)
        lab.send(.client, .ack, seq: c &+ 1, ack: s &+ 1)
        lab.clientNext = c &+ 1
        lab.serverNext = s &+ 1
        #expect(lab.secondsLeft == 1000)
        lab.data(.client, 10)
        #expect(lab.secondsLeft == 100)
        lab.ackAll(.server)
        #expect(lab.secondsLeft == 1000)

        let c1 = lab.clientNext
        lab.send(.client, [.fin, .ack], seq: c1, ack: s &+ 1)
        #expect(lab.state == .finWait)
        #expect(lab.secondsLeft == 40)
        lab.send(.server, .ack, seq: s &+ 1, ack: c1 &+ 1)
        #expect(lab.state == .closeWait)
        #expect(lab.secondsLeft == 50)
        lab.send(.server, [.fin, .ack], seq: s &+ 1, ack: c1 &+ 1)
        #expect(lab.state == .lastAck)
        #expect(lab.secondsLeft == 15)
        lab.send(.client, .ack, seq: c1 &+ 1, ack: s &+ 2)
        #expect(lab.state == .timeWait)
        #expect(lab.secondsLeft == 25)
        lab.advance(seconds: 26)
        #expect(lab.send(.client, .ack, seq: c1 &+ 1, ack: s &+ 2) == .drop(.noConnection))

        // CLOSE after an RST.
        let other = Lab(family: family, policy: policy)
        other.handshake()
        other.send(.server, .rst, seq: other.serverNext, ack: 0)
        #expect(other.state == .close)
        #expect(other.secondsLeft == 5)

        // The SYN_SENT timeout decides expiry too.
        let third = Lab(family: family, policy: policy)
        third.send(.client, .syn, seq: c, ack: 0)
        third.advance(seconds: 31)
        #expect(third.send(.server, [.syn, .ack], seq: s, ack: c &+ 1) == .drop(.noConnection))
    }
}
