import SeqwallCore
import SeqwallTestSupport
import Testing

// tcp_in_window, condition by condition, at its edges (TCPWindow).
@Suite("Tracker: window checks")
struct WindowTests {
    // tcp_in_window I: seq <= sender.td_maxend, with the kernel's overshoot allowance only up to
    // the receiver's max window; far above is INVALID -> `seq-above-window`.
    @Test(arguments: Family.allCases)
    func dataFarAboveWindow(family: Family) throws {
        let lab = Lab(family: family)
        lab.handshake()
        let before = try #require(lab.connection)
        #expect(lab.send(.client, [.ack, .psh], seq: lab.clientNext &+ 10_000_000, ack: lab.serverNext, payload: 100)
                == .drop(.seqAboveWindow))
        #expect(lab.send(.server, [.ack, .psh], seq: lab.serverNext &+ 200_000, ack: lab.clientNext, payload: 100)
                == .drop(.seqAboveWindow))
        #expect(lab.connection == before)
        lab.expectCounters(seen: 5, accepted: 3, drops: [.seqAboveWindow: 2], created: 1, destroyed: 0, halfOpen: 0)
    }

    // tcp_in_window I, the overshoot allowance: a segment ending a little past the advertised
    // window (by no more than the receiver's max window) is IGNOREd: it passes, and the sender's
    // end moves so that the receiver's ACK of it is not "unsent".
    @Test(arguments: Family.allCases)
    func slightOvershootPasses(family: Family) throws {
        let lab = Lab(family: family)
        lab.handshake()
        // The server advertised 64240 bytes from c+1: td_maxend is c+1+64240. A segment starting
        // one byte past it fails I, but overshoots by far less than the receiver's max window.
        let maxEnd = lab.clientNext &+ 64_240
        #expect(lab.connection?.original.maxEnd == maxEnd)
        let before = try #require(lab.connection)
        #expect(lab.send(.client, [.ack, .psh], seq: maxEnd &+ 1, ack: lab.serverNext, payload: 100) == .accept)
        let end = maxEnd &+ 101
        let after = try #require(lab.connection)
        #expect(after.original.end == end)
        #expect(after.original.flags.contains(.dataUnacknowledged))
        // Only td_end moved (NFCT_TCP_IGNORE): the timer was not refreshed.
        #expect(after.expiresAt == before.expiresAt)
        #expect(lab.send(.server, .ack, seq: lab.serverNext, ack: end) == .accept)
        // Far more than the receiver's max window past td_maxend is not allowed.
        #expect(lab.send(.client, [.ack, .psh], seq: end &+ 200_000, ack: lab.serverNext, payload: 100)
                == .drop(.seqAboveWindow))
        lab.expectCounters(seen: 6, accepted: 5, drops: [.seqAboveWindow: 1], created: 1, destroyed: 0, halfOpen: 0)
    }

    // tcp_in_window III: sack <= receiver.td_end; acking what the other side never sent is
    // INVALID -> `ack-above-sent`.
    @Test(arguments: Family.allCases)
    func ackOfUnsentData(family: Family) throws {
        let lab = Lab(family: family)
        lab.handshake()
        lab.data(.server, 100)
        let before = try #require(lab.connection)
        #expect(lab.send(.client, .ack, seq: lab.clientNext, ack: lab.serverNext &+ 1) == .drop(.ackAboveSent))
        #expect(lab.send(.client, .ack, seq: lab.clientNext, ack: lab.serverNext &+ 5000) == .drop(.ackAboveSent))
        #expect(lab.connection == before)
        #expect(lab.ackAll(.client) == .accept)
        lab.expectCounters(seen: 7, accepted: 5, drops: [.ackAboveSent: 2], created: 1, destroyed: 0, halfOpen: 0)
    }

    // RFC 2018 / tcp_in_window: when SACK is permitted, the highest SACK right edge counts as the
    // ACK for check III: a SACK block past what was sent is `ack-above-sent`, one inside passes.
    @Test(arguments: Family.allCases)
    func sackBlocksCountAsAcks(family: Family) {
        let lab = Lab(family: family)
        lab.handshake(clientOptions: [.sackPermitted], serverOptions: [.sackPermitted])
        lab.data(.server, 1000)
        let s1 = lab.serverISN &+ 1
        #expect(lab.send(.client, .ack, seq: lab.clientNext, ack: s1,
                         options: [.noOperation, .noOperation, .sack([(s1 &+ 500, s1 &+ 1000)])]) == .accept)
        #expect(lab.send(.client, .ack, seq: lab.clientNext, ack: s1,
                         options: [.noOperation, .noOperation, .sack([(s1 &+ 500, s1 &+ 1001)])]) == .drop(.ackAboveSent))
        lab.expectCounters(seen: 6, accepted: 5, drops: [.ackAboveSent: 1], created: 1, destroyed: 0, halfOpen: 0)
    }

    // tcp_in_window II: seq + len >= sender.td_end - receiver.td_maxwin, else an old
    // retransmission: IGNOREd, so it passes without changing anything (not even the timer).
    @Test(arguments: Family.allCases)
    func oldRetransmissionPassesUnchanged(family: Family) throws {
        let lab = Lab(family: family)
        lab.handshake()
        let first = lab.clientNext
        for _ in 0..<5 {
            #expect(lab.data(.client, 20_000) == .accept)
            #expect(lab.ackAll(.server) == .accept)
        }
        lab.advance(seconds: 7)
        let before = try #require(lab.connection)
        // 100000 bytes later, the first 20000 again: ends 80000 below td_end, beyond the 64240
        // window the server ever advertised.
        #expect(lab.send(.client, [.ack, .psh], seq: first, ack: lab.serverNext, payload: 20_000) == .accept)
        let after = try #require(lab.connection)
        #expect(after.withoutAccounting == before.withoutAccounting)
        #expect(after.state == .established)
        lab.expectCounters(seen: 14, accepted: 14, created: 1, destroyed: 0, halfOpen: 0)
    }

    // tcp_in_window IV: an ACK far below the receiver's end (more than max(maxwin, 66000)) is an
    // overly delayed ACK: IGNOREd, passes unchanged.
    @Test(arguments: Family.allCases)
    func veryOldAckPassesUnchanged(family: Family) throws {
        let lab = Lab(family: family)
        lab.handshake()
        lab.advance(seconds: 3)
        let before = try #require(lab.connection)
        #expect(lab.send(.client, .ack, seq: lab.clientNext, ack: lab.serverNext &- 100_000) == .accept)
        #expect(lab.connection?.withoutAccounting == before.withoutAccounting)
        lab.expectCounters(seen: 4, accepted: 4, created: 1, destroyed: 0, halfOpen: 0)
    }

    // RFC 7323 2.2-2.3 and tcp_init_sender: with window scale on both SYNs, windows after the
    // SYNs are shifted; a segment that only fits the scaled window passes and moves td_end.
    @Test(arguments: Family.allCases)
    func windowScalingBothSides(family: Family) throws {
        let lab = Lab(family: family)
        lab.handshake(clientOptions: [.windowScale(7)], serverOptions: [.windowScale(7)],
                      synAckWindow: 1000, ackWindow: 502)
        let connection = try #require(lab.connection)
        #expect(connection.original.scale == 7)
        #expect(connection.reply.scale == 7)
        // The SYN-ACK's window is never scaled (RFC 7323 2.2): 1000 bytes.
        #expect(connection.original.maxEnd == lab.clientNext &+ 1000)
        // The server's first scaled window: 1000 << 7 = 128000 bytes.
        #expect(lab.ackAll(.server, window: 1000) == .accept)
        #expect(lab.connection?.original.maxEnd == lab.clientNext &+ 128_000)
        // td_maxwin is the largest scaled window the side sent.
        #expect(lab.connection?.reply.maxWindow == 128_000)
        #expect(lab.connection?.original.maxWindow == 502 << 7)
        let start = lab.clientNext &+ 100_000
        #expect(lab.send(.client, [.ack, .psh], seq: start, ack: lab.serverNext, payload: 1000, window: 502) == .accept)
        #expect(lab.connection?.original.end == start &+ 1000)
        lab.expectCounters(seen: 5, accepted: 5, created: 1, destroyed: 0, halfOpen: 0)
    }

    // RFC 7323 2.2: scaling applies only when both SYNs carry the option; with one side only,
    // both shifts are 0 and the same segment is above the (unscaled) window.
    @Test(arguments: Family.allCases, [true, false])
    func windowScalingOneSideOnly(family: Family, clientSends: Bool) throws {
        let lab = Lab(family: family)
        lab.handshake(clientOptions: clientSends ? [.windowScale(7)] : [],
                      serverOptions: clientSends ? [] : [.windowScale(7)],
                      synAckWindow: 1000, ackWindow: 502)
        let connection = try #require(lab.connection)
        #expect(connection.original.scale == 0)
        #expect(connection.reply.scale == 0)
        #expect(lab.ackAll(.server, window: 1000) == .accept)
        #expect(lab.connection?.original.maxEnd == lab.clientNext &+ 1000)
        let start = lab.clientNext &+ 100_000
        #expect(lab.send(.client, [.ack, .psh], seq: start, ack: lab.serverNext, payload: 1000, window: 502)
                == .drop(.seqAboveWindow))
        lab.expectCounters(seen: 5, accepted: 4, drops: [.seqAboveWindow: 1], created: 1, destroyed: 0, halfOpen: 0)
    }

    // RFC 7323 2.3 / kernel tcp_options: a shift above 14 is used as 14.
    @Test func windowScaleClampedTo14() throws {
        let lab = Lab(family: .ipv4)
        lab.handshake(clientOptions: [.windowScale(15)], serverOptions: [.windowScale(200)])
        let connection = try #require(lab.connection)
        #expect(connection.original.scale == 14)
        #expect(connection.reply.scale == 14)
    }

    // The edges below use a lab whose ISNs are chosen so that each bound lies before, exactly on,
    // or across the wrap of the sequence space at 2^32 (RFC 9293 3.4, the kernel's before() and
    // after()). 0xFFFF_FC17 + 1 + 1000 is exactly 2^32.
    static let clientISNs: [UInt32] = [1000, 0xFFFF_FC17, 0xFFFF_FE00]

    /// After the handshake, with the server's window 1000 (its SYN-ACK window, never scaled):
    /// the client may send up to clientNext + 1000 (td_maxend), and the server's largest
    /// window (td_maxwin) is 1000.
    private static func smallWindowLab(clientISN: UInt32) -> Lab {
        let lab = Lab(family: .ipv4, clientISN: clientISN)
        lab.handshake(synAckWindow: 1000)
        #expect(lab.connection?.original.maxEnd == lab.clientNext &+ 1000)
        #expect(lab.connection?.reply.maxWindow == 1000)
        return lab
    }

    // I. seq <= sender.td_maxend: a segment that starts exactly at the bound passes and moves
    // td_end (the segment only has to begin in the window).
    @Test(arguments: clientISNs)
    func conditionIExactlyAtTheBound(clientISN: UInt32) throws {
        let lab = Self.smallWindowLab(clientISN: clientISN)
        let bound = lab.clientNext &+ 1000
        #expect(lab.send(.client, [.ack, .psh], seq: bound, ack: lab.serverNext, payload: 1) == .accept)
        #expect(lab.connection?.original.end == bound &+ 1)
    }

    // I, one past the bound: the kernel lets an overshoot of at most the receiver's largest
    // window through as IGNORE (passes; td_end moves so the ACK of it is not "unsent").
    // 998 bytes one past overshoot by 1000 (end - maxend + 1): IGNORE; 999 bytes: INVALID.
    @Test(arguments: clientISNs)
    func conditionIOnePastTheBound(clientISN: UInt32) throws {
        let ignored = Self.smallWindowLab(clientISN: clientISN)
        let bound = ignored.clientNext &+ 1000
        ignored.advance(seconds: 10)
        let before = try #require(ignored.connection)
        #expect(ignored.send(.client, [.ack, .psh], seq: bound &+ 1, ack: ignored.serverNext, payload: 998) == .accept)
        let after = try #require(ignored.connection)
        #expect(after.original.end == bound &+ 999)
        #expect(after.expiresAt == before.expiresAt)        // IGNORE: no timer refresh

        let dropped = Self.smallWindowLab(clientISN: clientISN)
        let kept = try #require(dropped.connection)
        #expect(dropped.send(.client, [.ack, .psh], seq: bound &+ 1, ack: dropped.serverNext, payload: 999)
                == .drop(.seqAboveWindow))
        #expect(dropped.connection == kept)
    }

    /// The client has sent 2000 bytes in two segments, each acknowledged by the server with a
    /// window of 1000: td_end = clientNext, the server's td_maxwin = 1000.
    private static func twoSegmentsSentLab(clientISN: UInt32) -> Lab {
        let lab = Lab(family: .ipv4, clientISN: clientISN)
        lab.window = 1000
        lab.handshake()
        for _ in 0..<2 {
            #expect(lab.data(.client, 1000) == .accept)
            #expect(lab.ackAll(.server) == .accept)
        }
        return lab
    }

    // II. seq + len >= sender.td_end - receiver.td_maxwin: a retransmission ending exactly at
    // the lower bound is in window (accepted: the timer is refreshed); one ending a byte below
    // is an old retransmission: IGNOREd, passes and changes nothing.
    @Test(arguments: clientISNs)
    func conditionIILowerBoundForData(clientISN: UInt32) throws {
        let lab = Self.twoSegmentsSentLab(clientISN: clientISN)
        let first = clientISN &+ 1
        lab.advance(seconds: 10)
        let before = try #require(lab.connection)
        #expect(lab.send(.client, [.ack, .psh], seq: first, ack: lab.serverNext, payload: 999) == .accept)
        #expect(lab.connection?.withoutAccounting == before.withoutAccounting)
        #expect(lab.send(.client, [.ack, .psh], seq: first, ack: lab.serverNext, payload: 1000) == .accept)
        #expect(lab.connection?.expiresAt != before.expiresAt)
        #expect(lab.secondsLeft == 432_000)
        lab.expectCounters(seen: 9, accepted: 9, created: 1, destroyed: 0, halfOpen: 0)
    }

    // The server's next sequence number lies before, on, or just past 2^32.
    static let serverISNs: [UInt32] = [5000, 0xFFFF_FF9B, 0xFFFF_FFC0]

    // III. sack <= receiver.td_end: acknowledging exactly what the server sent passes; one more
    // is `ack-above-sent` and changes nothing. 0xFFFF_FF9B + 1 + 100 is exactly 2^32.
    @Test(arguments: serverISNs)
    func conditionIIIUpperBoundForAcks(serverISN: UInt32) throws {
        let lab = Lab(family: .ipv4, serverISN: serverISN)
        lab.handshake()
        #expect(lab.data(.server, 100) == .accept)
        let before = try #require(lab.connection)
        #expect(lab.send(.client, .ack, seq: lab.clientNext, ack: lab.serverNext &+ 1) == .drop(.ackAboveSent))
        #expect(lab.connection == before)
        #expect(lab.send(.client, .ack, seq: lab.clientNext, ack: lab.serverNext) == .accept)
        #expect(lab.connection?.reply.flags.contains(.dataUnacknowledged) == false)
    }

    // IV. sack >= receiver.td_end - max(sender.td_maxwin, 66000) (MAXACKWINDOW): an ACK exactly
    // that far back is in window; one more byte back is an overly delayed ACK, IGNOREd. Nothing
    // is dropped: the kernel passes it.
    @Test(arguments: [UInt32(5000), 100, 0xFFFF_FFC0])
    func conditionIVLowerBoundForAcks(serverISN: UInt32) throws {
        let lab = Lab(family: .ipv4, serverISN: serverISN)
        lab.handshake()
        #expect(lab.connection?.original.maxWindow == 64240)        // below 66000
        lab.advance(seconds: 10)
        let before = try #require(lab.connection)
        #expect(lab.send(.client, .ack, seq: lab.clientNext, ack: lab.serverNext &- 66001) == .accept)
        #expect(lab.connection?.withoutAccounting == before.withoutAccounting)
        #expect(lab.send(.client, .ack, seq: lab.clientNext, ack: lab.serverNext &- 66000) == .accept)
        #expect(lab.secondsLeft == 432_000)
        #expect(lab.tracker.counters.drops.allSatisfy { $0 == 0 })
    }

    // IV with a sender whose largest window exceeds 66000 (scale 10: 100 << 10 = 102400): the
    // bound is that window.
    @Test func conditionIVUsesTheSendersLargestWindow() throws {
        let lab = Lab(family: .ipv4)
        lab.handshake(clientOptions: [.windowScale(10)], serverOptions: [.windowScale(10)], ackWindow: 100)
        #expect(lab.connection?.original.maxWindow == 102_400)
        lab.advance(seconds: 10)
        let before = try #require(lab.connection)
        #expect(lab.send(.client, .ack, seq: lab.clientNext, ack: lab.serverNext &- 102_401, window: 100) == .accept)
        #expect(lab.connection?.withoutAccounting == before.withoutAccounting)
        #expect(lab.send(.client, .ack, seq: lab.clientNext, ack: lab.serverNext &- 102_400, window: 100) == .accept)
        #expect(lab.secondsLeft == 432_000)
    }

    // RFC 7323 2.2: the window field of a SYN or SYN-ACK is never scaled, even when both
    // carry the option: td_maxwin and the peer's td_maxend come from the raw values.
    @Test func synWindowsAreNeverScaled() throws {
        let lab = Lab(family: .ipv4)
        let c = lab.clientISN, s = lab.serverISN
        lab.send(.client, .syn, seq: c, ack: 0, window: 1000, options: [.windowScale(7)])
        lab.send(.server, [.syn, .ack], seq: s, ack: c &+ 1, window: 2000, options: [.windowScale(7)])
        let connection = try #require(lab.connection)
        #expect(connection.original.scale == 7 && connection.reply.scale == 7)
        #expect(connection.original.maxWindow == 1000)
        #expect(connection.reply.maxWindow == 2000)
        #expect(connection.original.maxEnd == c &+ 1 &+ 2000)
    }

    // RFC 2018 / tcp_sack: SACK blocks count as ACKs only when the side whose data they
    // acknowledge sent SACK-permitted. Permitted: a right edge exactly at td_end passes, one
    // past is `ack-above-sent`. Not permitted: the blocks are not looked at.
    @Test(arguments: [true, false])
    func sackRightEdges(permitted: Bool) {
        let lab = Lab(family: .ipv4)
        lab.handshake(clientOptions: permitted ? [.sackPermitted] : [], serverOptions: [.sackPermitted])
        #expect(lab.data(.client, 3000) == .accept)
        let end = lab.clientNext
        let sack = { (right: UInt32) -> [TCPOptionSpec] in [.noOperation, .noOperation, .sack([(end &- 1000, right)])] }
        #expect(lab.send(.server, .ack, seq: lab.serverNext, ack: end &- 2000, options: sack(end)) == .accept)
        #expect(lab.send(.server, .ack, seq: lab.serverNext, ack: end &- 2000, options: sack(end &+ 1))
                == (permitted ? .drop(.ackAboveSent) : .accept))
        #expect(lab.send(.server, .ack, seq: lab.serverNext, ack: end &- 2000, options: sack(end &+ 50_000))
                == (permitted ? .drop(.ackAboveSent) : .accept))
    }

    // The kernel's retransmission count (tcp_in_window "Check retransmissions"): identical ACK
    // segments from one side (seq, ack, end and raw window all equal) count up; anything else,
    // or the other side, starts over.
    @Test func retransmissionCounting() {
        let lab = Lab(family: .ipv4)
        lab.handshake()
        #expect(lab.data(.client, 100) == .accept)
        #expect(lab.connection?.retransmissions == 0)
        for count in 1...4 {
            #expect(lab.send(.client, [.ack, .psh], seq: lab.clientNext &- 100, ack: lab.serverNext, payload: 100) == .accept)
            #expect(lab.connection?.retransmissions == UInt8(count))
        }
        // Another window: a different segment.
        #expect(lab.send(.client, [.ack, .psh], seq: lab.clientNext &- 100, ack: lab.serverNext, payload: 100,
                         window: 1000) == .accept)
        #expect(lab.connection?.retransmissions == 0)
        #expect(lab.send(.client, [.ack, .psh], seq: lab.clientNext &- 100, ack: lab.serverNext, payload: 100,
                         window: 1000) == .accept)
        #expect(lab.connection?.retransmissions == 1)
        // The other side speaks.
        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.connection?.retransmissions == 0)
    }
}
