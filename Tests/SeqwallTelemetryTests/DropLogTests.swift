import SeqwallCore
import SeqwallTestSupport
import Testing

@testable import SeqwallTelemetry

@Suite("Drop log")
struct DropLogTests {
    @Test("a TCP drop: every key, in order")
    func tcpLine() {
        let segment = TCPSegment(source: ip("198.51.100.10"), destination: ip("203.0.113.10"), sourcePort: 40000,
                                 destinationPort: 8080, sequence: 1_000_001, acknowledgment: 2_000_002,
                                 flags: [.ack, .psh], window: 502, payloadLength: 10)
        let record = DropLogRecord(.tcp(segment), reason: .seqAboveWindow, state: .established, queue: 3)
        #expect(record.line == "drop reason=seq-above-window proto=tcp src=198.51.100.10 dst=203.0.113.10 "
            + "sport=40000 dport=8080 flags=PSH,ACK seq=1000001 ack=2000002 win=502 len=10 state=ESTABLISHED queue=3")
    }

    @Test("IPv6, a NULL segment, no connection")
    func ipv6Line() {
        let segment = TCPSegment(source: ip("2001:db8:1::10"), destination: ip("2001:db8:2::10"), sourcePort: 1,
                                 destinationPort: 2, sequence: 0, acknowledgment: 0, flags: [], window: 0)
        let record = DropLogRecord(.tcp(segment), reason: .badFlags, queue: 0)
        #expect(record.line == "drop reason=bad-flags proto=tcp src=2001:db8:1::10 dst=2001:db8:2::10 "
            + "sport=1 dport=2 flags=NONE seq=0 ack=0 win=0 len=0 state=NONE queue=0")
    }

    @Test("a rejected SYN says reject")
    func rejectLine() {
        let segment = TCPSegment(source: ip("198.51.100.10"), destination: ip("203.0.113.10"), sourcePort: 5,
                                 destinationPort: 8082, sequence: 7, acknowledgment: 0, flags: .syn, window: 64240)
        #expect(DropLogRecord(.tcp(segment), reason: .rule, rejected: true, queue: 1).line
            == "reject reason=rule proto=tcp src=198.51.100.10 dst=203.0.113.10 sport=5 dport=8082 flags=SYN "
            + "seq=7 ack=0 win=64240 len=0 state=NONE queue=1")
    }

    @Test("tracked UDP, ICMP echo, ICMP errors and neighbour discovery")
    func datagramLines() {
        let udpKey = FlowKey(source: ip("198.51.100.10"), destination: ip("203.0.113.10"), sourcePort: 5353,
                             destinationPort: 53, protocolNumber: 17)
        #expect(DropLogRecord(.datagram(Datagram(key: udpKey, kind: .udp, wireLength: 60)), reason: .rule, queue: 0).line
            == "drop reason=rule proto=udp src=198.51.100.10 dst=203.0.113.10 sport=5353 dport=53 "
            + "flags=- seq=- ack=- win=- len=- state=NONE queue=0")
        // An echo's key holds its id and type marker, which are not ports.
        let echoKey = FlowKey(source: ip("2001:db8:1::10"), destination: ip("2001:db8:2::10"), sourcePort: 77,
                              destinationPort: 0x8000, protocolNumber: 58)
        #expect(DropLogRecord(.datagram(Datagram(key: echoKey, kind: .echoReply, wireLength: 64)),
                              reason: .noConnection, queue: 1).line
            == "drop reason=no-connection proto=icmpv6 src=2001:db8:1::10 dst=2001:db8:2::10 sport=- dport=- "
            + "flags=- seq=- ack=- win=- len=- state=NONE queue=1")
        let error = ICMPError(source: ip("198.51.100.1"), destination: ip("203.0.113.10"), type: 3, code: 4,
                              quoted: udpKey.reversed)
        #expect(DropLogRecord(.icmpError(error), reason: .icmpUnrelated, queue: 0).line
            == "drop reason=icmp-unrelated proto=icmp src=198.51.100.1 dst=203.0.113.10 sport=- dport=- "
            + "flags=- seq=- ack=- win=- len=- state=NONE queue=0")
        #expect(DropLogRecord(.neighbourDiscovery(source: ip("fe80::1"), destination: ip("ff02::1")),
                              reason: .rule, queue: 0).line.hasPrefix("drop reason=rule proto=icmpv6 src=fe80::1 dst=ff02::1 "))
    }

    @Test("other protocols and broken packets keep every key, with - for what they lack")
    func partialLines() {
        let udp = DropLogRecord(.other(protocolNumber: 17, source: ip("198.51.100.10"), destination: ip("203.0.113.10")),
                                reason: .unsupportedProtocol, queue: 0)
        #expect(udp.line == "drop reason=unsupported-protocol proto=udp src=198.51.100.10 dst=203.0.113.10 "
            + "sport=- dport=- flags=- seq=- ack=- win=- len=- state=NONE queue=0")
        let gre = DropLogRecord(.other(protocolNumber: 47, source: ip("2001:db8:1::10"), destination: ip("2001:db8:2::10")),
                                reason: .unsupportedProtocol, queue: 0)
        #expect(gre.line.hasPrefix("drop reason=unsupported-protocol proto=47 src=2001:db8:1::10 "))
        // A real truncated packet: an IPv4 header cut after four bytes.
        let parsed = PacketParser.parse([0x45, 0x00, 0x00, 0x28])
        let truncated = DropLogRecord(parsed, reason: .truncated, queue: 2)
        #expect(truncated.line == "drop reason=truncated proto=- src=- dst=- sport=- dport=- flags=- seq=- ack=- "
            + "win=- len=- state=NONE queue=2")
    }

    @Test("a fragment: addresses, protocol, ports of a first fragment, then identification and offset")
    func fragmentLines() {
        let first = IPFragment(source: ip("198.51.100.10"), destination: ip("203.0.113.10"), protocolNumber: 17,
                               identification: 48879, offset: 0, moreFragments: true, sourcePort: 5353, destinationPort: 53)
        #expect(DropLogRecord(first, reason: .fragment, queue: 0).line
            == "drop reason=fragment proto=udp src=198.51.100.10 dst=203.0.113.10 sport=5353 dport=53 flags=- seq=- "
            + "ack=- win=- len=- state=NONE queue=0 ipid=48879 fragoff=0 mf=1")
        let last = IPFragment(source: ip("2001:db8:1::10"), destination: ip("2001:db8:2::10"), protocolNumber: 58,
                              identification: 0xCAFE_F00D, offset: 2_464, moreFragments: false)
        #expect(DropLogRecord(last, reason: .fragment, queue: 2).line
            == "drop reason=fragment proto=icmpv6 src=2001:db8:1::10 dst=2001:db8:2::10 sport=- dport=- flags=- seq=- "
            + "ack=- win=- len=- state=NONE queue=2 ipid=3405705229 fragoff=2464 mf=0")
    }

    @Test("the warning about fragments in the queue names the fix")
    func fragmentWarning() {
        let text = DropLogSummary.fragments(3, queue: 1)
        #expect(text.hasPrefix("3 IP fragments reached queue 1 and were dropped (reason fragment)"))
        #expect(text.contains("seqwall-divert start"))
        #expect(text.contains("docs/design.md, Fragments"))
    }

    @Test("every reason's line names it", arguments: DropReason.allCases)
    func everyReason(reason: DropReason) {
        #expect(DropLogRecord(reason: reason, queue: 0).line.hasPrefix("drop reason=\(reason.name) proto="))
    }

    @Test("sampled: a burst of 20, then 10 a second, the rest left out")
    func sampler() {
        var sampler = DropLogSampler()
        let start: UInt64 = 5_000_000_000
        // 100 drops at one instant: the burst only.
        var admitted = (0..<100).filter { _ in sampler.admit(now: start) }.count
        #expect(admitted == 20)
        // A drop every millisecond for 2 s: 10 a second on top.
        admitted = (1...2000).filter { sampler.admit(now: start + UInt64($0) * 1_000_000) }.count
        #expect(admitted == 20)
        // Quiet for 10 s refills the burst, no more.
        let later = start + 12_000_000_000
        admitted = (0..<100).filter { _ in sampler.admit(now: later) }.count
        #expect(admitted == 20)
    }

    @Test("sampled keeps the long-run rate exact when drops come between token times")
    func samplerRemainders() {
        var sampler = DropLogSampler()
        let start: UInt64 = 1_000_000_000
        _ = (0..<20).map { _ in sampler.admit(now: start) }
        // Drops every 150 ms for 30 s: a token every 100 ms, so at most one per drop, and the
        // 50 ms remainders must not be lost: 200 drops, 10/s for 30 s gives 300 tokens.
        let admitted = (1...200).filter { sampler.admit(now: start + UInt64($0) * 150_000_000) }.count
        #expect(admitted == 200)
        // Drops every 70 ms for 7 s (100 drops): 70 tokens come in that time.
        let next = start + 200 * 150_000_000
        var fresh = DropLogSampler()
        _ = (0..<20).map { _ in fresh.admit(now: next) }
        let admittedFast = (1...100).filter { fresh.admit(now: next + UInt64($0) * 70_000_000) }.count
        #expect(admittedFast == 70)
    }

    @Test("summary lines")
    func summaries() {
        #expect(DropLogSummary.suppressed(123, queue: 0)
            == "123 drop lines suppressed on queue 0 (set drop-log sampled: 10/s, burst 20)")
        #expect(DropLogSummary.lost(5, queue: 2) == "5 drop lines lost on queue 2: the log could not keep up")
        #expect(DropLogSummary.lost(1, queue: 2) == "1 drop line lost on queue 2: the log could not keep up")
    }
}
