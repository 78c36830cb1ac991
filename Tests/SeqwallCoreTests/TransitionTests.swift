import SeqwallCore
import SeqwallTestSupport
import Testing

/// One segment class (a row of the kernel's table), from one side, in one state.
struct TransitionCase: Sendable, CustomTestStringConvertible {
    let side: Side
    let index: TCPFlagIndex
    let state: TCPState

    var testDescription: String { "\(side == .client ? "original" : "reply") \(index) in \(state)" }
}

/// Every cell of the kernel's tcp_conntracks, both directions, driven with real packets: the
/// connection is brought into the state by a real exchange, then one in-window segment of the
/// row's class is sent and the verdict and the state that follows are checked against the
/// kernel's table (StateTableTests.kernel), with the rules around the table listed in
/// `expected` below. Column sNO is covered by PickupTests (a first segment is original by
/// definition, so REPLY sNO is never reached).
@Suite("Every transition, both directions")
struct TransitionTests {
    static let states: [TCPState] = [.synSent, .synRecv, .established, .finWait, .closeWait, .lastAck, .timeWait,
                                     .close, .synSent2]
    static let indexes: [TCPFlagIndex] = [.syn, .synAck, .fin, .ack, .rst, .none]
    static let cases: [TransitionCase] = [Side.client, .server].flatMap { side in
        indexes.flatMap { index in states.map { TransitionCase(side: side, index: index, state: $0) } }
    }

    enum Outcome: Equatable, CustomStringConvertible {
        case state(TCPState)
        /// sIG: passes, the connection's state and window data stay as they were.
        case ignored
        case dropped(DropReason)
        /// Accepted, and the entry is gone: only an RST ever answered.
        case gone
        /// The old entry is gone and the SYN opened a new one with `Side` as original.
        case reopened(Side)

        var description: String {
            switch self {
            case .state(let state): "\(state)"
            case .ignored: "ignored"
            case .dropped(let reason): "dropped \(reason)"
            case .gone: "gone"
            case .reopened(let side): "reopened by the \(side)"
            }
        }
    }

    /// What the kernel's table says, with the rules of nf_conntrack_tcp_packet around it and
    /// seqwall's stricter ones.
    static func expected(_ transition: TransitionCase) -> Outcome {
        switch (transition.index, transition.side, transition.state) {
        case (.none, _, _):
            // No flags: never reaches the table (tcp_error, invalid flag combination).
            return .dropped(.badFlags)
        case (.rst, .server, .timeWait):
            // RFC 1337: no TIME-WAIT assassination (the kernel closes). The client closed
            // first, so the RST is addressed to the endpoint in TIME_WAIT. The client's own RST
            // is judged as in any state: in window, the table's sCL.
            return .dropped(.timeWaitRST)
        case (.fin, .client, .finWait), (.fin, .client, .closeWait):
            // The client's FIN brought these states: a second one repeats it and closes
            // nothing more (the kernel's table moves on to sLA, CloseProgress).
            return .state(transition.state)
        case (.rst, _, .synSent):
            // Only the SYN was seen: the kernel deletes the entry at once.
            return .gone
        case (.syn, .client, .timeWait), (.syn, .client, .close):
            // RFC 1122 4.2.2.13: a closed (FIN) or aborted (RST from the same side) connection's
            // tuple is reused; the SYN is judged as a new connection.
            return .reopened(.client)
        case (.syn, .server, .timeWait):
            // "Reopened connection, but server may have switched role".
            return .reopened(.server)
        default:
            let direction = transition.side == .client ? 0 : 1
            let row = Int(transition.index.rawValue)
            let column = Int(transition.state.rawValue)
            switch StateTableTests.kernel[direction][row][column] {
            case "IV": return .dropped(.badTransition)
            case "IG": return .ignored
            case let code:
                guard case .to(let state) = StateTableTests.cell(code) else { fatalError(code) }
                return .state(state)
            }
        }
    }

    /// Brings the lab's connection (client original) into `state` with real packets.
    static func reach(_ state: TCPState, _ lab: Lab) {
        let c = lab.clientISN, s = lab.serverISN
        switch state {
        case .synSent:
            lab.send(.client, .syn, seq: c, ack: 0)
            lab.clientNext = c &+ 1
        case .synSent2:
            lab.send(.client, .syn, seq: c, ack: 0)
            lab.send(.server, .syn, seq: s, ack: 0)
            lab.clientNext = c &+ 1
            lab.serverNext = s &+ 1
        case .synRecv:
            lab.send(.client, .syn, seq: c, ack: 0)
            lab.send(.server, [.syn, .ack], seq: s, ack: c &+ 1)
            lab.clientNext = c &+ 1
            lab.serverNext = s &+ 1
        case .established:
            lab.handshake()
        case .finWait, .closeWait, .lastAck, .timeWait:
            lab.handshake()
            lab.fin(.client)
            if state == .finWait { break }
            lab.ackAll(.server)
            if state == .closeWait { break }
            lab.fin(.server)
            if state == .lastAck { break }
            lab.ackAll(.client)
        case .close:
            lab.handshake()
            lab.send(.client, [.rst, .ack], seq: lab.clientNext, ack: lab.serverNext)
        case .none:
            break
        }
    }

    /// An in-window segment of `index`'s class from `side`: at the side's next sequence number
    /// and acknowledging all the other side sent (nothing if it sent nothing); SYNs and SYN-ACKs
    /// repeat the ISN while the handshake is under way, else start a new incarnation.
    static func send(_ index: TCPFlagIndex, from side: Side, in state: TCPState, _ lab: Lab) -> Verdict {
        let handshaking = state == .synSent || state == .synSent2
        let isn = side == .client ? lab.clientISN : lab.serverISN
        let next = side == .client ? lab.clientNext : lab.serverNext
        let otherSent = side == .server || state != .synSent
        let ack = side == .client ? (otherSent ? lab.serverNext : 0) : lab.clientNext
        switch index {
        case .syn:
            return lab.send(side, .syn, seq: handshaking ? isn : next &+ 100_000, ack: 0)
        case .synAck:
            let otherISN = side == .client ? lab.serverISN : lab.clientISN
            return lab.send(side, [.syn, .ack], seq: isn, ack: otherISN &+ 1)
        case .fin: return lab.send(side, [.fin, .ack], seq: next, ack: ack)
        case .ack: return lab.send(side, .ack, seq: next, ack: ack)
        case .rst: return lab.send(side, [.rst, .ack], seq: next, ack: ack)
        case .none: return lab.send(side, [], seq: next, ack: 0)
        }
    }

    @Test(arguments: cases)
    func transition(_ transition: TransitionCase) throws {
        let lab = Lab(family: .ipv4)
        Self.reach(transition.state, lab)
        let before = try #require(lab.connection)
        #expect(before.state == transition.state)
        let verdict = Self.send(transition.index, from: transition.side, in: transition.state, lab)
        let expected = Self.expected(transition)
        switch expected {
        case .state(let state):
            #expect(verdict == .accept)
            #expect(lab.state == state)
        case .ignored:
            #expect(verdict == .accept)
            let after = try #require(lab.connection)
            #expect(after.state == before.state)
            #expect(after.original == before.original && after.reply == before.reply)
            #expect(after.expiresAt == before.expiresAt)
        case .dropped(let reason):
            #expect(verdict == .drop(reason))
            #expect(lab.connection == before)
        case .gone:
            #expect(verdict == .accept)
            #expect(lab.connection == nil)
            #expect(lab.tracker.halfOpenCount == 0)
        case .reopened(let side):
            #expect(verdict == .accept)
            let (connection, _) = try #require(lab.tracker.connection(for: lab.key))
            #expect(connection.state == .synSent)
            #expect(connection.key == (side == .client ? lab.key : lab.key.reversed))
            #expect(connection.status == [])
            #expect(lab.tracker.counters.created == 2 && lab.tracker.counters.destroyed == 1)
        }
    }

    // Every cell is exercised, and the rules around the table change only the ones listed.
    @Test func everyCellIsCovered() {
        #expect(Self.cases.count == 2 * 6 * 9)
        let special = Self.cases.filter { transition in
            let direction = transition.side == .client ? 0 : 1
            let code = StateTableTests.kernel[direction][Int(transition.index.rawValue)][Int(transition.state.rawValue)]
            switch Self.expected(transition) {
            case .dropped(.badTransition): return code != "IV"
            case .ignored: return code != "IG"
            case .state(let state): return StateTableTests.cell(code) != .to(state)
            default: return true
            }
        }
        // none x 18, rst in TIME_WAIT addressed to the client (which closed first) x 1, the
        // client's FIN repeated in FIN_WAIT and CLOSE_WAIT x 2, rst in SYN_SENT x 2, and 3 SYNs
        // reopening.
        #expect(special.count == 18 + 1 + 2 + 2 + 3)
    }
}

/// Stale and repeated segments of the handshake, and what reopens a tuple.
@Suite("Stale SYN-ACKs, challenge ACKs and reopened tuples")
struct HandshakeCornerTests {
    // tcp_conntracks REPLY synack sSR -> sIG, sES -> sIG: a retransmitted or stale SYN-ACK,
    // with the right ACK or a wrong one, passes and changes nothing (the kernel IGNOREs it,
    // the client answers it); from the client side it is invalid (ORIGINAL synack sES -> sIV).
    @Test(arguments: Family.allCases)
    func staleSynAcks(family: Family) throws {
        let lab = Lab(family: family)
        let c = lab.clientISN, s = lab.serverISN
        lab.send(.client, .syn, seq: c, ack: 0)
        lab.send(.server, [.syn, .ack], seq: s, ack: c &+ 1)
        var before = try #require(lab.connection)
        #expect(lab.send(.server, [.syn, .ack], seq: s, ack: c &+ 1) == .accept)
        #expect(lab.send(.server, [.syn, .ack], seq: s &+ 7, ack: c &+ 999) == .accept)
        var after = try #require(lab.connection)
        #expect(after.state == .synRecv && after.original == before.original && after.reply == before.reply)

        #expect(lab.send(.client, .ack, seq: c &+ 1, ack: s &+ 1) == .accept)
        before = try #require(lab.connection)
        #expect(lab.send(.server, [.syn, .ack], seq: s, ack: c &+ 1) == .accept)
        #expect(lab.send(.server, [.syn, .ack], seq: 1, ack: 2) == .accept)
        after = try #require(lab.connection)
        #expect(after.state == .established && after.original == before.original && after.reply == before.reply)
        #expect(after.expiresAt == before.expiresAt)
        #expect(lab.send(.client, [.syn, .ack], seq: c, ack: s &+ 1) == .drop(.badTransition))
    }

    // The kernel's ignored-SYN resync goes through tcp_in_window; a SYN-ACK that acknowledges
    // the ignored SYN but carries a SACK block beyond it fails III and is dropped, and the
    // connection is left exactly as it was (the kernel would keep the half-done resync).
    @Test(arguments: Family.allCases)
    func failedResyncLeavesTheConnection(family: Family) throws {
        let lab = Lab(family: family)
        lab.handshake()
        let isn: UInt32 = 77
        #expect(lab.send(.client, .syn, seq: isn, ack: 0, options: [.sackPermitted]) == .accept)
        let before = try #require(lab.connection)
        #expect(lab.send(.server, [.syn, .ack], seq: 900, ack: isn &+ 1,
                         options: [.noOperation, .noOperation, .sack([(isn &+ 1, isn &+ 5000)])])
                == .drop(.ackAboveSent))
        #expect(lab.connection == before)
        #expect(lab.send(.server, [.syn, .ack], seq: 900, ack: isn &+ 1) == .accept)
        #expect(lab.state == .synRecv)
    }

    // RFC 5961 4: a SYN inside ESTABLISHED is ignored and the receiver answers it with a
    // challenge ACK, an ordinary in-window ACK that keeps ESTABLISHED.
    @Test(arguments: Family.allCases)
    func challengeAckToSynInEstablished(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        #expect(lab.send(.client, .syn, seq: lab.clientNext &+ 5_000_000, ack: 0) == .accept)
        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.state == .established)
        #expect(lab.data(.client, 10) == .accept)
    }

    // The kernel keeps "simultaneous open" in last_flags, which an ignored SYN from the
    // original side starts afresh: after it, an ACK from the reply side in SYN_RECV does not
    // complete the simultaneous open (sSR -> sSR); the client's ACK does.
    @Test(arguments: Family.allCases)
    func ignoredSynForgetsSimultaneousOpen(family: Family) {
        let lab = Lab(family: family)
        let c = lab.clientISN, s = lab.serverISN
        lab.send(.client, .syn, seq: c, ack: 0)
        lab.send(.server, .syn, seq: s, ack: 0)
        #expect(lab.send(.client, [.syn, .ack], seq: c, ack: s &+ 1) == .accept)
        #expect(lab.state == .synRecv)
        #expect(lab.send(.client, .syn, seq: c &+ 1_000_000, ack: 0) == .accept)
        #expect(lab.connection?.status.contains(.simultaneousOpen) == false)
        #expect(lab.send(.server, .ack, seq: s &+ 1, ack: c &+ 1) == .accept)
        #expect(lab.state == .synRecv)
        #expect(lab.send(.client, .ack, seq: c &+ 1, ack: s &+ 1) == .accept)
        #expect(lab.state == .established)
    }

    // A SYN on a CLOSE tuple reopens it only when the tracker saw it aborted by the same side's
    // RST (tcp_packet: last_dir == dir && last_index == RST); after the other side's RST the
    // SYN may be out of sync and is ignored (sIG), and a SYN from the reply side is invalid.
    @Test(arguments: Family.allCases)
    func synOnACloseTuple(family: Family) throws {
        let aborted = Lab(family: family)
        aborted.handshake()
        aborted.send(.client, .rst, seq: aborted.clientNext, ack: 0)
        #expect(aborted.send(.client, .syn, seq: 777, ack: 0) == .accept)
        #expect(aborted.state == .synSent)
        #expect(aborted.connection?.original.end == 778)

        let refused = Lab(family: family)
        refused.handshake()
        refused.send(.server, .rst, seq: refused.serverNext, ack: 0)
        #expect(refused.state == .close)
        let before = try #require(refused.connection)
        #expect(refused.send(.client, .syn, seq: 777, ack: 0) == .accept)
        #expect(refused.state == .close)
        #expect(refused.connection?.original == before.original)
        #expect(refused.send(.server, .syn, seq: 888, ack: 0) == .drop(.badTransition))
        refused.expectCounters(seen: 6, accepted: 5, drops: [.badTransition: 1], created: 1, destroyed: 0, halfOpen: 0)
    }
}
