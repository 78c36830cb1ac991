import SeqwallCore
import SeqwallTestSupport
import Testing

/// RST rules (RFC 5961 3.2, RFC 1337, RFC 9293 3.10.7) as the kernel's nf_conntrack_tcp_packet
/// applies them, stricter where docs/design.md (Deliberate differences from the kernel) says so.
/// The basic cases (exact, in window with a challenge ACK, out of window, train, TIME_WAIT) are in
/// ConnectionTrackerTests' ClosingTests.
@Suite("RST rules")
struct RSTTests {
    // RFC 9293 3.10.7.3 (SYN-SENT): an RST is acceptable only if its ACK acknowledges the SYN.
    // Any other is dropped (`rst-out-of-window`), stricter than the kernel, and the entry lives
    // on: the real SYN-ACK still opens the connection.
    @Test(arguments: Family.allCases)
    func resetInSynSentMustAcknowledgeTheSyn(family: Family) throws {
        let lab = Lab(family: family)
        let c = lab.clientISN, s = lab.serverISN
        lab.send(.client, .syn, seq: c, ack: 0)
        let before = try #require(lab.connection)
        #expect(lab.send(.server, [.rst, .ack], seq: 0, ack: c) == .drop(.rstOutOfWindow))
        #expect(lab.send(.server, [.rst, .ack], seq: 0, ack: c &+ 2) == .drop(.rstOutOfWindow))
        #expect(lab.send(.server, [.rst, .ack], seq: 0, ack: c &- 1000) == .drop(.rstOutOfWindow))
        #expect(lab.send(.server, [.rst, .ack], seq: 0, ack: c &+ 1_000_000) == .drop(.rstOutOfWindow))
        // Without ACK the client discards it too ("else (no ACK) drop the segment").
        #expect(lab.send(.server, .rst, seq: 0, ack: 0) == .drop(.rstOutOfWindow))
        #expect(lab.connection == before)
        #expect(lab.send(.server, [.syn, .ack], seq: s, ack: c &+ 1) == .accept)
        #expect(lab.send(.client, .ack, seq: c &+ 1, ack: s &+ 1) == .accept)
        #expect(lab.state == .established)
        lab.expectCounters(seen: 8, accepted: 3, drops: [.rstOutOfWindow: 5], created: 1, destroyed: 0, halfOpen: 0)
    }

    // The RST that answers the SYN exactly, whatever its sequence number (a closed port sends
    // SEQ=0, RFC 9293 3.10.7.1), ends the entry: only the RST answered (the kernel deletes it).
    @Test(arguments: [UInt32(0), 77_777])
    func exactResetInSynSentEndsTheEntry(sequence: UInt32) {
        let lab = Lab(family: .ipv4)
        lab.send(.client, .syn, seq: lab.clientISN, ack: 0)
        #expect(lab.send(.server, [.rst, .ack], seq: sequence, ack: lab.clientISN &+ 1) == .accept)
        #expect(lab.connection == nil)
        lab.expectCounters(seen: 2, accepted: 2, created: 1, destroyed: 1, halfOpen: 0)
    }

    /// Half-closed: the client sent FIN (FIN_WAIT), optionally the server acked it
    /// (CLOSE_WAIT), optionally the server sent its FIN too (LAST_ACK).
    private static func closing(_ family: Family, to state: TCPState) -> Lab {
        let lab = Lab(family: family)
        lab.handshake()
        lab.fin(.client)
        if state != .finWait { lab.ackAll(.server) }
        if state == .lastAck { lab.fin(.server) }
        #expect(lab.state == state)
        return lab
    }

    // An out-of-window RST never closes a connection (docs/design.md, RST), in FIN_WAIT, CLOSE_WAIT
    // and LAST_ACK as well. The kernel takes any RST there (tcp_can_early_drop); seqwall applies
    // the same RST rules as in ESTABLISHED, so a blind RST cannot cut a half-closed connection that
    // still carries data one way. The exact RST closes.
    @Test(arguments: Family.allCases, [TCPState.finWait, .closeWait, .lastAck])
    func outOfWindowResetWhileClosingDropped(family: Family, state: TCPState) throws {
        let lab = Self.closing(family, to: state)
        let before = try #require(lab.connection)
        // Below what the client acknowledged, and far above the window.
        #expect(lab.send(.server, .rst, seq: lab.serverNext &- 10_000, ack: 0) == .drop(.rstOutOfWindow))
        #expect(lab.send(.server, .rst, seq: lab.serverNext &+ 50_000_000, ack: 0) == .drop(.rstOutOfWindow))
        #expect(lab.send(.client, .rst, seq: lab.clientNext &+ 50_000_000, ack: 0) == .drop(.rstOutOfWindow))
        #expect(lab.connection?.original == before.original && lab.connection?.reply == before.reply)
        #expect(lab.state == state)
        if state != .lastAck {
            // The half-close goes on: the server still sends data, the client acknowledges it.
            #expect(lab.data(.server, 500) == .accept)
            #expect(lab.ackAll(.client) == .accept)
        }
        #expect(lab.send(.server, .rst, seq: lab.serverNext, ack: 0) == .accept)
        #expect(lab.state == .close)
        #expect(lab.secondsLeft == 10)
    }

    // Kernel tcp_can_early_drop: in CLOSE there is nothing left to protect; a second RST (from
    // either side, anywhere) passes and the entry stays CLOSE until its 10 s are up.
    @Test(arguments: Family.allCases)
    func resetInCloseIsNotChecked(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        #expect(lab.send(.client, .rst, seq: lab.clientNext, ack: 0) == .accept)
        #expect(lab.state == .close)
        #expect(lab.send(.server, .rst, seq: lab.serverNext &+ 90_000_000, ack: 0) == .accept)
        #expect(lab.state == .close)
        #expect(lab.secondsLeft == 10)
    }

    // The kernel's "RST sent to invalid SYN we had let through": a SYN inside ESTABLISHED is
    // ignored; the RST that answers it (ACK = the SYN's end) closes without window checks,
    // whatever its sequence number. A blind RST dropped before it changes nothing (in the
    // kernel, nf_tcp_handle_invalid would have noted it in last_index, and the real RST that
    // follows would then be judged "invalid rst").
    @Test(arguments: Family.allCases)
    func resetAnsweringAnIgnoredSynCloses(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        let newISN = lab.clientISN &+ 2_000_000_000
        #expect(lab.send(.client, .syn, seq: newISN, ack: 0) == .accept)
        #expect(lab.state == .established)
        // Not answering it: an RST far out of window is still dropped.
        #expect(lab.send(.server, [.rst, .ack], seq: 123, ack: newISN) == .drop(.rstOutOfWindow))
        #expect(lab.send(.server, [.rst, .ack], seq: 123, ack: newISN &+ 1) == .accept)
        #expect(lab.state == .close)
    }

    // The kernel's nf_tcp_handle_invalid: an out-of-window RST in an assured connection is
    // dropped and noted; an out-of-window FIN or RST from the other side answering it means
    // the ends have given up while the tracker fell out of step: the 5-day timeout shrinks to
    // the unacknowledged one (300 s). Window data is untouched.
    @Test(arguments: Family.allCases)
    func outOfWindowCloseAnsweringCloseShortensTimeout(family: Family) throws {
        let lab = Lab(family: family)
        lab.handshake()
        let before = try #require(lab.connection)
        #expect(lab.send(.server, .rst, seq: lab.serverNext &+ 90_000_000, ack: 0) == .drop(.rstOutOfWindow))
        #expect(lab.secondsLeft == 432_000)
        #expect(lab.send(.client, [.fin, .ack], seq: lab.clientNext &+ 90_000_000, ack: lab.serverNext)
                == .drop(.seqAboveWindow))
        #expect(lab.secondsLeft == 300)
        #expect(lab.connection?.original == before.original && lab.connection?.reply == before.reply)
        #expect(lab.state == .established)
        // A segment in window sets the normal timeout again.
        #expect(lab.ackAll(.client) == .accept)
        #expect(lab.secondsLeft == 432_000)
    }

    // nf_tcp_handle_invalid acts only on assured connections, only for FIN and RST, and never
    // lengthens a timeout.
    @Test func invalidSegmentsOtherwiseLeaveTheTimeout() {
        let lab = Lab(family: .ipv4)
        let c = lab.clientISN, s = lab.serverISN
        lab.send(.client, .syn, seq: c, ack: 0)
        lab.send(.server, [.syn, .ack], seq: s, ack: c &+ 1)
        // Not assured (SYN_RECV): two out-of-window FINs answering each other change nothing.
        #expect(lab.send(.client, [.fin, .ack], seq: c &+ 90_000_000, ack: s &+ 1) == .drop(.seqAboveWindow))
        #expect(lab.send(.server, [.fin, .ack], seq: s &+ 90_000_000, ack: c &+ 1) == .drop(.seqAboveWindow))
        #expect(lab.secondsLeft == 60)
        #expect(lab.connection?.lastIndex == .synAck)
        // Assured, but data (not FIN or RST) out of window.
        #expect(lab.send(.client, .ack, seq: c &+ 1, ack: s &+ 1) == .accept)
        #expect(lab.send(.server, .rst, seq: s &+ 90_000_000, ack: 0) == .drop(.rstOutOfWindow))
        #expect(lab.send(.client, .ack, seq: c &+ 90_000_000, ack: s &+ 1) == .drop(.seqAboveWindow))
        #expect(lab.secondsLeft == 432_000)
    }
}

/// The RSTs that answer a segment let through while out of sync skip checks; they must come
/// from that segment's receiver, never from its sender (docs/design.md, RSTs and TIME_WAIT).
@Suite("RST rules: answers come from the other side")
struct RSTAnswerDirectionTests {
    // The two-packet blind kill: a forged SYN from the client's side (ignored, as in the
    // kernel) and a forged RST from the same side whose ACK is that SYN's end. It answers
    // nothing (only the SYN's receiver can), so it is judged as any RST from the client: far
    // above or below the window, it is dropped, and the connection carries data on. Older
    // kernels skipped the window check for it.
    @Test(arguments: Family.allCases, [Int64(50_000_000), -50_000_000])
    func sameSideResetAfterForgedSynDropped(family: Family, offset: Int64) throws {
        let lab = Lab.assured(family)
        let forged = lab.clientNext &+ 1_500_000_000
        #expect(lab.send(.client, .syn, seq: forged, ack: 0) == .accept)
        let before = try #require(lab.connection)
        let seq = UInt32(truncatingIfNeeded: Int64(lab.clientNext) &+ offset)
        #expect(lab.send(.client, [.rst, .ack], seq: seq, ack: forged &+ 1) == .drop(.rstOutOfWindow))
        #expect(lab.send(.client, .rst, seq: seq, ack: forged &+ 1) == .drop(.rstOutOfWindow))
        #expect(lab.connection?.original == before.original && lab.connection?.reply == before.reply)
        #expect(lab.state == .established)
        #expect(lab.data(.client, 10) == .accept)
        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.data(.server, 10) == .accept)
        #expect(lab.ackAll(.client) == .accept)
        #expect(lab.state == .established)
    }

    // After a SYN from its own side, an RST from that side still meets RFC 5961 3.2: in the
    // window but not exact, it passes (the receiver answers with a challenge ACK) and the
    // state stays; the kernel's RST rules skip that check after a SYN from either side. The
    // exact RST closes.
    @Test(arguments: Family.allCases)
    func sameSideResetAfterSynMustBeExact(family: Family) {
        let lab = Lab.assured(family)
        #expect(lab.send(.client, .syn, seq: lab.clientNext &+ 1_500_000_000, ack: 0) == .accept)
        #expect(lab.send(.client, .rst, seq: lab.clientNext &+ 1000, ack: 0) == .accept)
        #expect(lab.state == .established)
        #expect(lab.send(.client, .rst, seq: lab.clientNext &- 1000, ack: 0) == .drop(.rstOutOfWindow))
        #expect(lab.state == .established)
        #expect(lab.send(.client, .rst, seq: lab.clientNext, ack: 0) == .accept)
        #expect(lab.state == .close)
    }

    // From the other side, the RST answering the ignored SYN still closes without a window
    // check, as in the kernel: the client's stack restarted and the server has no socket, or
    // the tuple is reused.
    @Test(arguments: Family.allCases)
    func otherSideResetAnsweringSynCloses(family: Family) {
        let lab = Lab.assured(family)
        let isn = lab.clientNext &+ 1_500_000_000
        #expect(lab.send(.client, .syn, seq: isn, ack: 0) == .accept)
        #expect(lab.send(.server, [.rst, .ack], seq: lab.serverNext &+ 90_000_000, ack: isn &+ 1) == .accept)
        #expect(lab.state == .close)
    }

    // The server's side cannot send an ignored SYN (the reply row's sES is sIV), so nothing
    // of it can be answered: a forged SYN and RST from that side are both dropped.
    @Test(arguments: Family.allCases)
    func replySideSynAndResetDropped(family: Family) {
        let lab = Lab.assured(family)
        let forged = lab.serverNext &+ 1_500_000_000
        #expect(lab.send(.server, .syn, seq: forged, ack: 0) == .drop(.badTransition))
        #expect(lab.send(.server, [.rst, .ack], seq: lab.serverNext &+ 50_000_000, ack: forged &+ 1)
                == .drop(.rstOutOfWindow))
        #expect(lab.state == .established)
        #expect(lab.data(.server, 10) == .accept)
    }

    // The same two packets on a connection the inside opened (the original side is then the
    // inside host): the direction of the flow does not matter, only the side.
    @Test(arguments: Family.allCases)
    func blindKillOnOutboundConnection(family: Family) {
        var policy = Lab.defaultPolicy(family)
        // The client's network is the inside one: its connection to the server goes out.
        policy.inside = [family == .ipv4 ? IPNetwork(address: ip("198.51.100.0"), prefixLength: 24)
                         : IPNetwork(address: ip("2001:db8:1::"), prefixLength: 64)]
        let lab = Lab.assured(family, policy: policy)
        let forged = lab.clientNext &+ 1_500_000_000
        #expect(lab.send(.client, .syn, seq: forged, ack: 0) == .accept)
        #expect(lab.send(.client, [.rst, .ack], seq: lab.clientNext &+ 50_000_000, ack: forged &+ 1)
                == .drop(.rstOutOfWindow))
        #expect(lab.state == .established)
        #expect(lab.connection?.direction == .outbound)
    }
}
