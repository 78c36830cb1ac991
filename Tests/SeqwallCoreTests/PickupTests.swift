import SeqwallCore
import SeqwallTestSupport
import Testing

/// `set pickup on`: connections first seen mid-stream (docs/design.md, Pickup; TCPWindow
/// "Picked-up connections"). The kernel's tcp_new picks them up as ESTABLISHED and marks both
/// sides "be liberal"; seqwall learns their windows and checks them from then on.
@Suite("Pickup of connections first seen mid-stream")
struct PickupTests {
    /// Where the client and server stand when the tracker first sees them: far from any ISN.
    static let clientBase: UInt32 = 7_000_000
    static let serverBase: UInt32 = 3_000_000_000
    static let mss = 1448

    static func lab(_ family: Family = .ipv4, pickup: Bool = true) -> Lab {
        var policy = Lab.defaultPolicy(family)
        policy.pickup = pickup
        let lab = Lab(family: family, policy: policy, clientISN: clientBase, serverISN: serverBase)
        return lab
    }

    /// Picks up with a data segment from the client, answers with a pure ACK from the server
    /// and one from the client: both sides seen and both sides' ends proven.
    static func pickedUpAndLearned(_ family: Family, window: UInt16 = 502) -> Lab {
        let lab = lab(family)
        lab.window = window
        #expect(lab.data(.client, 100) == .accept)
        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.ackAll(.client) == .accept)
        return lab
    }

    // docs/design.md, Strict by default: pickup is off unless the rule file says `set pickup on`.
    @Test(arguments: Family.allCases)
    func offByDefault(family: Family) {
        #expect(Policy().pickup == false)
        let lab = Self.lab(family, pickup: false)
        #expect(lab.data(.client, 100) == .drop(.noConnection))
        #expect(lab.ackAll(.server) == .drop(.noConnection))
        #expect(lab.tracker.connectionCount == 0)
        lab.expectCounters(seen: 2, accepted: 0, drops: [.noConnection: 2], created: 0, destroyed: 0, halfOpen: 0)
    }

    // Kernel tcp_new with nf_ct_tcp_loose: the ORIGINAL column sNO of tcp_conntracks decides.
    // SYN -> SYN_SENT (a normal open), ACK -> ESTABLISHED (pickup), anything else is sIV: a FIN,
    // an RST or a SYN-ACK never starts a connection; invalid flags never get that far.
    @Test(arguments: [
        (TCPFlags.ack, 0, Verdict.accept), ([.ack, .psh], 100, .accept), ([.ack, .urg], 0, .accept),
        ([.ack, .psh, .ece, .cwr], 10, .accept),
        ([.fin, .ack], 0, .drop(.noConnection)), (.rst, 0, .drop(.noConnection)),
        ([.rst, .ack], 0, .drop(.noConnection)), ([.syn, .ack], 0, .drop(.noConnection)),
        ([], 0, .drop(.badFlags)), (.fin, 0, .drop(.badFlags)),
    ] as [(TCPFlags, Int, Verdict)])
    func firstSegmentsThatMayStartAPickup(flags: TCPFlags, payload: Int, verdict: Verdict) throws {
        let lab = Self.lab()
        #expect(lab.send(.client, flags, seq: Self.clientBase, ack: Self.serverBase, payload: payload) == verdict)
        if verdict == .accept {
            let connection = try #require(lab.connection)
            #expect(connection.state == .established)
            #expect(connection.status == .pickedUp)           // [UNREPLIED]
            lab.expectCounters(seen: 1, accepted: 1, created: 1, destroyed: 0, halfOpen: 0)
        } else {
            #expect(lab.tracker.connectionCount == 0)
        }
    }

    // A SYN still opens a connection the ordinary way, with its options known.
    @Test func synIsNotAPickup() throws {
        let lab = Self.lab()
        #expect(lab.send(.client, .syn, seq: Self.clientBase, ack: 0, options: [.windowScale(7)]) == .accept)
        let connection = try #require(lab.connection)
        #expect(connection.state == .synSent)
        #expect(!connection.status.contains(.pickedUp))
        #expect(connection.original.scale == 7)
        #expect(!connection.original.flags.contains(.windowScaleUnknown))
        lab.expectCounters(seen: 1, accepted: 1, created: 1, destroyed: 0, halfOpen: 1)
    }

    // A picked-up connection is a new connection for the rules: the first segment is judged
    // like a SYN would be (seqwall.rules(5), set pickup), here `default in block` for port 81.
    @Test func rulesJudgeThePickup() {
        let lab = Self.lab()
        lab.serverPort = 81
        #expect(lab.data(.client, 100) == .drop(.rule))
        #expect(lab.tracker.connectionCount == 0)
    }

    // The new entry (tcp_new, nf_conntrack_tcp_packet): ESTABLISHED, [UNREPLIED] and at most the
    // unacknowledged timeout (300 s) until the other side answers ("mid-connection pickup ...
    // avoid large ESTABLISHED timeout"); ASSURED once the answer is followed by one more
    // segment, then the normal 5 days. Both sides start with scale 14 and unknown ends.
    @Test(arguments: Family.allCases)
    func theNewEntry(family: Family) throws {
        let lab = Self.lab(family)
        lab.window = 1000
        #expect(lab.ackAll(.client) == .accept)
        var connection = try #require(lab.connection)
        #expect(connection.state == .established)
        #expect(connection.status == .pickedUp)
        #expect(lab.secondsLeft == 300)
        let unknown: PeerFlags = [.sackPermitted, .windowScaleUnknown]
        #expect(connection.original.flags.isSuperset(of: unknown))
        #expect(connection.reply.flags.isSuperset(of: unknown.union(.endUnknown)))
        #expect(connection.original.scale == 14 && connection.reply.scale == 14)
        #expect(connection.original.maxWindow == 1000 << 14)
        // Nothing from the server yet: its window is unknown.
        #expect(connection.reply.maxWindow == 0)
        // A pure ACK from the client proved where the client stands (SND.NXT, or one more if
        // it was a keepalive); the server has sent at least what the client acknowledged.
        #expect(!connection.original.flags.contains(.endUnknown))
        #expect(connection.original.end == Self.clientBase &+ 1)
        #expect(connection.reply.end == Self.serverBase)

        lab.advance(seconds: 10)
        #expect(lab.ackAll(.server) == .accept)
        connection = try #require(lab.connection)
        #expect(connection.status == [.pickedUp, .seenReply])
        #expect(lab.secondsLeft == 300)
        #expect(connection.reply.maxWindow == 1000 << 14)
        // The server's window, with scale 14, bounds what the client may send.
        #expect(connection.original.maxEnd == Self.clientBase &+ (1000 << 14))

        #expect(lab.ackAll(.client) == .accept)
        #expect(lab.connection?.status == [.pickedUp, .seenReply, .assured])
        #expect(lab.secondsLeft == 432_000)
        lab.expectCounters(seen: 3, accepted: 3, created: 1, destroyed: 0, halfOpen: 0)
    }

    // The worst bug a firewall can have is a false drop. A connection with window scale 7 on
    // both sides (raw windows of 20000 mean 2.5 MB) is picked up in the middle of a bulk
    // transfer: flights many times the raw window, both ways, with SACK, never dropped.
    @Test(arguments: Family.allCases)
    func scaledWindowsBothWaysNeverDrop(family: Family) throws {
        let lab = Self.lab(family)
        lab.window = 20000
        let mss = Self.mss
        // Before the server is seen: 300 segments (434 kB, 22 times the raw window).
        for _ in 0..<300 { #expect(lab.data(.client, mss) == .accept) }
        // The server acknowledges half of it, with a SACK block for the rest but the last.
        let half = Self.clientBase &+ UInt32(150 * mss)
        #expect(lab.send(.server, .ack, seq: lab.serverNext, ack: half, options: [
            .noOperation, .noOperation, .sack([(half &+ UInt32(mss), lab.clientNext &- UInt32(mss))]),
        ]) == .accept)
        for round in 0..<10 {
            // 1.2 MB each way per round, acknowledged at the end of the round.
            for _ in 0..<800 { #expect(lab.data(.client, mss) == .accept) }
            #expect(lab.ackAll(.server) == .accept)
            for _ in 0..<800 { #expect(lab.data(.server, mss) == .accept) }
            #expect(lab.ackAll(.client) == .accept, "round \(round)")
        }
        #expect(lab.tracker.counters.dropped == 0)
        let connection = try #require(lab.connection)
        #expect(connection.state == .established)
        #expect(connection.status.contains(.assured))
    }

    // Why an end is unknown until proven: the client sent segments 1-10 before the pickup,
    // unseen; 3 was lost, so the first segment seen is 3 again. The server, which has 4-10,
    // acknowledges up to 10: more than the tracker ever saw the client send, yet not unsent.
    @Test(arguments: Family.allCases)
    func ackOfDataSentBeforeThePickupPasses(family: Family) {
        let lab = Self.lab(family)
        let mss = UInt32(Self.mss)
        let segment = { (number: UInt32) in Self.clientBase &+ (number - 1) * mss }
        #expect(lab.send(.client, [.ack, .psh], seq: segment(3), ack: lab.serverNext, payload: Self.mss) == .accept)
        // The server has 4-7 so far: a duplicate ACK with SACK, then the cumulative ACK.
        #expect(lab.send(.server, .ack, seq: lab.serverNext, ack: segment(3),
                         options: [.noOperation, .noOperation, .sack([(segment(4), segment(8))])]) == .accept)
        #expect(lab.send(.server, .ack, seq: lab.serverNext, ack: segment(8)) == .accept)
        // 8-10, in flight past the firewall before the pickup, arrive.
        #expect(lab.send(.server, .ack, seq: lab.serverNext, ack: segment(11)) == .accept)
        // And the transfer goes on.
        lab.clientNext = segment(11)
        #expect(lab.data(.client, Self.mss) == .accept)
        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.tracker.counters.dropped == 0)
        #expect(lab.connection?.original.flags.contains(.endUnknown) == true)
    }

    // Once both sides were seen and each has sent a pure ACK (RFC 9293 3.10.7.4: it carries
    // SND.NXT), condition III is strict: an ACK for data never sent is `ack-above-sent`, both
    // ways, and the connection goes on. (One sequence number of slack remains, for a first
    // segment that was a keepalive: SND.NXT - 1.)
    @Test(arguments: Family.allCases)
    func ackOfUnsentDataDroppedOnceBothSidesAreLearned(family: Family) throws {
        let lab = Self.pickedUpAndLearned(family)
        let before = try #require(lab.connection)
        #expect(!before.original.flags.contains(.endUnknown) && !before.reply.flags.contains(.endUnknown))
        #expect(lab.send(.server, .ack, seq: lab.serverNext, ack: lab.clientNext &+ 2) == .drop(.ackAboveSent))
        #expect(lab.send(.server, .ack, seq: lab.serverNext, ack: lab.clientNext &+ 100_000) == .drop(.ackAboveSent))
        #expect(lab.send(.client, .ack, seq: lab.clientNext, ack: lab.serverNext &+ 2) == .drop(.ackAboveSent))
        #expect(lab.connection == before)
        #expect(lab.data(.client, 500) == .accept)
        #expect(lab.data(.server, 500) == .accept)
        #expect(lab.ackAll(.client) == .accept)
        lab.expectCounters(seen: 9, accepted: 6, drops: [.ackAboveSent: 3], created: 1, destroyed: 0, halfOpen: 0)
    }

    // What proves a side's end: a pure ACK at or past what it was seen to send (or one less: a
    // keepalive), or a FIN. A pure ACK behind it, or data, proves nothing, and ACKs of more
    // than was seen still pass.
    @Test(arguments: Family.allCases)
    func whatProvesAnEnd(family: Family) {
        let lab = Self.lab(family)
        #expect(lab.data(.client, 5000) == .accept)
        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.send(.client, .ack, seq: lab.clientNext &- 1000, ack: lab.serverNext) == .accept)
        #expect(lab.data(.client, 10) == .accept)
        #expect(lab.connection?.original.flags.contains(.endUnknown) == true)
        #expect(lab.send(.server, .ack, seq: lab.serverNext, ack: lab.clientNext &+ 3000) == .accept)
        lab.clientNext &+= 3000
        #expect(lab.connection?.original.end == lab.clientNext)

        #expect(lab.fin(.client) == .accept)
        #expect(lab.connection?.original.flags.contains(.endUnknown) == false)
        #expect(lab.send(.server, .ack, seq: lab.serverNext, ack: lab.clientNext &+ 1) == .drop(.ackAboveSent))
        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.state == .closeWait)
    }

    // A keepalive (SEG.SEQ = SND.NXT - 1, RFC 9293 3.8.4) is a common first segment after an
    // entry expired. Its answer acknowledges SND.NXT, one past the keepalive; one more is unsent.
    @Test(arguments: Family.allCases)
    func keepaliveStartsAPickup(family: Family) {
        let lab = Self.lab(family)
        #expect(lab.send(.client, .ack, seq: lab.clientNext &- 1, ack: lab.serverNext) == .accept)
        #expect(lab.send(.server, .ack, seq: lab.serverNext, ack: lab.clientNext) == .accept)
        #expect(lab.send(.server, .ack, seq: lab.serverNext, ack: lab.clientNext &+ 1) == .drop(.ackAboveSent))
        #expect(lab.data(.client, 10) == .accept)
        #expect(lab.ackAll(.server) == .accept)
    }

    // Condition I with the scale unknown: the server's raw window 100 may mean up to
    // 100 << 14 bytes. Data up to that bound passes; data beyond even the kernel's overshoot
    // allowance (the receiver's largest window again) is `seq-above-window`.
    @Test(arguments: Family.allCases)
    func dataAboveTheLargestPossibleWindowDropped(family: Family) throws {
        let lab = Self.pickedUpAndLearned(family, window: 100)
        let bound = try #require(lab.connection).original.maxEnd
        #expect(bound == lab.clientNext &+ (100 << 14))
        #expect(lab.send(.client, [.ack, .psh], seq: bound, ack: lab.serverNext, payload: 100) == .accept)
        let beyond = bound &+ 4_000_000
        #expect(lab.send(.client, [.ack, .psh], seq: beyond, ack: lab.serverNext, payload: 100) == .drop(.seqAboveWindow))
        #expect(lab.data(.server, 100) == .accept)
    }

    // RFC 5961 applies to a picked-up connection as soon as both sides were seen: an RST below
    // what the other side acknowledged or above the window is dropped and the connection lives;
    // an in-window one keeps the state for a challenge ACK; the exact one closes.
    @Test(arguments: Family.allCases)
    func outOfWindowResetDropped(family: Family) throws {
        let lab = Self.pickedUpAndLearned(family)
        #expect(lab.connection?.status.contains(.assured) == true)
        #expect(lab.send(.server, .rst, seq: lab.serverNext &- 5000, ack: 0) == .drop(.rstOutOfWindow))
        #expect(lab.send(.server, .rst, seq: lab.serverNext &+ 100_000_000, ack: 0) == .drop(.rstOutOfWindow))
        #expect(lab.send(.client, [.rst, .ack], seq: lab.clientNext &- 5000, ack: lab.serverNext)
                == .drop(.rstOutOfWindow))
        #expect(lab.state == .established)
        #expect(lab.data(.client, 10) == .accept)
        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.send(.server, .rst, seq: lab.serverNext &+ 10, ack: 0) == .accept)
        #expect(lab.state == .established)
        #expect(lab.send(.server, .rst, seq: lab.serverNext, ack: 0) == .accept)
        #expect(lab.state == .close)
    }

    // Until the other side's first segment nothing about it is known: for the side picked up
    // only the flags and the transition table are checked (a SYN-ACK from it is invalid); a
    // segment far ahead, an ACK of anything, even an RST, cannot be judged and passes. The
    // same jump once the other side was seen is dropped.
    @Test(arguments: Family.allCases)
    func beforeTheReplyOnlyFlagsAndTransitionsAreChecked(family: Family) {
        let lab = Self.lab(family)
        #expect(lab.data(.client, 100) == .accept)
        #expect(lab.send(.client, [.syn, .ack], seq: lab.clientNext, ack: lab.serverNext) == .drop(.badTransition))
        #expect(lab.send(.client, [.fin, .syn], seq: lab.clientNext, ack: lab.serverNext) == .drop(.badFlags))
        #expect(lab.send(.client, [.ack, .psh], seq: lab.clientNext &+ 400_000_000, ack: lab.serverNext,
                         payload: 100) == .accept)
        #expect(lab.send(.client, .ack, seq: lab.clientNext, ack: lab.serverNext &+ 1_000_000) == .accept)
        #expect(lab.state == .established)
        #expect(lab.send(.client, [.rst, .ack], seq: lab.clientNext &+ 12345, ack: lab.serverNext) == .accept)
        // Only one side ever seen and it reset: the entry goes, as in the kernel.
        #expect(lab.connection == nil)

        let checked = Self.pickedUpAndLearned(family)
        #expect(checked.send(.client, [.ack, .psh], seq: checked.clientNext &+ 400_000_000, ack: checked.serverNext,
                             payload: 100) == .drop(.seqAboveWindow))
    }

    // The server's first segment is checked too: an RST below what the client acknowledged is
    // dropped; SYN-ACKs from it are ignored (tcp_conntracks REPLY synack sES -> sIG).
    @Test(arguments: Family.allCases)
    func theReplysFirstSegmentIsChecked(family: Family) {
        let lab = Self.lab(family)
        #expect(lab.data(.client, 100) == .accept)
        #expect(lab.send(.server, .rst, seq: lab.serverNext &- 1, ack: 0) == .drop(.rstOutOfWindow))
        #expect(lab.send(.server, [.syn, .ack], seq: 1, ack: lab.clientNext) == .accept)
        #expect(lab.connection?.reply.maxWindow == 0)
        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.connection?.reply.maxWindow == UInt32(lab.window) << 14)
    }

    // A SYN-ACK answering a SYN the tracker ignored resynchronises a picked-up connection
    // (the kernel's ignored-SYN rule): from then on it is tracked with the options the SYNs
    // carried, scale included.
    @Test func resyncLearnsTheRealScale() throws {
        let lab = Self.pickedUpAndLearned(.ipv4)
        let isn: UInt32 = 42
        #expect(lab.send(.client, .syn, seq: isn, ack: 0, options: [.windowScale(7)]) == .accept)
        #expect(lab.send(.server, [.syn, .ack], seq: 99, ack: isn &+ 1, options: [.windowScale(5)]) == .accept)
        #expect(lab.state == .synRecv)
        #expect(lab.send(.client, .ack, seq: isn &+ 1, ack: 100) == .accept)
        let connection = try #require(lab.connection)
        #expect(connection.state == .established)
        #expect(connection.original.scale == 7 && connection.reply.scale == 5)
        #expect(!connection.status.contains(.pickedUp))
        let unknown: PeerFlags = [.windowScaleUnknown, .endUnknown]
        #expect(connection.original.flags.isDisjoint(with: unknown))
        #expect(connection.reply.flags.isDisjoint(with: unknown))
    }
}
