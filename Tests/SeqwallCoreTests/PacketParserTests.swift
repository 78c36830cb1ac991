import SeqwallCore
import SeqwallTestSupport
import Testing

/// The segment a good packet must parse to, or a test failure.
private func segment(_ parsed: ParsedPacket, sourceLocation: Testing.SourceLocation = #_sourceLocation) -> TCPSegment? {
    guard case .tcp(let segment) = parsed else {
        Issue.record("expected a TCP segment, got \(parsed)", sourceLocation: sourceLocation)
        return nil
    }
    return segment
}

private func builder(_ family: Family) -> PacketBuilder {
    PacketBuilder(source: family.client, destination: family.server)
}

@Suite("Packet parser: good segments")
struct PacketParserGoodTests {
    // RFC 791 / RFC 8200 / RFC 9293 3.1: every header field lands where it belongs.
    @Test(arguments: Family.allCases)
    func fixedFields(family: Family) throws {
        var packet = builder(family)
        packet.sourcePort = 40001
        packet.destinationPort = 443
        packet.sequence = 0xDEAD_BEEF
        packet.acknowledgment = 0x0102_0304
        packet.flags = [.ack, .psh]
        packet.window = 12345
        packet.payloadLength = 100
        let bytes = packet.build()
        let parsed = try #require(segment(parse(bytes)))
        #expect(parsed.source == family.client)
        #expect(parsed.destination == family.server)
        #expect(parsed.sourcePort == 40001)
        #expect(parsed.destinationPort == 443)
        #expect(parsed.sequence == 0xDEAD_BEEF)
        #expect(parsed.acknowledgment == 0x0102_0304)
        #expect(parsed.flags == TCPFlags([.ack, .psh]))
        #expect(parsed.window == 12345)
        #expect(parsed.payloadLength == 100)
        #expect(parsed.wireLength == bytes.count)
        #expect(parsed.wireLength == family.ipHeaderLength + 20 + 100)
        #expect(parsed.options == TCPOptions())
        // RFC 9293 3.4: the segment ends at seq + len (no SYN, no FIN).
        #expect(parsed.end == 0xDEAD_BEEF &+ 100)
    }

    // RFC 9293 3.2 (MSS), RFC 7323 2 and 3 (window scale, timestamps), RFC 2018 2 and 3 (SACK).
    @Test(arguments: Family.allCases)
    func synOptions(family: Family) throws {
        var packet = builder(family)
        packet.flags = .syn
        packet.sequence = 7
        packet.options = [.mss(1460), .sackPermitted, .timestamps(value: 0x1111_2222, echo: 0),
                          .noOperation, .windowScale(7)]
        let parsed = try #require(segment(parse(packet.build())))
        #expect(parsed.options.mss == 1460)
        #expect(parsed.options.sackPermitted)
        #expect(parsed.options.hasWindowScale)
        #expect(parsed.options.windowScale == 7)
        #expect(parsed.options.hasTimestamps)
        #expect(parsed.options.timestampValue == 0x1111_2222)
        #expect(parsed.options.timestampEcho == 0)
        #expect(!parsed.options.hasSACK)
        #expect(parsed.payloadLength == 0)
        // RFC 9293 3.4: a SYN takes one sequence number.
        #expect(parsed.end == 8)
    }

    // RFC 7323 2.3: the shift is reported as sent; the tracker clamps it to 14.
    @Test func windowScaleAsSent() throws {
        var packet = builder(.ipv4)
        packet.options = [.windowScale(15)]
        let parsed = try #require(segment(parse(packet.build())))
        #expect(parsed.options.hasWindowScale)
        #expect(parsed.options.windowScale == 15)
    }

    // RFC 2018 3 and the kernel's tcp_sack: the highest right edge of all blocks, compared
    // modulo 2^32 (after()), not numerically.
    @Test(arguments: Family.allCases)
    func sackRightEdge(family: Family) throws {
        var packet = builder(family)
        packet.flags = .ack
        packet.acknowledgment = 0xFFFF_FF00
        packet.options = [.noOperation, .noOperation,
                          .sack([(0xFFFF_FF10, 0xFFFF_FF20), (0x0000_0010, 0x0000_0040), (0xFFFF_FF40, 0xFFFF_FFF0)])]
        let parsed = try #require(segment(parse(packet.build())))
        #expect(parsed.options.hasSACK)
        // 0x40 is after 0xFFFFFFF0 once the sequence space wraps.
        #expect(parsed.options.sackRightEdge == 0x0000_0040)

        packet.options = [.sack([(100, 200)])]
        let single = try #require(segment(parse(packet.build())))
        #expect(single.options.hasSACK)
        #expect(single.options.sackRightEdge == 200)
    }

    // Linux tcp_parse_options: a known option with the wrong length is skipped, not an error;
    // a SACK option whose length is not 2 + 8n is skipped.
    @Test func wrongLengthKnownOptionsAreSkipped() throws {
        var packet = builder(.ipv4)
        packet.options = [.raw([2, 3, 5]), .raw([3, 4, 7, 0]), .raw([5, 6, 0, 0, 0, 1]), .raw([4, 3, 0]), .mss(536)]
        let parsed = try #require(segment(parse(packet.build())))
        #expect(parsed.options.mss == 536)
        #expect(!parsed.options.hasWindowScale)
        #expect(!parsed.options.hasSACK)
        #expect(!parsed.options.sackPermitted)
    }

    // RFC 9293 3.2: End of Option List ends the list; what follows is padding, not options.
    @Test func endOfListStopsParsing() throws {
        var packet = builder(.ipv4)
        packet.options = [.mss(1400), .endOfList, .raw([0xFF, 0x00, 0xAB])]
        let parsed = try #require(segment(parse(packet.build())))
        #expect(parsed.options.mss == 1400)
    }

    // RFC 9293 3.2: unknown option kinds with a sane length are skipped.
    @Test func unknownOptionsAreSkipped() throws {
        var packet = builder(.ipv6)
        packet.options = [.raw([30, 6, 1, 2, 3, 4]), .windowScale(2)]
        let parsed = try #require(segment(parse(packet.build())))
        #expect(parsed.options.hasWindowScale)
        #expect(parsed.options.windowScale == 2)
    }

    // RFC 791 3.1: the IPv4 header length counts options; TCP starts after them.
    @Test func ipv4OptionsAreSkipped() throws {
        var packet = builder(.ipv4)
        packet.ipv4Options = [1, 1, 1, 1, 7, 7, 4, 0, 0, 0, 0, 0]   // NOPs and a record-route
        packet.sequence = 99
        packet.payloadLength = 10
        let bytes = packet.build()
        #expect(bytes[0] & 0x0F == 8)
        let parsed = try #require(segment(parse(bytes)))
        #expect(parsed.sequence == 99)
        #expect(parsed.payloadLength == 10)
    }

    // RFC 791 / RFC 8200: the payload length comes from the IP length fields, so link-layer
    // padding after the packet is not payload.
    @Test(arguments: Family.allCases)
    func trailingPaddingIsNotPayload(family: Family) throws {
        var packet = builder(family)
        packet.flags = .ack
        packet.payloadLength = 0
        packet.trailingBytes = 6
        let parsed = try #require(segment(parse(packet.build())))
        #expect(parsed.payloadLength == 0)
    }

    // NFQUEUE copy range: the kernel copied only the headers; lengths come from the IP header,
    // and the wire length is the real packet's.
    @Test(arguments: Family.allCases)
    func captureCutByCopyRange(family: Family) throws {
        var packet = builder(family)
        packet.flags = [.ack, .psh]
        packet.payloadLength = 1400
        packet.options = [.timestamps(value: 1, echo: 2)]
        let bytes = packet.build()
        let headers = family.ipHeaderLength + 32
        let parsed = try #require(segment(parse(bytes, captured: headers)))
        #expect(parsed.payloadLength == 1400)
        #expect(parsed.wireLength == bytes.count)
        #expect(parsed.options.hasTimestamps)
        #expect(parsed.options.timestampEcho == 2)
    }

    // A wire length smaller than the capture is not believed (the capture is at least that long).
    @Test func wireLengthNeverBelowCapture() throws {
        var packet = builder(.ipv4)
        packet.flags = .ack
        packet.payloadLength = 10
        let bytes = packet.build()
        let parsed = try #require(segment(parse(bytes, wireLength: 20)))
        #expect(parsed.wireLength == bytes.count)
        #expect(parsed.payloadLength == 10)
    }

    // RFC 791 3.1: DF alone is not fragmentation.
    @Test func dontFragmentIsWhole() throws {
        var packet = builder(.ipv4)
        packet.fragmentField = 0x4000
        #expect(segment(parse(packet.build())) != nil)
        packet.fragmentField = 0
        #expect(segment(parse(packet.build())) != nil)
    }

    // RFC 8200 4: extension headers are walked until TCP.
    @Test func ipv6ExtensionHeaderWalk() throws {
        var packet = builder(.ipv6)
        packet.flags = [.ack]
        packet.sequence = 4242
        packet.payloadLength = 33
        packet.extensionHeaders = [.hopByHop(units: 1), .destinationOptions(), .routing(units: 2),
                                   .fragment(offset: 0, more: false), .destinationOptions(units: 3)]
        let bytes = packet.build()
        let parsed = try #require(segment(parse(bytes)))
        #expect(parsed.sequence == 4242)
        #expect(parsed.payloadLength == 33)
        #expect(parsed.wireLength == bytes.count)
    }

    // RFC 6946: an atomic fragment (offset 0, M clear) is a whole packet.
    @Test func ipv6AtomicFragmentParses() throws {
        var packet = builder(.ipv6)
        packet.payloadLength = 5
        packet.extensionHeaders = [.fragment(offset: 0, more: false)]
        let parsed = try #require(segment(parse(packet.build())))
        #expect(parsed.payloadLength == 5)
    }

    // RFC 4302 2.2: the Authentication Header counts its length in 4-octet units minus 2.
    @Test func ipv6AuthenticationHeader() throws {
        var packet = builder(.ipv6)
        packet.sequence = 77
        // 24 bytes: next, len = 24/4 - 2 = 4, reserved, SPI, sequence, 8 bytes of ICV.
        var ah = [UInt8](repeating: 0, count: 24)
        ah[1] = 4
        packet.extensionHeaders = [IPv6ExtensionHeader(type: 51, bytes: ah)]
        let parsed = try #require(segment(parse(packet.build())))
        #expect(parsed.sequence == 77)
    }

    // RFC 8200 4.1 and the parser's limit: 16 extension headers are walked, TCP after them parses.
    @Test func sixteenExtensionHeadersParse() throws {
        var packet = builder(.ipv6)
        packet.extensionHeaders = Array(repeating: .destinationOptions(), count: 16)
        #expect(segment(parse(packet.build())) != nil)
    }
}

@Suite("Packet parser: malformed packets")
struct PacketParserMalformedTests {
    private func good(_ family: Family = .ipv4) -> PacketBuilder {
        var packet = PacketBuilder(source: family.client, destination: family.server)
        packet.flags = .ack
        packet.payloadLength = 20
        return packet
    }

    // Nothing to read.
    @Test func empty() {
        #expect(parse([]) == .invalid(.truncated))
    }

    // RFC 791 / RFC 8200: version 4 or 6 only.
    @Test(arguments: [0, 1, 5, 7, 15] as [UInt8])
    func badVersion(version: UInt8) {
        var packet = good()
        packet.version = version
        #expect(parse(packet.build()) == .invalid(.badHeader))
    }

    // RFC 791 3.1: an IPv4 header is at least 20 bytes.
    @Test(arguments: [1, 19])
    func truncatedIPv4(length: Int) {
        let bytes = good().build()
        #expect(parse(Array(bytes.prefix(length))) == .invalid(.truncated))
    }

    // RFC 8200 3: an IPv6 header is 40 bytes.
    @Test func truncatedIPv6() {
        let bytes = good(.ipv6).build()
        #expect(parse(Array(bytes.prefix(39))) == .invalid(.truncated))
    }

    // RFC 791 3.1: IHL is at least 5.
    @Test(arguments: [0, 1, 4] as [UInt8])
    func ihlBelowFive(ihl: UInt8) {
        var packet = good()
        packet.ihl = ihl
        #expect(parse(packet.build()) == .invalid(.badHeader))
    }

    // The IPv4 header runs past what was captured.
    @Test func ihlPastCapture() {
        var packet = good()
        packet.ihl = 15
        let bytes = packet.build()
        #expect(parse(bytes, captured: 40, wireLength: bytes.count) == .invalid(.truncated))
    }

    // RFC 791 3.1: Total Length includes the header, so it cannot be below IHL * 4.
    @Test func totalLengthBelowHeaderLength() {
        var packet = good()
        packet.ipv4TotalLength = 19
        #expect(parse(packet.build()) == .invalid(.badHeader))
        packet.ipv4Options = [1, 1, 1, 1]
        packet.ipv4TotalLength = 20
        #expect(parse(packet.build()) == .invalid(.badHeader))
    }

    // The IP length fields claim more than the packet has.
    @Test func totalLengthAboveWireLength() {
        var packet = good()
        let real = packet.build().count
        packet.ipv4TotalLength = UInt16(real + 1)
        #expect(parse(packet.build()) == .invalid(.truncated))

        var six = good(.ipv6)
        let sixReal = six.build().count
        six.ipv6PayloadLength = UInt16(sixReal - 40 + 1)
        #expect(parse(six.build()) == .invalid(.truncated))
    }

    // RFC 791 3.1: MF set or a non-zero offset is a fragment; seqwall sees headers only.
    @Test(arguments: [0x2000, 0x0001, 0x1FFF, 0x6000, 0x2010] as [UInt16])
    func ipv4Fragments(field: UInt16) {
        var packet = good()
        packet.fragmentField = field
        #expect(parse(packet.build()) == .invalid(.fragment))
    }

    // RFC 9293 3.1: Data Offset is at least 5.
    @Test(arguments: Family.allCases)
    func dataOffsetBelowFive(family: Family) {
        for offset: UInt8 in [0, 1, 4] {
            var packet = good(family)
            packet.dataOffset = offset
            #expect(parse(packet.build()) == .invalid(.badHeader))
        }
    }

    // The TCP header claims more bytes than the IP packet carries (kernel tcp_error:
    // tcplen < doff * 4).
    @Test(arguments: Family.allCases)
    func dataOffsetPastPacket(family: Family) {
        var packet = good(family)
        packet.payloadLength = 0
        packet.dataOffset = 6
        #expect(parse(packet.build()) == .invalid(.badHeader))
        packet.dataOffset = 15
        packet.payloadLength = 39
        #expect(parse(packet.build()) == .invalid(.badHeader))
    }

    // The IP packet is too short for even the fixed TCP header.
    @Test(arguments: Family.allCases)
    func ipPacketShorterThanTCPHeader(family: Family) {
        var packet = good(family)
        packet.payloadLength = 0
        let bytes = Array(packet.build().prefix(family.ipHeaderLength + 19))
        var fixed = bytes
        if family == .ipv4 { fixed[2] = 0; fixed[3] = UInt8(bytes.count); fixed[10] = 0; fixed[11] = 0 }
        else { fixed[4] = 0; fixed[5] = 19 }
        #expect(parse(fixed) == .invalid(.truncated))
    }

    // The copy range cut the TCP header (fixed part or options).
    @Test(arguments: Family.allCases)
    func tcpHeaderCutByCapture(family: Family) {
        var packet = good(family)
        packet.options = [.mss(1460), .windowScale(3)]
        let bytes = packet.build()
        #expect(parse(bytes, captured: family.ipHeaderLength + 10) == .invalid(.truncated))
        #expect(parse(bytes, captured: family.ipHeaderLength + 22) == .invalid(.truncated))
        #expect(parse(bytes, captured: family.ipHeaderLength + 28) != .invalid(.truncated))
    }

    // RFC 9293 3.2: an option's length includes kind and length, so it is at least 2.
    @Test(arguments: Family.allCases)
    func optionLengthZeroOrOne(family: Family) {
        for length: UInt8 in [0, 1] {
            var packet = good(family)
            packet.options = [.raw([30, length, 0, 0])]
            #expect(parse(packet.build()) == .invalid(.badOptions))
        }
    }

    // An option that runs past the TCP header.
    @Test(arguments: Family.allCases)
    func optionPastHeader(family: Family) {
        var packet = good(family)
        packet.options = [.noOperation, .noOperation, .raw([2, 8, 5, 0xB4])]   // MSS claiming 8 bytes
        #expect(parse(packet.build()) == .invalid(.badOptions))
        // A kind byte in the last position with no room for its length.
        packet.options = [.noOperation, .noOperation, .noOperation, .raw([3])]
        #expect(parse(packet.build()) == .invalid(.badOptions))
    }

    // RFC 8200 4.5: a fragment with a non-zero offset or M set is part of a datagram.
    @Test(arguments: [(0, true), (1, false), (185, true)] as [(UInt16, Bool)])
    func ipv6Fragment(offset: UInt16, more: Bool) {
        var packet = good(.ipv6)
        packet.extensionHeaders = [.hopByHop(), .fragment(offset: offset, more: more)]
        #expect(parse(packet.build()) == .invalid(.fragment))
    }

    // RFC 8200 4.5: the two reserved bits of the fragment header do not make a fragment.
    @Test func ipv6FragmentReservedBitsIgnored() {
        var packet = good(.ipv6)
        var fragment = IPv6ExtensionHeader.fragment()
        fragment.bytes[3] |= 0x06
        packet.extensionHeaders = [fragment]
        if case .tcp = parse(packet.build()) {} else { Issue.record("atomic fragment with reserved bits did not parse") }
    }

    // An extension header that runs past the end of the packet (its length field lies).
    @Test func ipv6ChainPastPacket() {
        var packet = good(.ipv6)
        packet.payloadLength = 0
        packet.extensionHeaders = [.hopByHop(), .destinationOptions().withLengthField(20)]
        #expect(parse(packet.build()) == .invalid(.badHeader))

        // Next Header says hop-by-hop but the payload is empty.
        var empty = good(.ipv6)
        empty.extensionHeaders = [.hopByHop()]
        empty.ipv6PayloadLength = 0
        #expect(parse(Array(empty.build().prefix(40))) == .invalid(.badHeader))

        // A fragment header cut by the payload length.
        var cut = good(.ipv6)
        cut.extensionHeaders = [.fragment()]
        cut.ipv6PayloadLength = 6
        #expect(parse(cut.build()) == .invalid(.badHeader))
    }

    // The chain fits in the packet but the copy range cut it.
    @Test func ipv6ChainPastCapture() {
        var packet = good(.ipv6)
        packet.extensionHeaders = [.hopByHop(units: 4), .destinationOptions()]
        let bytes = packet.build()
        #expect(parse(bytes, captured: 41) == .invalid(.truncated))
        #expect(parse(bytes, captured: 60) == .invalid(.truncated))
    }

    // More extension headers than any sane packet has (RFC 8200 4.1): give up.
    @Test func ipv6SeventeenExtensionHeaders() {
        var packet = good(.ipv6)
        packet.extensionHeaders = Array(repeating: .destinationOptions(), count: 17)
        #expect(parse(packet.build()) == .invalid(.badHeader))
    }

    // Land attack (CVE-1999-0016): same address and port at both ends.
    @Test(arguments: Family.allCases)
    func land(family: Family) {
        var packet = good(family)
        packet.destination = family.client
        packet.sourcePort = 139
        packet.destinationPort = 139
        packet.flags = .syn
        #expect(parse(packet.build()) == .invalid(.land))
        // Same address, different ports: a loopback-style connection, not land.
        packet.destinationPort = 140
        if case .tcp = parse(packet.build()) {} else { Issue.record("same address, other port is not land") }
    }

    // Not a protocol seqwall tracks: reported with its protocol and endpoints, for the
    // `default` lines to decide. (UDP and ICMP have their own tests in DatagramTests.)
    @Test(arguments: Family.allCases)
    func nonTCP(family: Family) {
        var packet = good(family)
        packet.protocolNumber = 47
        packet.transport = [0x00, 0x00, 0x08, 0x00]
        #expect(parse(packet.build()) == .other(protocolNumber: 47, source: family.client, destination: family.server))
        if family == .ipv6 {
            // Walked past extension headers first; No Next Header (59) is "other" too.
            packet.extensionHeaders = [.hopByHop(), .routing()]
            #expect(parse(packet.build()) == .other(protocolNumber: 47, source: family.client, destination: family.server))
            packet.protocolNumber = 59
            packet.transport = []
            #expect(parse(packet.build()) == .other(protocolNumber: 59, source: family.client, destination: family.server))
        } else {
            // ICMP other than echo and errors (a timestamp request).
            packet.protocolNumber = 1
            packet.transport = [13, 0, 0, 0, 0, 1, 0, 1]
            #expect(parse(packet.build()) == .other(protocolNumber: 1, source: family.client, destination: family.server))
            // ICMPv6's number in IPv4 is just another protocol.
            packet.protocolNumber = 58
            packet.transport = [128, 0, 0, 0, 0, 1, 0, 1]
            #expect(parse(packet.build()) == .other(protocolNumber: 58, source: family.client, destination: family.server))
        }
    }

    // A non-TCP IPv4 fragment is still a fragment (checked before the protocol).
    @Test func nonTCPFragment() {
        var packet = good()
        packet.protocolNumber = 17
        packet.transport = [0, 1, 0, 2, 0, 8, 0, 0]
        packet.fragmentField = 0x2000
        #expect(parse(packet.build()) == .invalid(.fragment))
    }
}

@Suite("Packet parser: IPv4-mapped addresses")
struct PacketParserMappedAddressTests {
    // RFC 4291 2.5.5.2: ::ffff:a.b.c.d never appears on the wire. seqwall keeps IPv4 in that
    // form, so an IPv6 packet carrying one would pose as IPv4 to the rules: refuse it.
    @Test(arguments: [8, 24])
    func mappedAddressInIPv6HeaderIsBadHeader(offset: Int) {
        var bytes = builder(.ipv6).build()
        let mapped: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 203, 0, 113, 10]
        bytes.replaceSubrange(offset..<(offset + 16), with: mapped)
        #expect(PacketParser.parse(bytes) == .invalid(.badHeader))
    }
}
