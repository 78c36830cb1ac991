import SeqwallCore
import SeqwallTestSupport
import Testing

/// The kernel's timeout choice at the end of nf_conntrack_tcp_packet, in its order:
///   1. retrans >= tcp_max_retrans (3) and the state's timeout > RETRANS  -> RETRANS (300 s)
///   2. an RST                                                            -> CLOSE (10 s)
///   3. data unacknowledged either way and the state's timeout > UNACK    -> UNACK (300 s)
///   4. last window 0 and the state's timeout > RETRANS                   -> RETRANS
///   5. otherwise the state's own timeout (tcp_timeouts).
/// Then, with no reply seen yet: an RST deletes the entry, a SYN retransmitted in SYN_SENT does
/// not renew the timeout ("do not renew timeout on SYN retransmit"), and ESTABLISHED (pickup) is
/// capped at UNACK. Each test also lets the expiry wheel remove the connection, on the very tick
/// of its deadline and not one tick before, with a DESTROY event for `conntrack watch`.
extension Lab {
    func expire() { tracker.expire(now: now, budget: .max) }

    /// Checks the connection has `seconds` left, then lets them pass in two steps: one second
    /// short of it the connection is still in the table; at it, the wheel has removed it,
    /// counted it and recorded its DESTROY.
    func expectExpiry(after seconds: UInt64, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(secondsLeft == seconds, "timeout", sourceLocation: sourceLocation)
        let destroyed = tracker.counters.destroyed
        let state = self.state
        tracker.recordsEvents = true
        tracker.events.reset()
        advance(seconds: seconds - 1)
        expire()
        #expect(connection != nil, "one second before the deadline", sourceLocation: sourceLocation)
        #expect(tracker.counters.destroyed == destroyed, sourceLocation: sourceLocation)
        advance(seconds: 1)
        expire()
        #expect(connection == nil, "at the deadline", sourceLocation: sourceLocation)
        #expect(tracker.counters.destroyed == destroyed + 1, sourceLocation: sourceLocation)
        #expect(tracker.events.count == 1, sourceLocation: sourceLocation)
        if tracker.events.count == 1 {
            #expect(tracker.events[0].kind == .destroy, sourceLocation: sourceLocation)
            #expect(tracker.events[0].connection.state == state, sourceLocation: sourceLocation)
        }
        tracker.recordsEvents = false
        tracker.events.reset()
    }

    /// Long enough idle for the wheel to have looked at the connection and filed it for the
    /// wheel's next turn: a shorter deadline set by a packet from now on must be refiled at once.
    func idlePastFirstVisit() {
        advance(seconds: 200)
        expire()
    }
}

private let fiveDays: UInt64 = 432_000

/// How a test brings a fresh connection to a state.
enum StateRoute: String, CaseIterable, CustomStringConvertible {
    case synSent, synRecv, established, finWait, closeWait, lastAck, timeWait, close, synSent2

    var description: String { rawValue }

    /// Drives `lab` to the state; returns it and its default timeout (tcp_timeouts).
    func drive(_ lab: Lab) -> (TCPState, UInt64) {
        let c = lab.clientISN, s = lab.serverISN
        switch self {
        case .synSent:
            lab.send(.client, .syn, seq: c, ack: 0)
            return (.synSent, 120)
        case .synRecv:
            lab.send(.client, .syn, seq: c, ack: 0)
            lab.send(.server, [.syn, .ack], seq: s, ack: c &+ 1)
            return (.synRecv, 60)
        case .synSent2:
            lab.send(.client, .syn, seq: c, ack: 0)
            // The crossing SYN is the first reply: like a retransmitted SYN before any reply,
            // it does not renew the deadline. The next SYN, now answered, sets SYN_SENT2's.
            lab.send(.server, .syn, seq: s, ack: 0)
            lab.advance(seconds: 1)
            lab.send(.client, .syn, seq: c, ack: 0)
            return (.synSent2, 120)
        case .established:
            lab.handshake()
            return (.established, fiveDays)
        case .close:
            lab.handshake()
            lab.send(.server, .rst, seq: s &+ 1, ack: 0)
            return (.close, 10)
        case .finWait, .closeWait, .lastAck, .timeWait:
            lab.handshake()
            lab.send(.client, [.fin, .ack], seq: c &+ 1, ack: s &+ 1)
            if self == .finWait { return (.finWait, 120) }
            lab.send(.server, .ack, seq: s &+ 1, ack: c &+ 2)
            if self == .closeWait { return (.closeWait, 60) }
            lab.send(.server, [.fin, .ack], seq: s &+ 1, ack: c &+ 2)
            if self == .lastAck { return (.lastAck, 30) }
            lab.send(.client, .ack, seq: c &+ 2, ack: s &+ 2)
            return (.timeWait, 120)
        }
    }
}

@Suite("Timeouts: the kernel's rules")
struct TimeoutRuleTests {
    // tcp_timeouts: SYN_SENT 2 min, SYN_RECV 60 s, ESTABLISHED 5 days, FIN_WAIT 2 min,
    // CLOSE_WAIT 60 s, LAST_ACK 30 s, TIME_WAIT 2 min, CLOSE 10 s, SYN_SENT2 2 min; each met by
    // the wheel on its tick (5 days is many turns of the wheel).
    @Test(arguments: StateRoute.allCases, Family.allCases)
    func eachStateDefault(route: StateRoute, family: Family) {
        let lab = Lab(family: family)
        let (state, seconds) = route.drive(lab)
        #expect(lab.state == state)
        lab.expectExpiry(after: seconds)
        #expect(lab.tracker.halfOpenCount == 0)
        #expect(lab.tracker.connectionCount == 0)
    }

    // Rule 1: the third identical ACK in a row (tcp_max_retrans = 3) caps ESTABLISHED's 5 days
    // at RETRANS, and the connection goes 300 s after it, even though the wheel had filed it
    // for later; a state whose timeout is shorter (CLOSE_WAIT, 60 s) keeps its own.
    @Test(arguments: Family.allCases)
    func retransmissionsShortenTheTimeout(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        lab.idlePastFirstVisit()
        lab.ackAll(.client)
        lab.ackAll(.client)
        #expect(lab.secondsLeft == fiveDays)
        lab.ackAll(.client)
        lab.expectExpiry(after: 300)

        let closing = Lab(family: family)
        #expect(StateRoute.closeWait.drive(closing).0 == .closeWait)
        for _ in 0..<4 { closing.send(.server, .ack, seq: closing.serverISN &+ 1, ack: closing.clientISN &+ 2) }
        #expect(closing.tracker.counters.dropped == 0)
        closing.expectExpiry(after: 60)
    }

    // Rule 2: an RST takes CLOSE (10 s), an exact one (state CLOSE) and an in-window inexact one
    // alike (the kernel keeps ESTABLISHED for the challenge ACK but lowers the timeout); after a
    // long idle stretch the wheel meets the new deadline at once.
    @Test(arguments: Family.allCases)
    func resetTakesTheCloseTimeout(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        lab.idlePastFirstVisit()
        #expect(lab.send(.server, .rst, seq: lab.serverNext, ack: 0) == .accept)
        #expect(lab.state == .close)
        lab.expectExpiry(after: 10)

        let inexact = Lab(family: family)
        inexact.handshake()
        inexact.idlePastFirstVisit()
        #expect(inexact.send(.server, .rst, seq: inexact.serverNext &+ 100, ack: 0) == .accept)
        #expect(inexact.state == .established)
        inexact.expectExpiry(after: 10)
    }

    // Rule 3: unacknowledged data caps ESTABLISHED at UNACK (300 s), from the first segment of
    // data after a long idle stretch; states with shorter timeouts keep their own (FIN_WAIT
    // 120 s with the closing side's data outstanding, CLOSE_WAIT 60 s with the other side's).
    @Test(arguments: Family.allCases)
    func unacknowledgedDataShortensTheTimeout(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        lab.idlePastFirstVisit()
        #expect(lab.data(.server, 100) == .accept)
        lab.expectExpiry(after: 300)

        let halfClosed = Lab(family: family)
        #expect(StateRoute.closeWait.drive(halfClosed).0 == .closeWait)
        halfClosed.clientNext = halfClosed.clientISN &+ 2
        halfClosed.serverNext = halfClosed.serverISN &+ 1
        #expect(halfClosed.data(.server, 100) == .accept)   // half-close: the other side still sends
        #expect(halfClosed.state == .closeWait)
        halfClosed.expectExpiry(after: 60)

        let closing = Lab(family: family)
        closing.handshake()
        #expect(closing.data(.client, 100) == .accept)
        #expect(closing.send(.client, [.fin, .ack], seq: closing.clientNext, ack: closing.serverNext) == .accept)
        #expect(closing.state == .finWait)
        closing.expectExpiry(after: 120)
    }

    // Rule 4: a zero window (the receiver is full; the sender probes) caps ESTABLISHED at
    // RETRANS, and a window that opens again lifts the cap; CLOSE_WAIT's 60 s stays.
    @Test(arguments: Family.allCases)
    func zeroWindowShortensTheTimeout(family: Family) {
        let lab = Lab(family: family)
        lab.handshake()
        lab.idlePastFirstVisit()
        #expect(lab.ackAll(.server, window: 0) == .accept)
        #expect(lab.secondsLeft == 300)
        lab.advance(seconds: 100)
        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.secondsLeft == fiveDays)
        #expect(lab.ackAll(.server, window: 0) == .accept)
        lab.expectExpiry(after: 300)

        let closeWait = Lab(family: family)
        #expect(StateRoute.closeWait.drive(closeWait).0 == .closeWait)
        #expect(closeWait.send(.server, .ack, seq: closeWait.serverISN &+ 1, ack: closeWait.clientISN &+ 2, window: 0)
                == .accept)
        #expect(closeWait.connection?.lastWindow == 0)
        #expect(closeWait.state == .closeWait)
        #expect(closeWait.secondsLeft == 60)
    }

    // The kernel ("do not renew timeout on SYN retransmit", nf_conntrack_tcp_packet): while no
    // reply is seen, a SYN in SYN_SENT leaves the deadline where the first SYN set it. A client
    // that retransmits forever into silence therefore loses its entry 120 s after the SYN that
    // made it; the next retransmission makes a new entry, judged by the rules again, which in
    // turn goes 120 s later. Nothing a sender does keeps an unanswered entry alive.
    @Test(arguments: Family.allCases)
    func unansweredSynDiesWhileRetransmitted(family: Family) {
        let lab = Lab(family: family)
        lab.tracker.recordsEvents = true
        var kinds: [ConnectionEventKind] = []
        var packets: UInt64 = 0
        for second in stride(from: 0, to: 260, by: 5) {
            lab.now = 10_000 * nanosecondsPerSecond + UInt64(second) * nanosecondsPerSecond
            lab.expire()
            #expect(lab.send(.client, .syn, seq: lab.clientISN, ack: 0) == .accept)
            packets += 1
            #expect(lab.state == .synSent)
            // Entries are made at 0 s, 120 s and 240 s; each has its first SYN's deadline.
            #expect(lab.secondsLeft == UInt64(120 - second % 120))
            for index in 0..<lab.tracker.events.count { kinds.append(lab.tracker.events[index].kind) }
            lab.tracker.events.reset()
        }
        #expect(kinds == [.new, .destroy, .new, .destroy, .new])
        lab.expectCounters(seen: packets, accepted: packets, created: 3, destroyed: 2, halfOpen: 1)
    }

    // A retransmitted SYN with the entry past its deadline, before the wheel got to it: the
    // lookup treats it as gone, and the SYN makes a new entry.
    @Test(arguments: Family.allCases)
    func lookupTreatsExpiredAsGone(family: Family) {
        let lab = Lab(family: family)
        lab.send(.client, .syn, seq: lab.clientISN, ack: 0)
        lab.advance(seconds: 120)
        #expect(lab.send(.client, .syn, seq: lab.clientISN, ack: 0) == .accept)
        #expect(lab.secondsLeft == 120)
        lab.expectCounters(seen: 2, accepted: 2, created: 2, destroyed: 1, halfOpen: 1)
        lab.expectExpiry(after: 120)
    }

    // Every timeout comes from the policy (`timeout tcp NAME DURATION` in rule files), the
    // special ones included: SYN_SENT2, RETRANS for retransmissions and zero windows, UNACK,
    // CLOSE; and the wheel meets each.
    @Test(arguments: Family.allCases)
    func policyOverrides(family: Family) {
        var policy = Lab.defaultPolicy(family)
        policy.timeouts.synSent2 = 7
        policy.timeouts.retransmit = 90
        policy.timeouts.unacknowledged = 45
        policy.timeouts.close = 3
        policy.timeouts.established = 1_000

        let simultaneous = Lab(family: family, policy: policy)
        #expect(StateRoute.synSent2.drive(simultaneous).0 == .synSent2)
        simultaneous.expectExpiry(after: 7)

        // The kernel's last_win is set by ACK segments only, so before the first one it is 0
        // and rule 4 applies: with RETRANS set below SYN_SENT's timeout, a SYN gets RETRANS.
        // seqwall keeps this quirk, so that a rule file means what the same sysctls mean.
        let opening = Lab(family: family, policy: policy)
        #expect(StateRoute.synSent.drive(opening).0 == .synSent)
        #expect(opening.secondsLeft == 90)

        let retransmitting = Lab(family: family, policy: policy)
        retransmitting.handshake()
        #expect(retransmitting.secondsLeft == 1_000)
        for _ in 0..<3 { retransmitting.ackAll(.client) }
        retransmitting.expectExpiry(after: 90)

        let zeroWindow = Lab(family: family, policy: policy)
        zeroWindow.handshake()
        zeroWindow.ackAll(.server, window: 0)
        #expect(zeroWindow.secondsLeft == 90)

        let unacknowledged = Lab(family: family, policy: policy)
        unacknowledged.handshake()
        unacknowledged.data(.client, 10)
        unacknowledged.expectExpiry(after: 45)

        let reset = Lab(family: family, policy: policy)
        #expect(StateRoute.close.drive(reset).0 == .close)
        reset.expectExpiry(after: 3)

        // RETRANS and UNACK only ever shorten: set longer than ESTABLISHED's, they leave it.
        var long = policy
        long.timeouts.retransmit = 10_000
        long.timeouts.unacknowledged = 10_000
        let capped = Lab(family: family, policy: long)
        capped.handshake()
        capped.data(.client, 10)
        #expect(capped.secondsLeft == 1_000)
        for _ in 0..<4 { capped.send(.client, .ack, seq: capped.clientNext, ack: capped.serverNext) }
        #expect(capped.connection?.retransmissions == 3)
        #expect(capped.secondsLeft == 1_000)
    }
}
