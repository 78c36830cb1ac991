import SeqwallCore
import SeqwallTestSupport
import Testing

/// The close as the endpoints live it (RFC 9293 3.6), kept beside the kernel's transition
/// table (CloseProgress): a repeated FIN closes nothing more, and RFC 1337 protects exactly
/// the endpoint that is in TIME_WAIT (docs/design.md, RSTs and TIME_WAIT).
@Suite("Close bookkeeping and TIME_WAIT RSTs")
struct CloseProgressTests {
    private static func other(_ side: Side) -> Side { side == .client ? .server : .client }

    /// The FIN `side` sent last, sent again (a retransmission or a duplicate).
    @discardableResult
    private static func repeatFin(_ lab: Lab, _ side: Side) -> Verdict {
        side == .client
            ? lab.send(.client, [.fin, .ack], seq: lab.clientNext &- 1, ack: lab.serverNext)
            : lab.send(.server, [.fin, .ack], seq: lab.serverNext &- 1, ack: lab.clientNext)
    }

    /// An RST from `side` at its next sequence number: exact.
    private static func exactReset(_ lab: Lab, from side: Side) -> Verdict {
        lab.send(side, .rst, seq: side == .client ? lab.clientNext : lab.serverNext, ack: 0)
    }

    /// `closer` sent its FIN twice and the other side acknowledged it: CLOSE_WAIT, where
    /// the kernel's table would be in TIME_WAIT already.
    private static func closeWaitAfterRepeatedFin(_ family: Family, closer: Side) -> Lab {
        let lab = Lab.assured(family)
        #expect(lab.fin(closer) == .accept)
        #expect(lab.state == .finWait)
        #expect(Self.repeatFin(lab, closer) == .accept)
        #expect(lab.state == .finWait)
        #expect(lab.ackAll(Self.other(closer)) == .accept)
        #expect(lab.state == .closeWait)
        return lab
    }

    // The kernel's table takes a second FIN from the same side for the other side's FIN
    // (sFW -> sLA), and the ACK of the first FIN for the last ACK (sLA -> sTW): TIME_WAIT while
    // one endpoint is in FIN_WAIT-2 and the other in CLOSE_WAIT, still sending. Here the
    // repeated FIN changes no state, and the exact RST of either endpoint passes.
    @Test(arguments: Family.allCases, [Side.client, .server])
    func repeatedFinDoesNotAdvanceTheClose(family: Family, closer: Side) {
        let lab = Self.closeWaitAfterRepeatedFin(family, closer: closer)
        let passive = Self.other(closer)
        #expect(Self.repeatFin(lab, closer) == .accept)
        #expect(lab.state == .closeWait)
        #expect(lab.ackAll(passive) == .accept)
        #expect(lab.state == .closeWait)
        #expect(lab.secondsLeft == 60)
        // The half-close goes on.
        #expect(lab.data(passive, 300) == .accept)
        #expect(lab.ackAll(closer) == .accept)
        #expect(lab.state == .closeWait)
        // The passive side's exact RST (it aborts instead of closing) reaches the closer.
        #expect(Self.exactReset(lab, from: passive) == .accept)
        #expect(lab.state == .close)
    }

    // The same, the closer's RST toward the passive side, which is in CLOSE_WAIT.
    @Test(arguments: Family.allCases, [Side.client, .server])
    func resetToCloseWaitAfterRepeatedFinPasses(family: Family, closer: Side) {
        let lab = Self.closeWaitAfterRepeatedFin(family, closer: closer)
        #expect(Self.exactReset(lab, from: closer) == .accept)
        #expect(lab.state == .close)
    }

    // A FIN repeated in LAST_ACK stays there; the second side's FIN still moves the close on
    // (it is that side's first), and the last ACK ends in TIME_WAIT.
    @Test(arguments: Family.allCases, [Side.client, .server])
    func eachSidesFirstFinStillCounts(family: Family, closer: Side) {
        let lab = Lab.assured(family)
        let passive = Self.other(closer)
        lab.fin(closer)
        Self.repeatFin(lab, closer)
        #expect(lab.fin(passive) == .accept)
        #expect(lab.state == .lastAck)
        #expect(Self.repeatFin(lab, passive) == .accept)
        #expect(Self.repeatFin(lab, closer) == .accept)
        #expect(lab.state == .lastAck)
        #expect(lab.ackAll(closer) == .accept)
        #expect(lab.state == .timeWait)
        #expect(lab.connection?.closing.inTimeWait(closer == .client ? .original : .reply) == true)
        #expect(lab.connection?.closing.inTimeWait(passive == .client ? .original : .reply) == false)
    }

    // RFC 1337: the active closer is in TIME_WAIT once both FINs and the last ACK have
    // crossed. Every RST addressed to it is dropped (`time-wait-rst`), exact or not; the RSTs
    // it sends itself are judged by RFC 5961 as in any state: out of window dropped, exact
    // passes and closes the entry.
    @Test(arguments: Family.allCases, [Side.client, .server])
    func onlyResetsToTheTimeWaitEndpointDropped(family: Family, closer: Side) throws {
        let lab = Lab.assured(family)
        let passive = Self.other(closer)
        lab.fin(closer)
        lab.fin(passive)
        lab.ackAll(closer)
        #expect(lab.state == .timeWait)
        lab.advance(seconds: 30)
        let before = try #require(lab.connection)
        #expect(Self.exactReset(lab, from: passive) == .drop(.timeWaitRST))
        let passiveNext = passive == .client ? lab.clientNext : lab.serverNext
        #expect(lab.send(passive, .rst, seq: passiveNext &+ 90_000_000, ack: 0) == .drop(.timeWaitRST))
        #expect(lab.send(passive, [.rst, .ack], seq: passiveNext &+ 5, ack: 77) == .drop(.timeWaitRST))
        #expect(lab.connection == before)
        #expect(lab.secondsLeft == 90)
        let closerNext = closer == .client ? lab.clientNext : lab.serverNext
        #expect(lab.send(closer, .rst, seq: closerNext &+ 90_000_000, ack: 0) == .drop(.rstOutOfWindow))
        #expect(lab.send(closer, .rst, seq: closerNext &- 90_000_000, ack: 0) == .drop(.rstOutOfWindow))
        // Dropped, they change no state (only nf_tcp_handle_invalid's note in the status).
        #expect(lab.connection?.state == .timeWait)
        #expect(lab.connection?.original == before.original && lab.connection?.reply == before.reply)
        #expect(Self.exactReset(lab, from: closer) == .accept)
        #expect(lab.state == .close)
        #expect(lab.secondsLeft == 10)
        lab.expectCounters(seen: 16, accepted: 11, drops: [.timeWaitRST: 3, .rstOutOfWindow: 2],
                           created: 1, destroyed: 0, halfOpen: 0)
    }

    // A simultaneous close (RFC 9293 3.6 figure 14): both FINs leave before either arrives, so
    // both endpoints go through TIME_WAIT and RSTs either way are dropped.
    @Test(arguments: Family.allCases)
    func simultaneousCloseProtectsBoth(family: Family) {
        let lab = Lab.assured(family)
        let c = lab.clientNext, s = lab.serverNext
        #expect(lab.send(.client, [.fin, .ack], seq: c, ack: s) == .accept)
        #expect(lab.send(.server, [.fin, .ack], seq: s, ack: c) == .accept)
        #expect(lab.send(.client, .ack, seq: c &+ 1, ack: s &+ 1) == .accept)
        #expect(lab.state == .timeWait)
        // The client's FIN is not acknowledged yet: the client is in CLOSING, not TIME_WAIT.
        #expect(lab.send(.server, .rst, seq: s &+ 1, ack: 0) == .accept)
        #expect(lab.state == .close)

        let again = Lab.assured(family)
        let c2 = again.clientNext, s2 = again.serverNext
        again.send(.client, [.fin, .ack], seq: c2, ack: s2)
        again.send(.server, [.fin, .ack], seq: s2, ack: c2)
        again.send(.client, .ack, seq: c2 &+ 1, ack: s2 &+ 1)
        #expect(again.send(.server, .ack, seq: s2 &+ 1, ack: c2 &+ 1) == .accept)
        #expect(again.state == .timeWait)
        #expect(again.send(.server, .rst, seq: s2 &+ 1, ack: 0) == .drop(.timeWaitRST))
        #expect(again.send(.client, .rst, seq: c2 &+ 1, ack: 0) == .drop(.timeWaitRST))
        #expect(again.state == .timeWait)
    }

    // TIME_WAIT reached without the last ACK: in LAST_ACK, a duplicate of the passive side's
    // ACK of the first FIN moves the kernel's table on (any ACK in sLA). The active closer
    // never acknowledged the passive side's FIN, so it is not known to be in TIME_WAIT: an
    // RST to it is judged (exact passes), as the kernel would take it.
    @Test(arguments: Family.allCases)
    func timeWaitWithoutTheLastAckProtectsNobody(family: Family) {
        let lab = Lab.assured(family)
        lab.fin(.client)
        #expect(lab.ackAll(.server) == .accept)
        lab.fin(.server)
        #expect(lab.state == .lastAck)
        #expect(lab.send(.server, .ack, seq: lab.serverNext &- 1, ack: lab.clientNext) == .accept)
        #expect(lab.state == .timeWait)
        #expect(lab.send(.server, .rst, seq: lab.serverNext &+ 90_000_000, ack: 0) == .drop(.rstOutOfWindow))
        #expect(Self.exactReset(lab, from: .server) == .accept)
        #expect(lab.state == .close)
    }

    // A SYN-ACK answering a SYN ignored while closing (the client restarted in FIN_WAIT)
    // starts over in sync: what was known about the old close goes with the old connection,
    // and the new connection's first FIN is a first FIN again.
    @Test(arguments: Family.allCases)
    func resynchronisedConnectionForgetsTheClose(family: Family) {
        let lab = Lab.assured(family)
        lab.fin(.client)
        #expect(lab.connection?.closing == [.finOriginal, .activeOriginal])
        let isn = lab.clientNext &+ 3_000_000, serverISN = lab.serverNext &+ 7_000_000
        #expect(lab.send(.client, .syn, seq: isn, ack: 0) == .accept)
        #expect(lab.state == .finWait)
        #expect(lab.send(.server, [.syn, .ack], seq: serverISN, ack: isn &+ 1) == .accept)
        #expect(lab.state == .synRecv)
        #expect(lab.connection?.closing == [])
        #expect(lab.send(.client, .ack, seq: isn &+ 1, ack: serverISN &+ 1) == .accept)
        #expect(lab.send(.client, [.fin, .ack], seq: isn &+ 1, ack: serverISN &+ 1) == .accept)
        #expect(lab.state == .finWait)
    }
}
