import SeqwallCore
import SeqwallTestSupport
import Testing

@Suite("State machine table, states and reasons")
struct StateTableTests {
    /// The kernel's tcp_conntracks[2][6][10] (nf_conntrack_proto_tcp.c), transcribed cell by
    /// cell: rows syn, synack, fin, ack, rst, none; columns sNO sSS sSR sES sFW sCW sLA sTW sCL
    /// sS2. "IV" is sIV (invalid), "IG" is sIG (ignore).
    static let kernel: [[[String]]] = [
        [   // ORIGINAL
            ["SS", "SS", "IG", "IG", "IG", "IG", "IG", "SS", "SS", "S2"],
            ["IV", "IV", "SR", "IV", "IV", "IV", "IV", "IV", "IV", "SR"],
            ["IV", "IV", "FW", "FW", "LA", "LA", "LA", "TW", "CL", "IV"],
            ["ES", "IV", "ES", "ES", "CW", "CW", "TW", "TW", "CL", "IV"],
            ["IV", "CL", "CL", "CL", "CL", "CL", "CL", "CL", "CL", "CL"],
            ["IV", "IV", "IV", "IV", "IV", "IV", "IV", "IV", "IV", "IV"],
        ],
        [   // REPLY
            ["IV", "S2", "IV", "IV", "IV", "IV", "IV", "SS", "IV", "S2"],
            ["IV", "SR", "IG", "IG", "IG", "IG", "IG", "IG", "IG", "SR"],
            ["IV", "IV", "FW", "FW", "LA", "LA", "LA", "TW", "CL", "IV"],
            ["IV", "IG", "SR", "ES", "CW", "CW", "TW", "TW", "CL", "IG"],
            ["IV", "CL", "CL", "CL", "CL", "CL", "CL", "CL", "CL", "CL"],
            ["IV", "IV", "IV", "IV", "IV", "IV", "IV", "IV", "IV", "IV"],
        ],
    ]

    static func cell(_ code: String) -> TCPTransition {
        switch code {
        case "IV": .invalid
        case "IG": .ignore
        case "NO": .to(.none)
        case "SS": .to(.synSent)
        case "SR": .to(.synRecv)
        case "ES": .to(.established)
        case "FW": .to(.finWait)
        case "CW": .to(.closeWait)
        case "LA": .to(.lastAck)
        case "TW": .to(.timeWait)
        case "CL": .to(.close)
        case "S2": .to(.synSent2)
        default: fatalError("bad cell \(code)")
        }
    }

    // Kernel tcp_conntracks, every cell, both directions. Columns follow enum tcp_conntrack.
    @Test func transitionTableMatchesTheKernel() {
        let indexes: [TCPFlagIndex] = [.syn, .synAck, .fin, .ack, .rst, .none]
        let states: [TCPState] = [.none, .synSent, .synRecv, .established, .finWait, .closeWait, .lastAck,
                                  .timeWait, .close, .synSent2]
        for (d, direction) in [FlowDirection.original, .reply].enumerated() {
            for (row, index) in indexes.enumerated() {
                for (column, state) in states.enumerated() {
                    #expect(TCPStateMachine.transition(direction, index, state) == Self.cell(Self.kernel[d][row][column]),
                            "\(direction) \(index) in \(state)")
                }
            }
        }
    }

    // include/uapi/linux/netfilter/nf_conntrack_tcp.h: enum tcp_conntrack numbering and the
    // names conntrack -L prints.
    @Test func stateNamesAndNumbers() {
        let expected: [(TCPState, UInt8, String)] = [
            (.none, 0, "NONE"), (.synSent, 1, "SYN_SENT"), (.synRecv, 2, "SYN_RECV"), (.established, 3, "ESTABLISHED"),
            (.finWait, 4, "FIN_WAIT"), (.closeWait, 5, "CLOSE_WAIT"), (.lastAck, 6, "LAST_ACK"),
            (.timeWait, 7, "TIME_WAIT"), (.close, 8, "CLOSE"), (.synSent2, 9, "SYN_SENT2"),
        ]
        #expect(TCPState.allCases.count == expected.count)
        for (state, raw, name) in expected {
            #expect(state.rawValue == raw)
            #expect(state.name == name)
            #expect(state.description == name)
            #expect(TCPState(name: name) == state)
            #expect(TCPState(name: String(name.lowercased().map { $0 == "_" ? "-" : $0 })) == state)
        }
        #expect(TCPState(name: "syn-sent") == .synSent)
        #expect(TCPState(name: "Time_Wait") == .timeWait)
        #expect(TCPState(name: "established ") == nil)
        #expect(TCPState(name: "bogus") == nil)
        #expect(TCPState(name: "") == nil)
    }

    // What half-open limits count: connections that have not completed the handshake.
    @Test func halfOpenStates() {
        #expect(TCPState.allCases.filter(\.isHalfOpen) == [.synSent, .synRecv, .synSent2])
    }

    // docs/design.md, Verdicts and drop reasons: stable kebab-case names, never renamed; the
    // required ones all exist, and raw values (counter indexes) stay put.
    @Test func dropReasonNamesAreStable() {
        let expected = ["truncated", "bad-header", "bad-options", "bad-flags", "fragment", "no-connection", "rule",
                        "syn-rate", "half-open-limit", "table-full", "seq-above-window", "ack-above-sent",
                        "rst-out-of-window", "bad-transition", "land", "unsupported-protocol",
                        "time-wait-rst"]
        let names = DropReason.allCases.map(\.name)
        // Appending is allowed; what is there keeps its place and name.
        #expect(Array(names.prefix(expected.count)) == expected)
        for (index, reason) in DropReason.allCases.enumerated() {
            #expect(Int(reason.rawValue) == index)
            #expect(DropReason(name: reason.name) == reason)
            #expect(reason.description == reason.name)
        }
        #expect(Set(names).count == names.count)
        #expect(DropReason(name: "no_connection") == nil)
        #expect(TrackerCounters().drops.count == DropReason.allCases.count)
    }

    // RFC 9293 3.4: SYN and FIN each occupy one sequence number; the end wraps modulo 2^32.
    @Test func segmentEnd() {
        func end(_ flags: TCPFlags, _ seq: UInt32, _ length: Int) -> UInt32 {
            TCPSegment(source: ip("1.1.1.1"), destination: ip("2.2.2.2"), sourcePort: 1, destinationPort: 2,
                       sequence: seq, acknowledgment: 0, flags: flags, window: 0, payloadLength: length).end
        }
        #expect(end(.ack, 100, 0) == 100)
        #expect(end(.ack, 100, 10) == 110)
        #expect(end(.syn, 100, 0) == 101)
        #expect(end([.fin, .ack], 100, 5) == 106)
        #expect(end([.syn, .fin], 100, 0) == 102)
        #expect(end(.ack, 0xFFFF_FFFF, 2) == 1)
    }

    // The kernel's before()/after(): (s32)(a - b) < 0, so half the sequence space is "before".
    @Test func sequenceComparisons() {
        #expect(SequenceNumber.before(1, 2))
        #expect(!SequenceNumber.before(2, 2))
        #expect(SequenceNumber.after(3, 2))
        #expect(!SequenceNumber.after(2, 2))
        #expect(SequenceNumber.before(0xFFFF_FFF0, 0x10))
        #expect(SequenceNumber.after(0x10, 0xFFFF_FFF0))
        #expect(SequenceNumber.before(0, 0x7FFF_FFFF))
        #expect(SequenceNumber.after(0, 0x8000_0001))
    }

    // The counters of several workers add up field by field.
    @Test func countersAdd() {
        var a = TrackerCounters(), b = TrackerCounters()
        a.seen = 3; a.accepted = 2; a.dropped = 1; a.drops[Int(DropReason.rule.rawValue)] = 1; a.created = 1
        b.seen = 5; b.accepted = 1; b.dropped = 4; b.drops[Int(DropReason.rule.rawValue)] = 2
        b.drops[Int(DropReason.land.rawValue)] = 2; b.destroyed = 7
        a.add(b)
        #expect(a.seen == 8 && a.accepted == 3 && a.dropped == 5 && a.created == 1 && a.destroyed == 7)
        #expect(a[.rule] == 3 && a[.land] == 2 && a[.truncated] == 0)
    }
}
