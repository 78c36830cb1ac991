import SeqwallCore
import SeqwallTestSupport
import Testing

@Suite("TCP flag combinations")
struct TCPFlagsTests {
    /// The kernel's tcp_valid_flags table (nf_conntrack_proto_tcp.c), written out by hand from
    /// the table, over FIN|SYN|RST|ACK|URG only.
    static let kernelValid: Set<UInt8> = {
        let fin: UInt8 = 0x01, syn: UInt8 = 0x02, rst: UInt8 = 0x04, ack: UInt8 = 0x10, urg: UInt8 = 0x20
        return [syn, syn | urg, syn | ack, rst, rst | ack, fin | ack, fin | ack | urg, ack, ack | urg]
    }()

    // Kernel tcp_error: flags & ~(ECE|CWR|PSH) must be in tcp_valid_flags. All 256 bytes.
    @Test func allFlagBytesMatchTheKernelTable() {
        var valid = 0
        for raw in 0...255 {
            let byte = UInt8(raw)
            let significant = byte & ~(0x08 | 0x40 | 0x80)
            let expected = Self.kernelValid.contains(significant)
            #expect(TCPFlags(rawValue: byte).isValidCombination == expected, "flags 0x\(String(byte, radix: 16))")
            if expected { valid += 1 }
        }
        // 9 combinations times the 8 settings of PSH, ECE and CWR.
        #expect(valid == 72)
    }

    // Kernel tcp_valid_flags: RST|URG and SYN|ACK|URG are not in the table, unlike SYN|URG,
    // FIN|ACK|URG and ACK|URG.
    @Test func urgentCornerCases() {
        #expect(TCPFlags([.syn, .urg]).isValidCombination)
        #expect(TCPFlags([.fin, .ack, .urg]).isValidCombination)
        #expect(TCPFlags([.ack, .urg]).isValidCombination)
        #expect(!TCPFlags([.rst, .urg]).isValidCombination)
        #expect(!TCPFlags([.rst, .ack, .urg]).isValidCombination)
        #expect(!TCPFlags([.syn, .ack, .urg]).isValidCombination)
        #expect(!TCPFlags([.urg]).isValidCombination)
    }

    // Kernel tcp_error: PSH, ECE and CWR are masked off before the lookup.
    @Test func pshEceCwrNeverChangeTheAnswer() {
        for raw in 0...255 {
            let base = UInt8(raw) & ~(0x08 | 0x40 | 0x80)
            for extra: UInt8 in [0x08, 0x40, 0x80, 0xC8] {
                #expect(TCPFlags(rawValue: base | extra).isValidCombination == TCPFlags(rawValue: base).isValidCombination)
            }
        }
    }

    // Kernel get_conntrack_index: RST wins, then SYN (with or without ACK), FIN, ACK.
    @Test func flagIndex() {
        #expect(TCPFlagIndex([.syn]) == .syn)
        #expect(TCPFlagIndex([.syn, .ack]) == .synAck)
        #expect(TCPFlagIndex([.fin, .ack]) == .fin)
        #expect(TCPFlagIndex([.ack, .psh]) == .ack)
        #expect(TCPFlagIndex([.rst, .ack]) == .rst)
        #expect(TCPFlagIndex([.rst, .syn]) == .rst)
        #expect(TCPFlagIndex([]) == .none)
        #expect(TCPFlagIndex([.psh, .urg]) == .none)
    }

    // RFC 9293 3.1 bit order (FIN first), as tcpdump-style text for logs and replay.
    @Test func names() {
        #expect(TCPFlags([]).names == "NONE")
        #expect(TCPFlags([.syn, .ack]).names == "SYN,ACK")
        #expect(TCPFlags(rawValue: 0xFF).names == "FIN,SYN,RST,PSH,ACK,URG,ECE,CWR")
    }

    // docs/design.md, Flags: NULL, Xmas, SYN|FIN, SYN|RST and FIN without ACK are dropped as
    // bad-flags, whether or not a connection exists (kernel tcp_error runs before lookup).
    @Test(arguments: Family.allCases)
    func invalidCombinationsAreDroppedByTheTracker(family: Family) {
        let invalid: [TCPFlags] = [[], [.fin, .psh, .urg], [.syn, .fin], [.syn, .rst], [.fin],
                                   [.fin, .syn, .rst, .psh, .ack, .urg], [.rst, .urg], [.syn, .ack, .urg]]
        let lab = Lab(family: family)
        // With no connection.
        for flags in invalid {
            #expect(lab.send(.client, flags, seq: 1, ack: 0) == .drop(.badFlags), "flags \(flags.names)")
        }
        // And with an established one: nothing about it changes.
        lab.handshake()
        let before = lab.connection
        for flags in invalid {
            #expect(lab.send(.client, flags, seq: lab.clientNext, ack: lab.serverNext) == .drop(.badFlags))
            #expect(lab.send(.server, flags, seq: lab.serverNext, ack: lab.clientNext) == .drop(.badFlags))
        }
        #expect(lab.connection == before)
        #expect(lab.tracker.counters[.badFlags] == UInt64(invalid.count * 3))
        #expect(lab.tracker.counters.dropped == UInt64(invalid.count * 3))
        #expect(lab.tracker.counters.created == 1)
        #expect(lab.tracker.counters.accepted == 3)
        #expect(lab.tracker.counters.seen == UInt64(invalid.count * 3 + 3))
    }
}
