import SeqwallTestSupport
@testable import SeqwallCore
import Testing

/// The answers to rejected packets (RejectAnswer), byte for byte against packets built and
/// checksummed independently (scapy 2.5: the answer the kernel's REJECT would send, with its
/// TTL 64, DF and id 0 for an RST, TOS precedence 6 for an ICMP error).
@Suite("Reject answers")
struct RejectAnswerTests {
    static func bytes(_ hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            out.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return out
    }

    static func segment(_ hex: String) throws -> TCPSegment {
        guard case .tcp(let segment) = PacketParser.parse(bytes(hex)) else {
            Issue.record("not a TCP segment: \(hex)")
            throw CancellationError()
        }
        return segment
    }

    static func reset(_ segment: TCPSegment) -> [UInt8] {
        withUnsafeTemporaryAllocation(byteCount: RejectAnswer.capacity, alignment: 8) { buffer in
            let length = RejectAnswer.reset(answering: segment, into: buffer.baseAddress!)
            return [UInt8](UnsafeRawBufferPointer(start: buffer.baseAddress, count: length))
        }
    }

    static func unreachable(_ packet: [UInt8], wireLength: Int? = nil, source: IPAddress?) -> [UInt8] {
        withUnsafeTemporaryAllocation(byteCount: RejectAnswer.capacity, alignment: 8) { buffer in
            packet.withUnsafeBytes { quoted in
                let length = RejectAnswer.portUnreachable(quoting: quoted, wireLength: wireLength ?? packet.count,
                                                          source: source, into: buffer.baseAddress!)
                return [UInt8](UnsafeRawBufferPointer(start: buffer.baseAddress, count: length))
            }
        }
    }

    /// A SYN (no ACK): <SEQ=0><ACK=SEG.SEQ+1><CTL=RST,ACK>, from the SYN's destination.
    @Test func resetForSynIPv4() throws {
        let syn = try Self.segment("450000280007000040062644c633640ac63364149c401f92000003e8000000005002faf0a0b10000")
        #expect(Self.reset(syn) == Self.bytes(
            "45000028000040004006e64ac6336414c633640a1f929c4000000000000003e9501400009b8f0000"))
    }

    /// A segment with ACK (picked up mid-stream, 10 bytes of data): <SEQ=SEG.ACK><CTL=RST>.
    @Test func resetForAcknowledgingSegmentIPv4() throws {
        let ack = try Self.segment("45000032000100004006147dc633640acb00710a9c4200160000138800001b58501820005937000030313233343536373839")
        #expect(Self.reset(ack) == Self.bytes(
            "45000028000040004006d487cb00710ac633640a00169c4200001b58000000005004000091e70000"))
    }

    /// IPv6, a SYN with 5 bytes of data at sequence 2^32-1: the ACK counts SYN and data and
    /// wraps to 5; the checksum covers the IPv6 pseudo-header.
    @Test func resetForSynWithDataIPv6() throws {
        let syn = try Self.segment("600000000019064020010db800010000000000000000001020010db80001000000000000000000209c411f92ffffffff00000000500220004e9f00006162636465")
        #expect(Self.reset(syn) == Self.bytes(
            "600000000014064020010db800010000000000000000002020010db80001000000000000000000101f929c4100000000000000055014000098540000"))
    }

    /// A FIN counts one in SEG.LEN like a SYN; nothing answers an RST, nor a segment to or
    /// from an address that is not unicast.
    @Test func resetSequenceCasesAndRefusals() throws {
        var segment = try Self.segment("450000280007000040062644c633640ac63364149c401f92000003e8000000005002faf0a0b10000")
        segment.flags = [.fin]
        segment.payloadLength = 3
        let answer = Self.reset(segment)
        #expect(answer.count == 40 && answer[33] == TCPFlags([.rst, .ack]).rawValue)
        #expect(Array(answer[28..<32]) == [0, 0, 0x03, 0xEC])   // 1000 + 3 + FIN
        segment.flags = [.rst]
        #expect(Self.reset(segment).isEmpty)
        segment.flags = [.rst, .ack]
        #expect(Self.reset(segment).isEmpty)
        segment.flags = [.syn]
        segment.destination = IPAddress("224.0.0.5")!
        #expect(Self.reset(segment).isEmpty)
        segment.destination = IPAddress("255.255.255.255")!
        #expect(Self.reset(segment).isEmpty)
        segment.destination = IPAddress("198.51.100.20")!
        segment.source = IPAddress("0.0.0.0")!
        #expect(Self.reset(segment).isEmpty)
        var six = try Self.segment("600000000019064020010db800010000000000000000001020010db80001000000000000000000209c411f92ffffffff00000000500220004e9f00006162636465")
        six.destination = IPAddress("ff02::1")!
        #expect(Self.reset(six).isEmpty)
    }

    static let udp4 = "452800300009000040112607c633640ac6336414138814eb001c144f7171717171717171717171717171717171717171"

    /// Host mode: from the datagram's destination, TOS precedence internetwork control with the
    /// datagram's TOS bits, the whole datagram quoted.
    @Test func portUnreachableIPv4FromHost() {
        #expect(Self.unreachable(Self.bytes(Self.udp4), source: IPAddress("198.51.100.20")!) == Self.bytes(
            "45c8004c0000000040012564c6336414c633640a030351b000000000" + Self.udp4))
    }

    /// Gateway mode: source 0.0.0.0 for the kernel to fill in; the ICMP checksum does not
    /// depend on it.
    @Test func portUnreachableIPv4FromGateway() {
        #expect(Self.unreachable(Self.bytes(Self.udp4), source: nil) == Self.bytes(
            "45c8004c0000000040014fac00000000c633640a030351b000000000" + Self.udp4))
    }

    @Test func portUnreachableIPv6() {
        let udp6 = "600000000014114020010db800010000000000000000001020010db8000200000000000000000010138900350014b1947a7a7a7a7a7a7a7a7a7a7a7a"
        #expect(Self.unreachable(Self.bytes(udp6), source: IPAddress("2001:db8:1::1")!) == Self.bytes(
            "6000000000443a4020010db800010000000000000000000120010db8000100000000000000000010010431c900000000" + udp6))
    }

    /// The quote is what the queue copied, at most 548 bytes for IPv4 (576 in all) and 1,232
    /// for IPv6 (1,280 in all), and the checksum still verifies (sums to 0xFFFF).
    @Test(arguments: [(4, 1000, 1000, 548), (4, 256, 1000, 256), (4, 500, 500, 500),
                      (6, 1500, 1500, 1232), (6, 256, 4000, 256), (6, 1300, 1300, 1232)])
    func quoteBounds(family: Int, copied: Int, wire: Int, quoted: Int) {
        var packet = [UInt8](repeating: 0x5A, count: copied)
        if family == 4 {
            packet.replaceSubrange(0..<20, with: Self.bytes("45000000000100004011000" + "0c633640ac6336414"))
        } else {
            packet.replaceSubrange(0..<40, with: Self.bytes("600000000000114020010db800010000000000000000001020010db8000200000000000000000010"))
        }
        let source = family == 4 ? IPAddress("198.51.100.20")! : IPAddress("2001:db8:2::10")!
        let answer = Self.unreachable(packet, wireLength: wire, source: source)
        let header = family == 4 ? 20 : 40
        #expect(answer.count == header + 8 + quoted)
        #expect(Array(answer[(header + 8)...]) == Array(packet[0..<quoted]))
        let sum = answer.withUnsafeBytes { bytes -> UInt32 in
            var sum = RejectAnswer.onesComplementSum(bytes.baseAddress! + header, count: answer.count - header)
            if family == 6 {
                sum &+= RejectAnswer.pseudoHeaderSum(source: source, destination: IPAddress("2001:db8:1::10")!,
                                                     protocolNumber: 58, length: answer.count - header)
            }
            return sum
        }
        #expect(RejectAnswer.finish(sum) == 0)
        if family == 4 {
            #expect(answer.withUnsafeBytes { RejectAnswer.finish(RejectAnswer.onesComplementSum($0.baseAddress!, count: 20)) } == 0)
            #expect(Array(answer[2..<4]) == [UInt8((answer.count >> 8) & 0xFF), UInt8(answer.count & 0xFF)])
        }
    }

    /// Nothing answers a datagram from or to an address that is not unicast, nor a packet too
    /// short to hold an IP header.
    @Test func portUnreachableRefusals() {
        var packet = Self.bytes(Self.udp4)
        packet[16] = 239   // 239.51.100.20: multicast
        #expect(Self.unreachable(packet, source: nil).isEmpty)
        packet = Self.bytes(Self.udp4)
        packet.replaceSubrange(12..<16, with: [0, 0, 0, 0])
        #expect(Self.unreachable(packet, source: nil).isEmpty)
        #expect(Self.unreachable(Array(Self.bytes(Self.udp4)[0..<12]), source: nil).isEmpty)
        #expect(Self.unreachable([], source: nil).isEmpty)
    }

    /// An answer, parsed as it comes back through the queue, is recognised for its lifetime and
    /// no longer; another packet is not.
    @Test func recentAnswersRecogniseTheirOwn() throws {
        let syn = try Self.segment("450000280007000040062644c633640ac63364149c401f92000003e8000000005002faf0a0b10000")
        let rst = Self.reset(syn)
        let ticket = try #require(AnswerTicket(PacketParser.parse(rst)))
        var recent = RecentAnswers()
        #expect(!recent.mayHold(now: 10))
        recent.remember(ticket, now: 10)
        #expect(recent.mayHold(now: 11))
        #expect(recent.contains(try #require(AnswerTicket(PacketParser.parse(rst))), now: 11))
        #expect(!recent.contains(ticket, now: 10 + RecentAnswers.lifetime))
        #expect(!recent.mayHold(now: 10 + RecentAnswers.lifetime))
        var other = rst
        other[31] ^= 1   // another acknowledgment number
        #expect(!recent.contains(try #require(AnswerTicket(PacketParser.parse(other))), now: 11))
        #expect(AnswerTicket(PacketParser.parse(Self.bytes("450000280007000040062644c633640ac63364149c401f92000003e8000000005002faf0a0b10000"))) == nil)
        let unreachable = Self.unreachable(Self.bytes(Self.udp4), source: nil)
        let icmp = try #require(AnswerTicket(PacketParser.parse(unreachable)))
        recent.remember(icmp, now: 20)
        let fromHost = Self.unreachable(Self.bytes(Self.udp4), source: IPAddress("198.51.100.20")!)
        #expect(recent.contains(try #require(AnswerTicket(PacketParser.parse(fromHost))), now: 21))
    }

    /// 100 answers at once, then one per 10 ms.
    @Test func rateLimit() {
        var limit = AnswerRateLimit(perSecond: 100, burst: 100)
        let start: UInt64 = 5_000_000_000
        var admitted = 0
        for _ in 0..<150 where limit.admit(now: start) { admitted += 1 }
        #expect(admitted == 100)
        let early = limit.admit(now: start + 5_000_000)
        let due = limit.admit(now: start + 10_000_000)
        let again = limit.admit(now: start + 10_000_000)
        #expect(!early && due && !again)
        admitted = 0
        for _ in 0..<150 where limit.admit(now: start + 60_000_000_000) { admitted += 1 }
        #expect(admitted == 100)
    }
}
