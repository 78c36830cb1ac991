import SeqwallTestSupport
@testable import SeqwallCore
import Testing

/// What the queue gets with reassembly on (docs/design.md, Fragments): whole datagrams up to the IP
/// length fields' limit, of which the kernel copies only the copy range (the headers). Lengths
/// are checked against the packet's length as the kernel reports it (NFQA_CAP_LEN), never
/// against the bytes copied.
@Suite("Reassembled datagrams larger than the MTU")
struct ReassembledDatagramTests {
    /// The copy range the daemon asks for (QueueSettings.copyRange).
    static let copyRange = 256

    /// A UDP datagram whose IP length fields say `total` bytes in all (IPv4 total length, or
    /// 40 + IPv6 payload length), built only as far as its headers.
    static func udp(_ family: Family, total: Int) -> [UInt8] {
        var packet = PacketBuilder(source: family.client, destination: family.server)
        packet.protocolNumber = TrackedProtocol.udpNumber
        let udpLength = total - family.ipHeaderLength
        packet.transport = UInt16(5353).bigEndianBytes + UInt16(53).bigEndianBytes
            + UInt16(udpLength).bigEndianBytes + [0, 0] + [UInt8](repeating: 0x5A, count: 400)
        if family == .ipv4 {
            packet.ipv4TotalLength = UInt16(total)
            packet.fragmentField = 0
        } else {
            packet.ipv6PayloadLength = UInt16(total - 40)
        }
        return packet.build()
    }

    /// The general parse and the packet path's, of `bytes` cut to the copy range.
    static func both(_ bytes: [UInt8], wireLength: Int) -> (ParsedPacket, ParsedPacket) {
        let cut = Array(bytes.prefix(copyRange))
        return cut.withUnsafeBytes { raw in
            (PacketParser.parse(raw, wireLength: wireLength), PacketPathParseTests.packetPath(raw, wireLength: wireLength))
        }
    }

    // RFC 791 3.1 (total length up to 65,535), RFC 8200 3 (payload length up to 65,535): the
    // argument is that length field.
    @Test(arguments: Family.allCases, [1_428, 3_028, 8_028, 65_535])
    func largeUDPDatagramParses(family: Family, lengthField: Int) throws {
        let wireLength = family == .ipv6 ? lengthField + 40 : lengthField
        let bytes = ReassembledDatagramTests.udp(family, total: wireLength)
        let (general, fast) = ReassembledDatagramTests.both(bytes, wireLength: wireLength)
        let key = FlowKey(source: family.client, destination: family.server, sourcePort: 5353, destinationPort: 53,
                          protocolNumber: TrackedProtocol.udpNumber)
        #expect(general == .datagram(Datagram(key: key, kind: .udp, wireLength: wireLength)))
        #expect(fast == general)
    }

    // A length field above what the kernel says the packet holds is a cut packet, however
    // much of it was copied; one within it is whole, however little was copied.
    @Test(arguments: Family.allCases)
    func lengthsAreCheckedAgainstTheWireLength(family: Family) {
        let bytes = ReassembledDatagramTests.udp(family, total: 8_028)
        let (short, shortFast) = ReassembledDatagramTests.both(bytes, wireLength: 8_027)
        #expect(short == .invalid(.truncated))
        #expect(shortFast == short)
        let (whole, _) = ReassembledDatagramTests.both(bytes, wireLength: 8_028)
        if case .datagram = whole {} else { Issue.record("an 8,028-byte datagram copied in part did not parse: \(whole)") }
    }

    // RFC 768: the UDP length may not run past the IP packet, however large that is.
    @Test(arguments: Family.allCases)
    func udpLengthPastTheDatagram(family: Family) {
        var bytes = ReassembledDatagramTests.udp(family, total: 8_028)
        let lengthField = family.ipHeaderLength + 4
        bytes.replaceSubrange(lengthField..<(lengthField + 2), with: UInt16(8_028).bigEndianBytes)
        #expect(ReassembledDatagramTests.both(bytes, wireLength: 8_028).0 == .invalid(.badHeader))
    }

    // A reassembled TCP segment (a peer that sent fragments): its payload length comes from the
    // IP length fields, not from the copy.
    @Test(arguments: Family.allCases)
    func largeTCPSegmentPayloadLength(family: Family) throws {
        var packet = PacketBuilder(source: family.client, destination: family.server)
        packet.flags = [.ack, .psh]
        packet.payloadLength = 500
        let total = 65_535
        if family == .ipv4 {
            packet.ipv4TotalLength = UInt16(total)
        } else {
            packet.ipv6PayloadLength = UInt16(total - 40)
        }
        let (general, fast) = ReassembledDatagramTests.both(packet.build(), wireLength: total)
        guard case .tcp(let segment) = general else {
            Issue.record("a 65,535-byte segment did not parse: \(general)")
            return
        }
        #expect(segment.payloadLength == total - family.ipHeaderLength - 20)
        #expect(segment.wireLength == total)
        #expect(fast == general)
    }

    // `ping -s 3000`: a 3,008-byte echo request, whole.
    @Test(arguments: Family.allCases)
    func largeEchoRequest(family: Family) {
        var packet = PacketBuilder(source: family.client, destination: family.server)
        packet.protocolNumber = family == .ipv4 ? TrackedProtocol.icmpNumber : TrackedProtocol.icmp6Number
        packet.transport = [family == .ipv4 ? 8 : 128, 0, 0, 0, 0x12, 0x34, 0, 1] + [UInt8](repeating: 7, count: 300)
        let total = family.ipHeaderLength + 3_008
        if family == .ipv4 {
            packet.ipv4TotalLength = UInt16(total)
            packet.fragmentField = 0
        } else {
            packet.ipv6PayloadLength = 3_008
        }
        let (general, fast) = ReassembledDatagramTests.both(packet.build(), wireLength: total)
        guard case .datagram(let datagram) = general else {
            Issue.record("a 3,008-byte echo request did not parse: \(general)")
            return
        }
        #expect(datagram.kind == .echoRequest)
        #expect(datagram.wireLength == total)
        #expect(fast == general)
    }
}

/// A fragment that reaches the queue (a diversion without reassembly) is dropped; the drop log
/// shows what IPFragment reads of it.
@Suite("IP fragments in the drop log")
struct IPFragmentTests {
    static func udpTransport(count: Int) -> [UInt8] {
        Array((UInt16(5353).bigEndianBytes + UInt16(53).bigEndianBytes + UInt16(3_008).bigEndianBytes + [0, 0]
            + [UInt8](repeating: 1, count: 3_000)).prefix(count))
    }

    static func read(_ bytes: [UInt8], captured: Int = 256) -> IPFragment? {
        Array(bytes.prefix(captured)).withUnsafeBytes { IPFragment($0, wireLength: bytes.count) }
    }

    // RFC 791 3.2: the first fragment (offset 0, MF) carries the transport header.
    @Test func ipv4FirstFragment() throws {
        var packet = PacketBuilder(source: Family.ipv4.client, destination: Family.ipv4.server)
        packet.protocolNumber = TrackedProtocol.udpNumber
        packet.transport = IPFragmentTests.udpTransport(count: 1_480)
        packet.fragmentField = 0x2000
        let bytes = packet.build()
        #expect(parse(bytes) == .invalid(.fragment))
        let fragment = try #require(IPFragmentTests.read(bytes))
        #expect(fragment == IPFragment(source: Family.ipv4.client, destination: Family.ipv4.server, protocolNumber: 17,
                                       identification: 0xBEEF, offset: 0, moreFragments: true, sourcePort: 5353,
                                       destinationPort: 53))
    }

    // A later fragment has no ports; its offset is in 8-octet units on the wire.
    @Test func ipv4LastFragment() throws {
        var packet = PacketBuilder(source: Family.ipv4.client, destination: Family.ipv4.server)
        packet.protocolNumber = TrackedProtocol.udpNumber
        packet.transport = [UInt8](repeating: 1, count: 1_528)
        packet.fragmentField = 185
        let fragment = try #require(IPFragmentTests.read(packet.build()))
        #expect(fragment == IPFragment(source: Family.ipv4.client, destination: Family.ipv4.server, protocolNumber: 17,
                                       identification: 0xBEEF, offset: 1_480, moreFragments: false))
    }

    // RFC 8200 4.5: the fragment header after other extension headers; its next header is the
    // datagram's protocol, its identification 32 bits.
    @Test func ipv6FragmentAfterHopByHop() throws {
        var packet = PacketBuilder(source: Family.ipv6.client, destination: Family.ipv6.server)
        packet.protocolNumber = TrackedProtocol.udpNumber
        packet.transport = IPFragmentTests.udpTransport(count: 1_232)
        packet.extensionHeaders = [.hopByHop(), .fragment(offset: 0, more: true, identification: 0xCAFE_F00D)]
        let first = try #require(IPFragmentTests.read(packet.build()))
        #expect(first == IPFragment(source: Family.ipv6.client, destination: Family.ipv6.server, protocolNumber: 17,
                                    identification: 0xCAFE_F00D, offset: 0, moreFragments: true, sourcePort: 5353,
                                    destinationPort: 53))
        packet.extensionHeaders = [.fragment(offset: 154, more: true, identification: 7)]
        let middle = try #require(IPFragmentTests.read(packet.build()))
        #expect(middle == IPFragment(source: Family.ipv6.client, destination: Family.ipv6.server, protocolNumber: 17,
                                     identification: 7, offset: 1_232, moreFragments: true))
    }

    // RFC 1858 2: a first fragment too short to hold the ports shows none.
    @Test(arguments: Family.allCases)
    func tinyFirstFragmentHasNoPorts(family: Family) throws {
        var packet = PacketBuilder(source: family.client, destination: family.server)
        packet.protocolNumber = TrackedProtocol.tcpNumber
        packet.transport = [0x9C, 0x40]
        if family == .ipv4 {
            packet.fragmentField = 0x2000
        } else {
            packet.extensionHeaders = [.fragment(offset: 0, more: true)]
        }
        let fragment = try #require(IPFragmentTests.read(packet.build()))
        #expect(fragment.protocolNumber == 6)
        #expect(fragment.sourcePort == nil && fragment.destinationPort == nil)
        #expect(fragment.moreFragments)
    }

    // Whole packets, atomic fragments (RFC 6946) and broken headers are no fragments to show.
    @Test(arguments: Family.allCases)
    func notAFragment(family: Family) {
        var packet = PacketBuilder(source: family.client, destination: family.server)
        #expect(IPFragmentTests.read(packet.build()) == nil)
        if family == .ipv6 {
            packet.extensionHeaders = [.fragment(offset: 0, more: false)]
            #expect(IPFragmentTests.read(packet.build()) == nil)
        } else {
            packet.fragmentField = 0x2000
            packet.version = 5
            #expect(IPFragmentTests.read(packet.build()) == nil)
        }
        #expect(IPFragmentTests.read([]) == nil)
    }
}
