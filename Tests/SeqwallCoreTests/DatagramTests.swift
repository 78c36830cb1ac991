import SeqwallTestSupport
@testable import SeqwallCore
import Testing

// UDP, ICMP echo and ICMP errors (docs/design.md, UDP and ICMP flows): the parser paths, the flows
// in the tracker with their timeouts on the fake clock, and the matching of errors to tracked
// connections.

/// Raw UDP, ICMP and ICMPv6 packets for the tests below.
enum Datagrams {
    static func udp(_ family: Family, from source: IPAddress, to destination: IPAddress, sport: UInt16, dport: UInt16,
                    payload: Int = 12) -> PacketBuilder {
        var packet = PacketBuilder(source: source, destination: destination)
        packet.protocolNumber = 17
        packet.transport = sport.bigEndianBytes + dport.bigEndianBytes + UInt16(8 + payload).bigEndianBytes + [0, 0]
            + [UInt8](repeating: 0x61, count: payload)
        return packet
    }

    /// A query from the client's port 40000 to the server's port 53, and its answer.
    static func dns(_ family: Family) -> (query: PacketBuilder, answer: PacketBuilder) {
        (udp(family, from: family.client, to: family.server, sport: 40000, dport: 53),
         udp(family, from: family.server, to: family.client, sport: 53, dport: 40000))
    }

    static func icmpProtocol(_ family: Family) -> UInt8 { family == .ipv4 ? 1 : 58 }

    /// An echo request (`reply` false) or reply with this identifier.
    static func echo(_ family: Family, from source: IPAddress, to destination: IPAddress, reply: Bool,
                     identifier: UInt16, code: UInt8 = 0) -> PacketBuilder {
        var packet = PacketBuilder(source: source, destination: destination)
        packet.protocolNumber = icmpProtocol(family)
        let type: UInt8 = family == .ipv4 ? (reply ? 0 : 8) : (reply ? 129 : 128)
        packet.transport = [type, code, 0, 0] + identifier.bigEndianBytes + [0, 1] + Array("seqwall".utf8)
        return packet
    }

    /// An ICMP error from `source` to `destination` quoting the first `quoteLength` bytes of
    /// `quoted` (all of it when nil).
    static func error(_ family: Family, from source: IPAddress, to destination: IPAddress, type: UInt8, code: UInt8,
                      quoting quoted: [UInt8], quoteLength: Int? = nil, fourth: UInt32 = 0) -> PacketBuilder {
        var packet = PacketBuilder(source: source, destination: destination)
        packet.protocolNumber = icmpProtocol(family)
        packet.transport = [type, code, 0, 0] + fourth.bigEndianBytes + Array(quoted.prefix(quoteLength ?? quoted.count))
        return packet
    }

    /// Fragmentation needed (RFC 1191) or packet too big (RFC 8201), with an MTU of 1280.
    static func tooBig(_ family: Family, from source: IPAddress, to destination: IPAddress, quoting quoted: [UInt8],
                       quoteLength: Int? = nil) -> PacketBuilder {
        family == .ipv4
            ? error(family, from: source, to: destination, type: 3, code: 4, quoting: quoted, quoteLength: quoteLength,
                    fourth: 1280)
            : error(family, from: source, to: destination, type: 2, code: 0, quoting: quoted, quoteLength: quoteLength,
                    fourth: 1280)
    }

    /// A router between client and server (gateway mode's far side).
    static func router(_ family: Family) -> IPAddress { family == .ipv4 ? ip("198.51.100.1") : ip("2001:db8:1::1") }
}

extension Lab {
    @discardableResult
    func send(_ packet: PacketBuilder, hook: PacketHook? = nil) -> Verdict {
        let bytes = packet.build()
        return bytes.withUnsafeBytes { tracker.process($0, wireLength: bytes.count, hook: hook ?? self.hook, now: now) }
    }

    func find(_ key: FlowKey) -> Connection? {
        guard let (slot, _) = tracker.table.find(key) else { return nil }
        return tracker.table.connection(at: slot).pointee
    }

    /// TCP to 80, UDP to 53 and echo requests may come in; everything else inbound is blocked.
    static func datagramPolicy(_ family: Family) -> Policy {
        var policy = Lab.defaultPolicy(family)
        let location = SeqwallCore.SourceLocation(file: "test.rules", line: 2, column: 1)
        policy.rules += [
            Rule(action: .pass, direction: .inbound, protocolName: .udp, ports: [PortRange(53)], location: location),
            Rule(action: .reject, direction: .inbound, protocolName: .udp, ports: [PortRange(69)], location: location),
            Rule(action: .pass, direction: .inbound, protocolName: family == .ipv4 ? .icmp : .icmp6, location: location),
        ]
        return policy
    }
}

@Suite("Datagram parsing")
struct DatagramParserTests {
    // A flow whose key is its own reverse cannot be tracked: the packet-tracking fuzzer found an
    // echo from a host to itself with id 0x0808, type 8, code 8 (FuzzTargets/Corpus/packet-tracking/
    // crash-crash-19fa...). Such packets are `land`, as for TCP; a different id is fine.
    @Test(arguments: Family.allCases)
    func landDatagrams(family: Family) {
        let host = family.client
        #expect(parse(Datagrams.udp(family, from: host, to: host, sport: 53, dport: 53).build()) == .invalid(.land))
        #expect(parse(Datagrams.udp(family, from: host, to: host, sport: 53, dport: 54).build()) != .invalid(.land))
        if family == .ipv4 {
            #expect(parse(Datagrams.echo(family, from: host, to: host, reply: false, identifier: 0x0808, code: 8).build())
                == .invalid(.land))
            #expect(parse(Datagrams.echo(family, from: host, to: host, reply: false, identifier: 0x0809, code: 8).build())
                != .invalid(.land))
        } else {
            // ICMPv6 echo request: type 128, code 0.
            #expect(parse(Datagrams.echo(family, from: host, to: host, reply: false, identifier: 0x8000).build())
                == .invalid(.land))
        }
    }

    @Test(arguments: Family.allCases)
    func udp(family: Family) {
        var packet = Datagrams.udp(family, from: family.client, to: family.server, sport: 40000, dport: 53)
        let key = FlowKey(source: family.client, destination: family.server, sourcePort: 40000, destinationPort: 53,
                          protocolNumber: 17)
        let bytes = packet.build()
        #expect(parse(bytes) == .datagram(Datagram(key: key, kind: .udp, wireLength: bytes.count)))
        if family == .ipv6 {
            packet.extensionHeaders = [.hopByHop(), .destinationOptions()]
            let longer = packet.build()
            #expect(parse(longer) == .datagram(Datagram(key: key, kind: .udp, wireLength: longer.count)))
        }
    }

    @Test(arguments: Family.allCases)
    func udpLengths(family: Family) {
        var packet = Datagrams.udp(family, from: family.client, to: family.server, sport: 1, dport: 2, payload: 4)
        // The UDP length says more than the IP packet holds, or less than a header.
        packet.transport![5] = 13
        #expect(parse(packet.build()) == .invalid(.badHeader))
        packet.transport![5] = 7
        #expect(parse(packet.build()) == .invalid(.badHeader))
        // Not even a header.
        packet.transport = [0, 1, 0, 2, 0]
        #expect(parse(packet.build()) == .invalid(.truncated))
        // A copy range that stops inside the header.
        let whole = Datagrams.udp(family, from: family.client, to: family.server, sport: 1, dport: 2).build()
        #expect(parse(whole, captured: family.ipHeaderLength + 6) == .invalid(.truncated))
    }

    @Test(arguments: Family.allCases)
    func echoKeysAreEachOthersReverse(family: Family) throws {
        let request = Datagrams.echo(family, from: family.client, to: family.server, reply: false, identifier: 0x1234).build()
        let reply = Datagrams.echo(family, from: family.server, to: family.client, reply: true, identifier: 0x1234).build()
        guard case .datagram(let out) = parse(request), case .datagram(let back) = parse(reply) else {
            Issue.record("echo did not parse as a datagram")
            return
        }
        #expect(out.kind == .echoRequest && back.kind == .echoReply)
        #expect(back.key == out.key.reversed)
        #expect(out.key.protocolNumber == Datagrams.icmpProtocol(family))
        let fields = ICMPEcho.fields(of: out.key)
        #expect(fields.type == (family == .ipv4 ? 8 : 128) && fields.code == 0 && fields.identifier == 0x1234)
        #expect(fields.replyType == (family == .ipv4 ? 0 : 129))
        // The other host pinging back with the same identifier is a flow of its own.
        let pingBack = Datagrams.echo(family, from: family.server, to: family.client, reply: false, identifier: 0x1234)
        guard case .datagram(let other) = parse(pingBack.build()) else { return }
        #expect(other.key != out.key && other.key != out.key.reversed)
    }

    @Test(arguments: Family.allCases)
    func icmpShorterThanItsHeader(family: Family) {
        var packet = Datagrams.echo(family, from: family.client, to: family.server, reply: false, identifier: 1)
        packet.transport = Array(packet.transport!.prefix(6))
        #expect(parse(packet.build()) == .invalid(.truncated))
    }

    @Test(arguments: Family.allCases)
    func otherICMPTypesAreLeftToTheDefaults(family: Family) {
        var packet = Datagrams.echo(family, from: family.client, to: family.server, reply: false, identifier: 1)
        packet.transport![0] = family == .ipv4 ? 13 : 139    // timestamp request, node information query
        #expect(parse(packet.build()) == .other(protocolNumber: Datagrams.icmpProtocol(family), source: family.client,
                                                destination: family.server))
    }

    /// RFC 4861: neighbour discovery with hop limit 255; MLD (after its hop-by-hop router alert)
    /// with hop limit 1. With any other hop limit they are not link-local control.
    @Test(arguments: [(UInt8(135), UInt8(255)), (136, 255), (133, 255), (134, 255), (137, 255), (131, 1), (143, 1)])
    func neighbourDiscovery(type: UInt8, hopLimit: UInt8) {
        let source = ip("fe80::1"), destination = ip("ff02::1:ff00:10")
        var packet = PacketBuilder(source: source, destination: destination)
        packet.protocolNumber = 58
        packet.transport = [type, 0, 0, 0, 0, 0, 0, 0] + ip("2001:db8:1::10").bytes16
        packet.hopLimit = hopLimit
        if hopLimit == 1 { packet.extensionHeaders = [.hopByHop()] }
        #expect(parse(packet.build()) == .neighbourDiscovery(source: source, destination: destination))
        packet.hopLimit = 64
        #expect(parse(packet.build()) == .other(protocolNumber: 58, source: source, destination: destination))
    }

    @Test(arguments: Family.allCases)
    func errorQuotingTCP(family: Family) {
        var quoted = PacketBuilder(source: family.client, destination: family.server)
        quoted.flags = [.ack, .psh]
        quoted.sequence = 0xDEAD_BEEF
        quoted.payloadLength = 1400
        let inner = quoted.build()
        let expectedKey = FlowKey(source: family.client, destination: family.server, sourcePort: 40000, destinationPort: 80)
        // The whole quote (RFC 4443 2.4(c): as much as fits), and only the 8 bytes RFC 792 asks for.
        for quoteLength in [inner.count, family.ipHeaderLength + 8, family.ipHeaderLength + 100] {
            let error = Datagrams.tooBig(family, from: Datagrams.router(family), to: family.client, quoting: inner,
                                         quoteLength: quoteLength).build()
            let expected = ICMPError(source: Datagrams.router(family), destination: family.client,
                                     type: family == .ipv4 ? 3 : 2, code: family == .ipv4 ? 4 : 0, quoted: expectedKey,
                                     quotedSequence: 0xDEAD_BEEF, wireLength: error.count)
            #expect(parse(error) == .icmpError(expected), "quote of \(quoteLength) bytes")
        }
        // Less than 8 bytes of TCP header quoted: nothing to match on.
        let short = Datagrams.tooBig(family, from: Datagrams.router(family), to: family.client, quoting: inner,
                                     quoteLength: family.ipHeaderLength + 7).build()
        #expect(parse(short) == .invalid(.badHeader))
        // The quote is there, but the kernel's copy of the packet stops before its ports.
        let whole = Datagrams.tooBig(family, from: Datagrams.router(family), to: family.client, quoting: inner).build()
        let outer = family.ipHeaderLength + 8
        #expect(parse(whole, captured: outer + family.ipHeaderLength + 4) == .invalid(.truncated))
        #expect(parse(whole, captured: outer + 10) == .invalid(.truncated))
    }

    @Test(arguments: Family.allCases)
    func errorQuotingUDPAndEcho(family: Family) {
        let udp = Datagrams.udp(family, from: family.client, to: family.server, sport: 5000, dport: 53).build()
        let unreachable = Datagrams.error(family, from: family.server, to: family.client, type: family == .ipv4 ? 3 : 1,
                                          code: family == .ipv4 ? 3 : 4, quoting: udp).build()
        guard case .icmpError(let error) = parse(unreachable) else {
            Issue.record("port unreachable did not parse as an error")
            return
        }
        #expect(error.quoted == FlowKey(source: family.client, destination: family.server, sourcePort: 5000,
                                        destinationPort: 53, protocolNumber: 17))
        let echo = Datagrams.echo(family, from: family.client, to: family.server, reply: false, identifier: 77).build()
        let exceeded = Datagrams.error(family, from: Datagrams.router(family), to: family.client,
                                       type: family == .ipv4 ? 11 : 3, code: 0, quoting: echo).build()
        guard case .icmpError(let timeExceeded) = parse(exceeded), case .datagram(let request) = parse(echo) else {
            Issue.record("time exceeded for an echo did not parse")
            return
        }
        #expect(timeExceeded.quoted == request.key)
        // An error about an error is never sent (RFC 1122 3.2.2): it matches nothing.
        let errorAboutError = Datagrams.error(family, from: family.server, to: family.client,
                                              type: family == .ipv4 ? 3 : 1, code: 1, quoting: unreachable).build()
        #expect(parse(errorAboutError) == .invalid(.icmpUnrelated))
    }

    @Test(arguments: Family.allCases)
    func errorQuotingAFragmentOrTheOtherFamily(family: Family) {
        var quoted = PacketBuilder(source: family.client, destination: family.server)
        if family == .ipv4 {
            quoted.fragmentField = 0x0010      // offset 16: no transport header in it
        } else {
            quoted.extensionHeaders = [.fragment(offset: 16)]
        }
        let error = Datagrams.tooBig(family, from: Datagrams.router(family), to: family.client, quoting: quoted.build())
        #expect(parse(error.build()) == .invalid(.icmpUnrelated))
        // The first fragment has the ports: it matches.
        var first = PacketBuilder(source: family.client, destination: family.server)
        if family == .ipv4 { first.fragmentField = 0x2000 } else { first.extensionHeaders = [.fragment(offset: 0, more: true)] }
        let firstError = Datagrams.tooBig(family, from: Datagrams.router(family), to: family.client, quoting: first.build())
        if case .icmpError = parse(firstError.build()) {} else { Issue.record("first fragment quoted did not match") }
        // ICMP quotes its own family only.
        let other: Family = family == .ipv4 ? .ipv6 : .ipv4
        let foreign = PacketBuilder(source: other.client, destination: other.server).build()
        let mixed = Datagrams.tooBig(family, from: Datagrams.router(family), to: family.client, quoting: foreign)
        #expect(parse(mixed.build()) == .invalid(.badHeader))
    }
}

@Suite("UDP and echo flows")
struct DatagramTrackingTests {
    @Test(arguments: Family.allCases)
    func udpRequestResponseAndTimeouts(family: Family) throws {
        let lab = Lab(family: family, policy: Lab.datagramPolicy(family))
        let (request, response) = Datagrams.dns(family)
        #expect(lab.send(request) == .accept)
        let key = FlowKey(source: family.client, destination: family.server, sourcePort: 40000, destinationPort: 53,
                          protocolNumber: 17)
        var entry = try #require(lab.find(key))
        #expect(entry.secondsLeft(now: lab.now) == 30 && !entry.status.contains(.seenReply))
        #expect(entry.state == .none && lab.tracker.halfOpenCount == 0)
        lab.advance(seconds: 1)
        #expect(lab.send(response) == .accept)
        entry = try #require(lab.find(key))
        // The first reply keeps the short timeout and is not assured: a DNS answer is no stream.
        #expect(entry.status.contains(.seenReply) && !entry.status.contains(.assured))
        #expect(entry.secondsLeft(now: lab.now) == 30)
        #expect(entry.packetsOriginal == 1 && entry.packetsReply == 1)
        // Still talking 2 s after it began: a stream, 120 s, assured.
        lab.advance(seconds: 1)
        #expect(lab.send(request) == .accept)
        entry = try #require(lab.find(key))
        #expect(entry.status.contains(.assured) && entry.secondsLeft(now: lab.now) == 120)
        // Expires on the fake clock, and a late response then has no flow and no rule.
        lab.advance(seconds: 121)
        lab.tracker.expire(now: lab.now, budget: 100)
        #expect(lab.find(key) == nil)
        lab.expectCounters(seen: 3, accepted: 3, created: 1, destroyed: 1, halfOpen: 0)
    }

    @Test(arguments: Family.allCases)
    func unrepliedUDPExpiresAfterItsSingleTimeout(family: Family) {
        var policy = Lab.datagramPolicy(family)
        policy.datagramTimeouts.udpSingle = 5
        let lab = Lab(family: family, policy: policy)
        #expect(lab.send(Datagrams.udp(family, from: family.client, to: family.server, sport: 1234, dport: 53)) == .accept)
        lab.advance(seconds: 4)
        #expect(lab.tracker.table.count == 1)
        lab.tracker.expire(now: lab.now, budget: 10)
        #expect(lab.tracker.table.count == 1)
        lab.advance(seconds: 1)
        lab.tracker.expire(now: lab.now, budget: 10)
        #expect(lab.tracker.table.count == 0)
    }

    @Test(arguments: Family.allCases)
    func udpByRuleAndByDefault(family: Family) {
        let lab = Lab(family: family, policy: Lab.datagramPolicy(family))
        // No rule for port 54 inbound: `default in block`.
        #expect(lab.send(Datagrams.udp(family, from: family.client, to: family.server, sport: 1, dport: 54)) == .drop(.rule))
        // `reject` answers with a port unreachable (the kernel's REJECT); the refusal is kept
        // so the answer passes and a retransmission is refused again.
        let tftp = Datagrams.udp(family, from: family.client, to: family.server, sport: 2, dport: 69)
        #expect(lab.send(tftp) == .reject)
        #expect(lab.send(tftp) == .reject)
        let unreachable = Datagrams.error(family, from: family.server, to: family.client, type: family == .ipv4 ? 3 : 1,
                                          code: family == .ipv4 ? 3 : 4, quoting: tftp.build())
        #expect(lab.send(unreachable, hook: .output) == .accept)
        #expect(lab.tracker.table.count == 0)
        // Outbound: `default out pass`, tracked, the answer comes back.
        #expect(lab.send(Datagrams.udp(family, from: family.server, to: family.client, sport: 3, dport: 123)) == .accept)
        #expect(lab.send(Datagrams.udp(family, from: family.client, to: family.server, sport: 123, dport: 3)) == .accept)
    }

    @Test(arguments: Family.allCases)
    func udpIsNeverHalfOpen(family: Family) {
        var policy = Lab.datagramPolicy(family)
        policy.limits.halfOpen = 1
        policy.limits.halfOpenPerSource = 1
        let lab = Lab(family: family, policy: policy)
        for port in UInt16(1000)..<1010 {
            #expect(lab.send(Datagrams.udp(family, from: family.client, to: family.server, sport: port, dport: 53)) == .accept)
        }
        #expect(lab.tracker.halfOpenCount == 0 && lab.tracker.table.count == 10)
        // The half-open limit is all TCP's.
        #expect(lab.send(.client, .syn, seq: 1, ack: 0) == .accept)
        #expect(lab.tracker.halfOpenCount == 1)
    }

    @Test(arguments: Family.allCases)
    func echoByRule(family: Family) throws {
        let lab = Lab(family: family, policy: Lab.datagramPolicy(family))
        let request = Datagrams.echo(family, from: family.client, to: family.server, reply: false, identifier: 9)
        let reply = Datagrams.echo(family, from: family.server, to: family.client, reply: true, identifier: 9)
        // A reply with no request tracked.
        #expect(lab.send(reply) == .drop(.noConnection))
        #expect(lab.send(request) == .accept)
        #expect(lab.send(reply) == .accept)
        guard case .datagram(let parsed) = parse(request.build()) else { return }
        let entry = try #require(lab.find(parsed.key))
        #expect(entry.status.contains(.seenReply) && !entry.status.contains(.assured))
        #expect(entry.secondsLeft(now: lab.now) == 30)
        lab.advance(seconds: 31)
        #expect(lab.send(reply) == .drop(.noConnection))
        // Without the echo rule, `default in block`.
        var blocked = Lab.datagramPolicy(family)
        blocked.rules.removeLast()
        let strict = Lab(family: family, policy: blocked)
        #expect(strict.send(request) == .drop(.rule))
        // `default in reject` has no answer for an echo: it is dropped.
        blocked.defaultInbound = .reject
        let rejecting = Lab(family: family, policy: blocked)
        #expect(rejecting.send(request) == .drop(.rule))
    }

    /// Identifiers that collide with the other key half (ICMPEcho): B's request would look
    /// like the reply to A's. It is refused, never passed without a rule.
    @Test(arguments: Family.allCases)
    func echoKeyCollisionIsRefused(family: Family) {
        let lab = Lab(family: family, policy: Lab.datagramPolicy(family))
        let marker: UInt16 = family == .ipv4 ? 0x0800 : 0x8000
        #expect(lab.send(Datagrams.echo(family, from: family.server, to: family.client, reply: false,
                                        identifier: marker)) == .accept)
        #expect(lab.send(Datagrams.echo(family, from: family.client, to: family.server, reply: false,
                                        identifier: marker)) == .drop(.noConnection))
        #expect(lab.tracker.table.count == 1)
    }

    @Test func neighbourDiscoveryPassesWithoutState() {
        let family = Family.ipv6
        let lab = Lab(family: family, policy: Lab.datagramPolicy(family))
        var solicitation = PacketBuilder(source: ip("fe80::1"), destination: ip("ff02::1:ff00:10"))
        solicitation.protocolNumber = 58
        solicitation.transport = [135, 0, 0, 0, 0, 0, 0, 0] + family.server.bytes16
        solicitation.hopLimit = 255
        #expect(lab.send(solicitation, hook: .input) == .accept)
        #expect(lab.send(solicitation, hook: .output) == .accept)
        #expect(lab.tracker.table.count == 0)
    }
}

@Suite("ICMP errors")
struct ICMPErrorTests {
    /// A connection with data in flight, and the quoted segment a too-big error would carry.
    static func established(_ family: Family) -> Lab {
        let lab = Lab(family: family, policy: Lab.datagramPolicy(family))
        lab.handshake()
        #expect(lab.data(.client, 1000) == .accept)
        return lab
    }

    static func quotedSegment(_ lab: Lab, seq: UInt32, from side: Side = .client) -> [UInt8] {
        lab.packet(side, [.ack, .psh], seq: seq, ack: side == .client ? lab.serverNext : lab.clientNext, payload: 1400)
    }

    @Test(arguments: Family.allCases)
    func relatedErrorPassesAndChangesNothing(family: Family) throws {
        let lab = Self.established(family)
        let before = try #require(lab.connection)
        let quote = Self.quotedSegment(lab, seq: lab.clientNext &- 1000)
        lab.advance(seconds: 5)
        // From a router on the way, back to the client; full quote and RFC 792's 8 bytes.
        #expect(lab.send(Datagrams.tooBig(family, from: Datagrams.router(family), to: family.client, quoting: quote)) == .accept)
        #expect(lab.send(Datagrams.tooBig(family, from: Datagrams.router(family), to: family.client, quoting: quote,
                                          quoteLength: family.ipHeaderLength + 8)) == .accept)
        // The server's side too: an error about its segment goes to the server.
        let serverQuote = Self.quotedSegment(lab, seq: lab.serverNext, from: .server)
        #expect(lab.send(Datagrams.error(family, from: family.client, to: family.server, type: family == .ipv4 ? 3 : 1,
                                         code: family == .ipv4 ? 1 : 3, quoting: serverQuote)) == .accept)
        // No state made, none refreshed or counted.
        let after = try #require(lab.connection)
        #expect(after == before)
        #expect(lab.tracker.table.count == 1)
    }

    @Test(arguments: Family.allCases)
    func sequenceOutsideTheWindowIsUnrelated(family: Family) throws {
        let lab = Self.established(family)
        let connection = try #require(lab.connection)
        // The client's segments in flight start no earlier than its end minus the server's
        // largest window, and none starts past the right edge the server offered.
        let lowest = connection.original.end &- connection.reply.maxWindow
        let highest = connection.original.maxEnd
        #expect(connection.reply.maxWindow == UInt32(lab.window))
        for (seq, verdict) in [
            (lab.clientNext, Verdict.accept),             // the next segment
            (lowest, .accept),                            // the oldest that can be in flight
            (lowest &- 1, .drop(.icmpUnrelated)),         // older than that
            (highest, .accept),                           // at the right edge
            (highest &+ 1, .drop(.icmpUnrelated)),        // beyond it
            (lab.clientNext &+ 0x4000_0000, .drop(.icmpUnrelated)), // a blind guess
        ] {
            let quote = Self.quotedSegment(lab, seq: seq)
            #expect(lab.send(Datagrams.tooBig(family, from: Datagrams.router(family), to: family.client, quoting: quote,
                                              quoteLength: family.ipHeaderLength + 8)) == verdict, "seq \(seq)")
        }
    }

    @Test(arguments: Family.allCases)
    func errorForAnUnsentSYNOrAnUnknownConnection(family: Family) {
        let lab = Lab(family: family, policy: Lab.datagramPolicy(family))
        let syn = lab.packet(.client, .syn, seq: lab.clientISN, ack: 0)
        // Unknown connection.
        #expect(lab.send(Datagrams.tooBig(family, from: Datagrams.router(family), to: family.client, quoting: syn))
                == .drop(.icmpUnrelated))
        #expect(lab.send(.client, .syn, seq: lab.clientISN, ack: 0) == .accept)
        // The SYN itself: host unreachable for it passes (a client learns at once).
        let unreachable = Datagrams.error(family, from: Datagrams.router(family), to: family.client,
                                          type: family == .ipv4 ? 3 : 1, code: family == .ipv4 ? 1 : 3, quoting: syn)
        #expect(lab.send(unreachable) == .accept)
        // A segment the server never sent: it has sent nothing yet.
        let fromServer = lab.packet(.server, [.syn, .ack], seq: lab.serverISN, ack: lab.clientISN &+ 1)
        #expect(lab.send(Datagrams.error(family, from: family.client, to: family.server, type: family == .ipv4 ? 3 : 1,
                                         code: 1, quoting: fromServer)) == .drop(.icmpUnrelated))
        #expect(lab.tracker.table.count == 1)
        #expect(lab.tracker.counters[.icmpUnrelated] == 2)
    }

    @Test(arguments: Family.allCases)
    func errorToTheWrongHost(family: Family) {
        let lab = Self.established(family)
        let quote = Self.quotedSegment(lab, seq: lab.clientNext)
        // Quotes the client's segment but goes to the server, or to a third host.
        #expect(lab.send(Datagrams.tooBig(family, from: Datagrams.router(family), to: family.server, quoting: quote))
                == .drop(.icmpUnrelated))
        #expect(lab.send(Datagrams.tooBig(family, from: family.server, to: family.otherClient, quoting: quote))
                == .drop(.icmpUnrelated))
    }

    @Test(arguments: Family.allCases)
    func errorsForUDPAndEchoFlows(family: Family) {
        let lab = Lab(family: family, policy: Lab.datagramPolicy(family))
        let query = Datagrams.udp(family, from: family.client, to: family.server, sport: 5353, dport: 53)
        let unreachable = Datagrams.error(family, from: family.server, to: family.client, type: family == .ipv4 ? 3 : 1,
                                          code: family == .ipv4 ? 3 : 4, quoting: query.build())
        #expect(lab.send(unreachable) == .drop(.icmpUnrelated))
        #expect(lab.send(query) == .accept)
        #expect(lab.send(unreachable) == .accept)
        #expect(lab.tracker.table.count == 1)
        let ping = Datagrams.echo(family, from: family.client, to: family.server, reply: false, identifier: 4)
        let exceeded = Datagrams.error(family, from: Datagrams.router(family), to: family.client,
                                       type: family == .ipv4 ? 11 : 3, code: 0, quoting: ping.build())
        #expect(lab.send(exceeded) == .drop(.icmpUnrelated))
        #expect(lab.send(ping) == .accept)
        #expect(lab.send(exceeded) == .accept)
        #expect(lab.tracker.table.count == 2)
    }

    @Test(arguments: Family.allCases)
    func expiredConnectionIsUnrelated(family: Family) {
        var policy = Lab.datagramPolicy(family)
        policy.timeouts.established = 10
        let lab = Lab(family: family, policy: policy)
        lab.handshake()
        let quote = Self.quotedSegment(lab, seq: lab.clientNext)
        lab.advance(seconds: 11)
        #expect(lab.send(Datagrams.tooBig(family, from: Datagrams.router(family), to: family.client, quoting: quote))
                == .drop(.icmpUnrelated))
    }

    @Test func quotedSequenceBounds() {
        var sender = TCPPeerState(), receiver = TCPPeerState()
        sender.end = 1000
        sender.maxEnd = 5000
        sender.maxWindow = 100
        receiver.maxWindow = 500
        #expect(ICMPTracker.quotedSequenceFits(500, sender: sender, receiver: receiver))
        #expect(!ICMPTracker.quotedSequenceFits(499, sender: sender, receiver: receiver))
        #expect(ICMPTracker.quotedSequenceFits(5000, sender: sender, receiver: receiver))
        #expect(!ICMPTracker.quotedSequenceFits(5001, sender: sender, receiver: receiver))
        // Across the wrap of the sequence space.
        sender.end = 100
        sender.maxEnd = 200
        #expect(ICMPTracker.quotedSequenceFits(UInt32.max - 399, sender: sender, receiver: receiver))
        #expect(!ICMPTracker.quotedSequenceFits(UInt32.max - 400, sender: sender, receiver: receiver))
        // A restored side may be ahead of its maxEnd; only the lower bound holds.
        sender.flags.insert(.relearning)
        #expect(ICMPTracker.quotedSequenceFits(100_000, sender: sender, receiver: receiver))
        #expect(!ICMPTracker.quotedSequenceFits(UInt32.max - 400, sender: sender, receiver: receiver))
    }
}

@Suite("UDP and echo flows in the state file")
struct DatagramSnapshotTests {
    @Test(arguments: Family.allCases)
    func roundTrip(family: Family) throws {
        let lab = Lab(family: family, policy: Lab.datagramPolicy(family))
        let (query, answer) = Datagrams.dns(family)
        let ping = Datagrams.echo(family, from: family.client, to: family.server, reply: false, identifier: 321)
        let pong = Datagrams.echo(family, from: family.server, to: family.client, reply: true, identifier: 321)
        #expect(lab.send(query) == .accept)
        #expect(lab.send(answer) == .accept)
        lab.advance(seconds: 3)
        #expect(lab.send(query) == .accept)    // a stream now: 120 s, assured
        #expect(lab.send(ping) == .accept)
        lab.handshake()
        var before: [FlowKey: Connection] = [:]
        _ = lab.tracker.table.forEachSlot(from: 0, examining: lab.tracker.table.capacity) { _, connection in
            before[connection.key] = connection
        }
        #expect(before.count == 3)

        let (next, loaded) = try lab.restarted(downtime: 10)
        #expect(loaded.entries.count == 3 && loaded.expired == 0)
        for entry in loaded.entries {
            let old = try #require(before[entry.connection.key])
            var restored = entry.connection
            #expect(restored.secondsLeft(now: next.now) + 10 == old.secondsLeft(now: lab.now)
                    || restored.secondsLeft(now: next.now) + 11 == old.secondsLeft(now: lab.now))
            // Everything but the clocks comes back as it was.
            restored.expiresAt = old.expiresAt
            restored.createdAt = old.createdAt
            restored.wheelTick = old.wheelTick
            #expect(restored == old, "\(entry.connection.key)")
        }
        // The flows carry on in the new process: the echo's reply, the stream's next datagram.
        #expect(next.send(pong) == .accept)
        #expect(next.send(answer) == .accept)
        #expect(next.tracker.table.count == 3 && next.tracker.halfOpenCount == 0)
    }

    @Test func icmpRecordWithTheWrongFamilyIsRefused() throws {
        let lab = Lab(family: .ipv6, policy: Lab.datagramPolicy(.ipv6))
        #expect(lab.send(Datagrams.echo(.ipv6, from: Family.ipv6.client, to: Family.ipv6.server, reply: false,
                                        identifier: 1)) == .accept)
        var bytes = lab.snapshot()
        bytes[48 + 2] = 1      // protocol ICMP with IPv6 addresses
        let resealed = StateSnapshotCorruptionTests.resealed(bytes)
        #expect(throws: StateSnapshot.DecodeError.badRecord(index: 0, reason: "icmp with IPv6 addresses")) {
            try StateSnapshot.decode(resealed, maximumRecords: 10, wallNow: 0, monotonicNow: 0)
        }
    }
}
