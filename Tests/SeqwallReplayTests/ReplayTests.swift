import Foundation
import SeqwallControl
import SeqwallCore
import SeqwallTestSupport
@testable import SeqwallReplay
import SeqwallRules
import Testing

/// The policy the replay tests judge by: port 8080 open inbound, 23 rejected, the rest of
/// inbound blocked, outbound passed.
let replayRules = """
    inside 203.0.113.0/24, 2001:db8:2::/64
    default in block
    default out pass
    pass   in tcp to port 8080
    reject in tcp to port 23
    timeout tcp established 30s
    """

func replayPolicy() throws -> Policy {
    try RuleFile.parse(text: replayRules, file: "replay.rules")
}

/// A scripted TCP conversation between the lab's client and server, as IP packets with times.
struct Script {
    let family: Family
    var clientPort: UInt16 = 40000
    var serverPort: UInt16 = 8080
    var clientNext: UInt32 = 1000
    var serverNext: UInt32 = 5000
    /// The capture's clock, nanoseconds since the epoch.
    var time: UInt64 = 1_700_000_000 * 1_000_000_000
    var packets: [(time: UInt64, bytes: [UInt8])] = []

    init(_ family: Family = .ipv4) { self.family = family }

    mutating func wait(milliseconds: UInt64) { time += milliseconds * 1_000_000 }

    mutating func send(_ side: Side, _ flags: TCPFlags, seq: UInt32? = nil, ack: UInt32? = nil, payload: Int = 0,
                       clientPort: UInt16? = nil, serverPort: UInt16? = nil) {
        var builder = PacketBuilder(source: side == .client ? family.client : family.server,
                                    destination: side == .client ? family.server : family.client)
        let cport = clientPort ?? self.clientPort, sport = serverPort ?? self.serverPort
        builder.sourcePort = side == .client ? cport : sport
        builder.destinationPort = side == .client ? sport : cport
        builder.flags = flags
        builder.window = 64240
        builder.sequence = seq ?? (side == .client ? clientNext : serverNext)
        builder.acknowledgment = ack ?? (flags.contains(.ack) ? (side == .client ? serverNext : clientNext) : 0)
        builder.payloadLength = payload
        packets.append((time, builder.build()))
        // Advance the sender's next sequence number only for in-order segments of this flow.
        if seq == nil && clientPort == nil && serverPort == nil {
            var length = UInt32(payload)
            if flags.contains(.syn) { length += 1 }
            if flags.contains(.fin) { length += 1 }
            if side == .client { clientNext &+= length } else { serverNext &+= length }
        }
        wait(milliseconds: 1)
    }

    mutating func handshake() {
        send(.client, .syn)
        send(.server, [.syn, .ack])
        send(.client, .ack)
    }

    /// Frames of the given link layer.
    func frames(_ frame: ([UInt8]) -> [UInt8] = Frames.ethernet) -> [TestFrame] {
        packets.map { TestFrame(seconds: $0.time / 1_000_000_000, nanoseconds: $0.time % 1_000_000_000, bytes: frame($0.bytes)) }
    }
}

/// Runs frames through a `Replay` without a file: the records and the summary.
func replayFrames(_ frames: [TestFrame], link: LinkLayer = .ethernet, hosts: [IPAddress] = [],
                  policy: Policy? = nil) throws -> ([PacketRecord], ReplaySummary) {
    let replay = Replay(policy: try policy ?? replayPolicy(), link: link, hosts: hosts)
    let records = frames.map { frame in
        frame.bytes.withUnsafeBytes { bytes in
            replay.replay(CapturedFrame(seconds: Int64(frame.seconds), nanoseconds: Int64(frame.nanoseconds),
                                        bytes: bytes, originalLength: frame.originalLength ?? frame.bytes.count))
        }
    }
    return (records, replay.finish())
}

/// Runs a capture file through `Replay.run`: the report's lines, and the damage it returned.
func replayFile(_ path: String, format: ReplayReport.Format = .text, hosts: [IPAddress] = [])
    throws -> (lines: [String], damage: CaptureError?) {
    var lines: [String] = []
    let damage = try Replay.run(path: path, policy: try replayPolicy(), hosts: hosts, format: format) { lines.append($0) }
    return (lines, damage)
}

/// The one JSON document `-o json` writes, from its lines.
func jsonDocument(_ lines: [String]) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(lines.joined(separator: "\n").utf8)) as? [String: Any])
}

/// Replays a capture of the mixed session to JSON and checks each packet's verdict, reason
/// and state; returns the document and its packets.
func replayMixedSession(_ path: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws
    -> (document: [String: Any], packets: [[String: Any]]) {
    let (lines, damage) = try replayFile(path, format: .json)
    #expect(damage == nil, sourceLocation: sourceLocation)
    let document = try jsonDocument(lines)
    let packets = try #require(document["packets"] as? [[String: Any]], sourceLocation: sourceLocation)
    #expect(packets.map { "\($0["verdict"] as? String ?? "?") \($0["reason"] as? String ?? "-")" } == mixedSessionOutcomes,
            sourceLocation: sourceLocation)
    #expect(packets.map { $0["state"] as? String } == mixedSessionStates, sourceLocation: sourceLocation)
    return (document, packets)
}

/// "verdict reason" of each record, e.g. "accept -", "drop bad-flags".
func outcomes(_ records: [PacketRecord]) -> [String] {
    records.map { "\($0.verdict) \($0.reason ?? "-")" }
}

/// The mixed session of the brief: handshake and data both ways pass, an Xmas segment is
/// `bad-flags`, data far beyond the window is `seq-above-window`, a SYN to a blocked port is
/// `rule`, one to a rejected port is rejected, and the close passes.
func mixedSession(_ family: Family = .ipv4) -> Script {
    var script = Script(family)
    script.handshake()                                                  // 1-3
    script.send(.client, [.psh, .ack], payload: 100)                    // 4
    script.send(.server, .ack)                                          // 5
    script.send(.server, [.psh, .ack], payload: 200)                    // 6
    script.send(.client, .ack)                                          // 7
    script.send(.client, [.fin, .psh, .urg], seq: script.clientNext, ack: 0) // 8 Xmas
    script.send(.client, [.psh, .ack], seq: script.clientNext &+ 10_000_000, payload: 10) // 9 out of window
    script.send(.client, .syn, serverPort: 22)                          // 10 blocked port
    script.send(.client, .syn, serverPort: 23)                          // 11 rejected port
    script.send(.client, [.fin, .ack])                                  // 12
    script.send(.server, [.fin, .ack])                                  // 13
    script.send(.client, .ack)                                          // 14
    return script
}

let mixedSessionOutcomes = [
    "accept -", "accept -", "accept -", "accept -", "accept -", "accept -", "accept -",
    "drop bad-flags", "drop seq-above-window", "drop rule", "reject rule",
    "accept -", "accept -", "accept -",
]

let mixedSessionStates: [String?] = [
    "SYN_SENT", "SYN_RECV", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "ESTABLISHED",
    "ESTABLISHED", "ESTABLISHED", nil, "CLOSE", "FIN_WAIT", "LAST_ACK", "TIME_WAIT",
]

@Suite struct ReplayTests {
    @Test(arguments: Family.allCases)
    func mixedSessionFromFrames(family: Family) throws {
        let (records, summary) = try replayFrames(mixedSession(family).frames())
        #expect(outcomes(records) == mixedSessionOutcomes)
        #expect(records.map(\.state) == mixedSessionStates)
        #expect(summary.verdicts == VerdictCounts(accept: 10, drop: 3, reject: 1))
        #expect(summary.stats.packets.seen == 14)
        #expect(summary.stats.drops["bad-flags"] == 1)
        #expect(summary.stats.drops["seq-above-window"] == 1)
        #expect(summary.stats.drops["rule"] == 2)
        // TIME_WAIT for the session and CLOSE for the rejected SYN are left in the table.
        #expect(summary.connections.map(\.state).sorted() == ["CLOSE", "TIME_WAIT"])
        let session = try #require(summary.connections.first { $0.state == "TIME_WAIT" })
        #expect(session.orig.src == family.client.description && session.orig.dport == 8080)
        #expect(session.assured && !session.unreplied)
        #expect(session.packets.orig == 6 && session.packets.reply == 4)
    }

    @Test func pcapFileReplaysWithKnownVerdicts() throws {
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        let path = try directory.file("session.pcap", CaptureWriter.pcap(linkType: 1, frames: mixedSession().frames()))
        let (lines, damage) = try replayFile(path)
        #expect(damage == nil)
        let packetLines = Array(lines.prefix(14))
        #expect(packetLines[0] == "   1 0.000000 198.51.100.10:40000 > 203.0.113.10:8080 [S] seq=1000 ack=0 win=64240 len=0 ACCEPT SYN_SENT")
        #expect(packetLines[1] == "   2 0.001000 203.0.113.10:8080 > 198.51.100.10:40000 [S.] seq=5000 ack=1001 win=64240 len=0 ACCEPT SYN_RECV")
        #expect(packetLines[7].hasSuffix("[FPU] seq=1101 ack=0 win=64240 len=0 DROP bad-flags"))
        #expect(packetLines[8].hasSuffix(" DROP seq-above-window"))
        #expect(packetLines[9].hasSuffix(":22 [S] seq=1101 ack=0 win=64240 len=0 DROP rule"))
        #expect(packetLines[10].hasSuffix(":23 [S] seq=1101 ack=0 win=64240 len=0 REJECT rule"))
        #expect(packetLines[13].hasSuffix(" ACCEPT TIME_WAIT"))
        // Then the table in the conntrack -L layout, and the counters with `stats`' lines.
        #expect(lines.contains { $0.hasPrefix("tcp      6 ") && $0.contains(" TIME_WAIT src=198.51.100.10 ") && $0.hasSuffix("[ASSURED] use=1") })
        #expect(lines.contains("2 flow entries left in the table."))
        #expect(lines.contains("frames       read 14  replayed 14  skipped 0"))
        #expect(lines.contains("verdicts     accept 10  drop 3  reject 1"))
        #expect(lines.contains { $0.hasPrefix("packets      seen 14  accepted 10  dropped 4") })
        #expect(lines.contains("  seq-above-window      1"))
    }

    @Test func pcapngFileWithNanosecondsReplaysTheSame() throws {
        var script = mixedSession(.ipv6)
        // Nanosecond steps that a microsecond file could not hold.
        script.packets = script.packets.enumerated().map { ($0.element.time + UInt64($0.offset) * 7, $0.element.bytes) }
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        let path = try directory.file("session.pcapng",
                                      CaptureWriter.pcapng(linkType: 276, frames: script.frames { Frames.linuxCooked2($0, type: Frames.etherTypeIPv6) }))
        let (document, packets) = try replayMixedSession(path)
        #expect(packets[1]["time"] as? Double == 0.001000007)
        #expect(packets[0]["src"] as? String == "2001:db8:1::10")
        #expect(packets[0]["flags"] as? String == "SYN")
        #expect(packets[7]["flags"] as? String == "FIN,PSH,URG")
        let capture = try #require(document["capture"] as? [String: Any])
        #expect(capture["link_type"] as? String == "LINUX_SLL2")
        #expect(capture["frames"] as? Int == 14)
        // The same objects `conntrack list -o json` and `stats -o json` print.
        let connections = try #require(document["connections"] as? [[String: Any]])
        #expect(connections.count == 2)
        let stats = try JSONDecoder().decode(StatsRecord.self, from: JSONSerialization.data(withJSONObject: document["stats"] as Any))
        #expect(stats.drops["rule"] == 2 && stats.packets.dropped == 4)
        let verdicts = try #require(document["verdicts"] as? [String: Int])
        #expect(verdicts == ["accept": 10, "drop": 3, "reject": 1])
    }

    // MARK: Clock

    @Test func timestampsDriveTimeouts() throws {
        // `timeout tcp established 30s`: data 29 s after the last packet passes, data 31 s
        // after that finds no connection.
        var script = Script()
        script.handshake()
        script.send(.client, [.psh, .ack], payload: 10)
        script.send(.server, .ack)
        script.wait(milliseconds: 29_000)
        script.send(.client, [.psh, .ack], payload: 10)
        script.send(.server, .ack)
        script.wait(milliseconds: 31_000)
        script.send(.client, [.psh, .ack], payload: 10)
        let (records, summary) = try replayFrames(script.frames())
        #expect(outcomes(records) == ["accept -", "accept -", "accept -", "accept -", "accept -", "accept -", "accept -",
                                      "drop no-connection"])
        #expect(records[6].state == "ESTABLISHED")
        #expect(records[7].state == nil)
        #expect(summary.connections.isEmpty)
        // Swept out by the expiry pass, as the daemon's worker would.
        #expect(summary.stats.connections.destroyed == 1)
        #expect(summary.stats.connections.current == 0)
    }

    @Test func anExpiredHalfOpenConnectionIsSweptAtTheEnd() throws {
        // An unanswered SYN (SYN_SENT, 120 s), then an unrelated frame 121 s later: the final
        // table is empty and no half-open connection is left counted.
        var script = Script()
        script.send(.client, .syn)
        script.wait(milliseconds: 121_000)
        script.send(.client, .syn, clientPort: 40001, serverPort: 22)
        let (records, summary) = try replayFrames(script.frames())
        #expect(outcomes(records) == ["accept -", "drop rule"])
        #expect(summary.connections.isEmpty)
        #expect(summary.stats.connections.half_open == 0)
        #expect(summary.stats.connections.destroyed == 1)
    }

    @Test func clockHoldsWhenTimestampsGoBack() throws {
        var script = Script()
        script.handshake()
        script.send(.client, [.psh, .ack], payload: 10)
        script.send(.server, .ack)
        // A frame stamped 100 s in the past: judged at the held clock, the connection alive.
        script.time -= 100_000_000_000
        script.send(.client, [.psh, .ack], payload: 10)
        script.time += 100_000_000_000
        script.send(.server, .ack)
        let (records, summary) = try replayFrames(script.frames())
        #expect(outcomes(records) == Array(repeating: "accept -", count: 7))
        #expect(records[5].relativeNanoseconds == -100_000_000_000 + 5_000_000)
        #expect(ReplayReport.line(records[5]).hasPrefix("   6 -99.995000 "))
        #expect(summary.clockWentBack == 1)
        // Had the clock gone back, the late frame would have set the connection to expire
        // 70 s before the last frame, which would then have found no connection.
        #expect(summary.connections.map(\.state) == ["ESTABLISHED"])
        #expect(summary.connections[0].timeout == 30)
    }

    // MARK: Damaged and unusual input

    @Test func snapLengthCutInsideTheHeadersIsSkipped() throws {
        var script = Script()
        script.handshake()
        script.send(.client, [.psh, .ack], payload: 500)
        script.send(.server, .ack)
        var frames = script.frames()
        // Frame 4 keeps 14 + 30 bytes: its TCP header is cut. Frame 5 keeps 8: not even the
        // Ethernet header.
        frames[3].originalLength = frames[3].bytes.count
        frames[3].bytes = Array(frames[3].bytes.prefix(44))
        frames[4].originalLength = frames[4].bytes.count
        frames[4].bytes = Array(frames[4].bytes.prefix(8))
        let (records, summary) = try replayFrames(frames)
        #expect(outcomes(records) == ["accept -", "accept -", "accept -", "skip snap-truncated", "skip link-truncated"])
        #expect(records[3].detail == "30 of 540 bytes captured")
        #expect(records[3].src == "198.51.100.10")
        #expect(summary.skipped == [.snapTruncated: 1, .linkTruncated: 1])
        #expect(summary.stats.packets.seen == 3)
        #expect(summary.stats.drops["truncated"] == 0)
    }

    @Test func aPacketCutShortOnTheWireIsATruncatedDrop() throws {
        // Captured whole, but its IP header claims more than the frame holds: the packet
        // itself is short, and seqwall drops it as the daemon would.
        var builder = PacketBuilder(source: Family.ipv4.client, destination: Family.ipv4.server)
        builder.destinationPort = 8080
        builder.ipv4TotalLength = 100
        let (records, summary) = try replayFrames([TestFrame(seconds: 1, bytes: Frames.ethernet(builder.build()))])
        #expect(outcomes(records) == ["drop truncated"])
        #expect(summary.skipped.isEmpty)
    }

    @Test func aSnapLengthAboveTheHeadersKeepsTheWireLength() throws {
        // tcpdump -s 96: the payload is cut, the headers are whole, the byte counters count the
        // whole packet as the daemon does with --copy-range.
        var script = Script()
        script.handshake()
        script.send(.client, [.psh, .ack], payload: 1000)
        var frames = script.frames()
        for index in frames.indices where frames[index].bytes.count > 96 {
            frames[index].originalLength = frames[index].bytes.count
            frames[index].bytes = Array(frames[index].bytes.prefix(96))
        }
        let (records, summary) = try replayFrames(frames)
        #expect(outcomes(records) == Array(repeating: "accept -", count: 4))
        #expect(records[3].len == 1000)
        #expect(records[3].wireLength == 1040)
        #expect(summary.connections[0].bytes.orig == 40 + 40 + 1040)
    }

    @Test func ethernetPaddingIsNotCounted() throws {
        // A 40-byte SYN travels in a 60-byte minimum frame; the kernel trims the padding.
        var script = Script()
        script.send(.client, .syn)
        let frames = script.frames { Frames.ethernet($0) + [UInt8](repeating: 0, count: 6) }
        #expect(frames[0].bytes.count == 60)
        let (records, summary) = try replayFrames(frames)
        #expect(records[0].wireLength == 40)
        #expect(summary.connections[0].bytes.orig == 40)
    }

    @Test func nonIPFramesAreSkippedNotDropped() throws {
        var script = Script()
        script.send(.client, .syn)
        var frames = script.frames()
        frames.insert(TestFrame(seconds: frames[0].seconds, bytes: Frames.ethernet([0, 1, 8, 0], type: 0x0806)), at: 0)
        let (records, summary) = try replayFrames(frames)
        #expect(outcomes(records) == ["skip non-ip", "accept -"])
        #expect(records[0].detail == "EtherType 0x0806 (ARP)")
        #expect(ReplayReport.line(records[0]) == "   1 0.000000 EtherType 0x0806 (ARP) SKIP non-ip")
        #expect(summary.stats.packets.seen == 1 && summary.stats.packets.dropped == 0)
        #expect(summary.frames == 2 && summary.skipped == [.notIP: 1])
    }

    @Test func nonTCPFollowsTheDefaultPolicy() throws {
        var udp = PacketBuilder(source: Family.ipv4.client, destination: Family.ipv4.server)
        udp.protocolNumber = 47
        udp.transport = [0, 0, 0x08, 0x00, 0, 0, 0, 0]
        var outbound = udp
        (outbound.source, outbound.destination) = (udp.destination, udp.source)
        let frames = [udp.build(), outbound.build()].map { TestFrame(seconds: 1, bytes: Frames.ethernet($0)) }
        let (records, _) = try replayFrames(frames)
        #expect(outcomes(records) == ["drop unsupported-protocol", "accept -"])
        #expect(ReplayReport.line(records[0]) == "   1 0.000000 198.51.100.10 > 203.0.113.10 proto 47 len=28 DROP unsupported-protocol")
    }

    @Test func udpIsTrackedAndJudgedByTheRules() throws {
        var query = PacketBuilder(source: Family.ipv4.client, destination: Family.ipv4.server)
        query.protocolNumber = 17
        query.transport = [0x9C, 0x40, 0, 53, 0, 8, 0, 0]
        var answer = query
        (answer.source, answer.destination) = (query.destination, query.source)
        answer.transport = [0, 53, 0x9C, 0x40, 0, 8, 0, 0]
        let frames = [query.build(), answer.build()].map { TestFrame(seconds: 1, bytes: Frames.ethernet($0)) }
        // The default rules block inbound UDP; the answer then has no flow but is outbound.
        let (records, summary) = try replayFrames(frames)
        #expect(outcomes(records) == ["drop rule", "accept -"])
        #expect(ReplayReport.line(records[0]) == "   1 0.000000 198.51.100.10:40000 > 203.0.113.10:53 proto udp len=28 DROP rule")
        #expect(summary.connections.map(\.proto) == ["udp"])
        #expect(summary.connections.first?.orig.sport == 53)
    }

    @Test(arguments: [LinkLayer.null, .ethernet, .raw, .loop, .linuxCooked, .linuxCooked2, .ipv4, .ipv6])
    func randomFramesNeverTrap(link: LinkLayer) throws {
        // Garbage of every length up to past the longest headers, and real packets cut at
        // every length: each frame is either skipped or judged, and nothing traps.
        var frames: [TestFrame] = []
        for length in 0..<120 {
            // Scrambled but the same on every run.
            let garbage = (0..<length).map { UInt8(truncatingIfNeeded: ($0 &* 131 &+ length &* 17) ^ ($0 >> 2) ^ 0x5A) }
            frames.append(TestFrame(seconds: 1, bytes: garbage))
        }
        let header: [UInt8]
        switch link {
        case .null: header = [2, 0, 0, 0]
        case .loop: header = [0, 0, 0, 2]
        case .ethernet: header = Frames.ethernet([], type: Frames.etherTypeIPv4)
        case .linuxCooked: header = Frames.linuxCooked([])
        case .linuxCooked2: header = Frames.linuxCooked2([])
        case .raw, .ipv4, .ipv6: header = []
        }
        var builder = PacketBuilder(source: Family.ipv4.client, destination: Family.ipv4.server)
        builder.options = [.mss(1460), .windowScale(7), .sackPermitted, .timestamps(value: 1, echo: 0)]
        builder.payloadLength = 20
        builder.destinationPort = 8080
        let whole = header + builder.build()
        for length in 0...whole.count {
            frames.append(TestFrame(seconds: 2, bytes: Array(whole.prefix(length)), originalLength: whole.count))
        }
        let (records, summary) = try replayFrames(frames, link: link)
        #expect(records.count == frames.count)
        #expect(summary.stats.packets.seen + summary.skipped.values.reduce(0, +) == UInt64(frames.count))
        #expect(summary.stats.packets.seen == summary.stats.packets.accepted + summary.stats.packets.dropped)
        // The whole packet, last, opens a connection.
        #expect(records.last?.verdict == "accept" && records.last?.state == "SYN_SENT")
    }

    // MARK: Direction

    @Test func linuxCookedOutgoingCopiesAreSkippedInGatewayMode() throws {
        // tcpdump -i any on a gateway: each forwarded packet in on one interface and out on
        // the other. FORWARD sees it once.
        var script = Script()
        script.handshake()
        let frames = script.frames().flatMap { frame -> [TestFrame] in
            let packet = Array(frame.bytes.dropFirst(14))
            var copy = frame
            copy.bytes = Frames.linuxCooked(packet, packetType: 4)
            var arriving = frame
            arriving.bytes = Frames.linuxCooked(packet)
            return [arriving, copy]
        }
        let (records, summary) = try replayFrames(frames, link: .linuxCooked)
        #expect(outcomes(records) == ["accept -", "skip outgoing-copy", "accept -", "skip outgoing-copy",
                                      "accept -", "skip outgoing-copy"])
        #expect(records[1].src == "198.51.100.10" && records[1].dport == 8080)
        #expect(summary.connections.map(\.state) == ["ESTABLISHED"])
        #expect(summary.skipped == [.outgoingCopy: 3])
    }

    @Test func hostModeJudgesByAddress() throws {
        // The host 198.51.100.20 (outside `inside`): an outbound connection to port 22 passes
        // in host mode (OUTPUT, `default out pass`); gateway mode calls it inbound and blocks.
        let host = ip("198.51.100.20"), peer = ip("198.51.100.10"), stranger = ip("198.51.100.30")
        func syn(_ source: IPAddress, _ destination: IPAddress, port: UInt16) -> TestFrame {
            var builder = PacketBuilder(source: source, destination: destination)
            builder.destinationPort = port
            return TestFrame(seconds: 1, bytes: Frames.ethernet(builder.build()))
        }
        let frames = [syn(host, peer, port: 22), syn(peer, host, port: 8080), syn(peer, host, port: 22),
                      syn(peer, stranger, port: 8080)]
        let (hostMode, _) = try replayFrames(frames, hosts: [host])
        #expect(outcomes(hostMode) == ["accept -", "accept -", "drop rule", "skip not-host"])
        let (gatewayMode, _) = try replayFrames(frames)
        #expect(outcomes(gatewayMode) == ["drop rule", "accept -", "drop rule", "accept -"])
    }

    @Test func hostModeKeepsOutgoingCopies() throws {
        var script = Script()
        script.send(.server, .syn, serverPort: 5555)
        let frames = script.frames { Frames.linuxCooked2($0, packetType: 4) }
        let (records, _) = try replayFrames(frames, link: .linuxCooked2, hosts: [Family.ipv4.server])
        #expect(outcomes(records) == ["accept -"])
        #expect(records[0].state == "SYN_SENT")
    }

    // MARK: Files

    @Test func missingFileIsAnError() throws {
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        let path = directory.path + "/absent.pcap"
        #expect(throws: CaptureError.self) { try replayFile(path) }
        do {
            _ = try CaptureFile(path: path)
        } catch {
            #expect(error.description.hasPrefix("\(path): cannot read capture: "))
            #expect(error.description.contains("No such file"))
        }
    }

    @Test func aFileThatIsNotACaptureIsAnError() throws {
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        for (name, bytes) in [("rules.pcap", Array(replayRules.utf8)), ("empty.pcap", []), ("short.pcap", [0xD4, 0xC3])] {
            let path = try directory.file(name, bytes)
            do {
                _ = try CaptureFile(path: path)
                Issue.record("\(name) opened as a capture")
            } catch {
                #expect(error.description.hasPrefix("\(path): cannot read capture: "), "\(error)")
            }
        }
    }

    @Test func anUnsupportedLinkTypeIsAnError() throws {
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        let path = try directory.file("wifi.pcap", CaptureWriter.pcap(linkType: 105, frames: [TestFrame(seconds: 1, bytes: [1, 2, 3])]))
        do {
            _ = try replayFile(path)
            Issue.record("an 802.11 capture was replayed")
        } catch {
            #expect("\(error)" == "\(path): link type IEEE802_11 (105) is not supported: replay reads Ethernet, raw IP, Linux cooked (SLL, SLL2) and BSD loopback captures")
        }
    }

    @Test func aCaptureCutShortStillReportsWhatWasRead() throws {
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        var script = Script()
        script.handshake()
        let whole = CaptureWriter.pcap(linkType: 1, frames: script.frames())
        // Cut in the middle of the third frame's data.
        let path = try directory.file("cut.pcap", Array(whole.dropLast(10)))
        let (lines, damage) = try replayFile(path)
        let error = try #require(damage)
        #expect(error.description.hasPrefix("\(path): truncated dump file"))
        #expect(error.description.hasSuffix("(after frame 2)"))
        #expect(lines.filter { $0.contains(" ACCEPT ") }.count == 2)
        #expect(lines.contains("frames       read 2  replayed 2  skipped 0"))
    }

    @Test func theTableSizedToTheCaptureFillsAsThePolicysWould() throws {
        // 17 SYNs of 17 connections. With `limit states 16` (the least a rule file may say) the
        // last finds the table full and makes room by the early drop of an entry that never
        // completed its handshake; with the default limit nothing is dropped, although the table
        // is sized to the 17 frames.
        var script = Script()
        for port in UInt16(40001)...40017 { script.send(.client, .syn, clientPort: port) }
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        let path = try directory.file("syns.pcap", CaptureWriter.pcap(linkType: 1, frames: script.frames()))
        for limit in [16, 262_144] {
            let policy = try RuleFile.parse(text: replayRules + "\nlimit states \(limit)\n", file: "replay.rules")
            var lines: [String] = []
            _ = try Replay.run(path: path, policy: policy, hosts: [], format: .text) { lines.append($0) }
            let verdicts = lines.prefix(17).map { $0.hasSuffix(" ACCEPT SYN_SENT") ? "accept" : $0 }
            #expect(verdicts == Array(repeating: "accept", count: 17))
            // `stats` shows the policy's limit, not the size the table was given.
            let kept = min(limit, 17)
            let evicted = 17 - kept
            #expect(lines.contains("connections  current \(kept)  half-open \(kept)  created 17  destroyed \(evicted)  limit \(limit)"))
            #expect(lines.contains { $0.hasPrefix("limits ") && $0.hasSuffix("early drops \(evicted)") })
        }
    }

    @Test func theLimitsInForceShowAsStatsShowsThem() throws {
        var script = Script()
        script.handshake()
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        let path = try directory.file("limits.pcap", CaptureWriter.pcap(linkType: 1, frames: script.frames()))
        func report(_ extra: String, _ format: ReplayReport.Format) throws -> [String] {
            let policy = try RuleFile.parse(text: replayRules + "\n" + extra, file: "replay.rules")
            var lines: [String] = []
            _ = try Replay.run(path: path, policy: policy, hosts: [], format: format) { lines.append($0) }
            return lines
        }
        func stats(_ lines: [String]) throws -> StatsRecord {
            try JSONDecoder().decode(StatsRecord.self, from: JSONSerialization.data(withJSONObject: try jsonDocument(lines)["stats"] as Any))
        }
        let limited = "limit half-open 20\nlimit syn-rate 5/s per-source\n"
        let limits = try #require(try report(limited, .text).first { $0.hasPrefix("limits ") })
        #expect(limits.hasPrefix("limits       half-open limit 20  half-open evictions 0  early drops 0  sources 1/"))
        let json = try stats(try report(limited, .json))
        #expect(json.connections.half_open_limit == 20)
        #expect(json.sources?.active == 1)
        let unlimited = try #require(try report("", .text).first { $0.hasPrefix("limits ") })
        #expect(unlimited.hasPrefix("limits       half-open limit none  "))
        #expect(try stats(try report("", .json)).connections.half_open_limit == nil)
    }

    @Test func everyLinkLayerOfAFileReplays() throws {
        // The same SYN through each link layer a file can have, pcap and pcapng.
        let v4 = synPacket(), v6 = synPacket(.ipv6)
        let cases: [(UInt32, [UInt8])] = [
            (1, Frames.ethernet(v4, type: Frames.etherTypeIPv4, tags: [(0x88A8, 1), (0x8100, 2)])),
            (101, v6), (228, v4), (229, v6),
            (113, Frames.linuxCooked(v4)), (276, Frames.linuxCooked2(v6, type: Frames.etherTypeIPv6)),
            (0, [30, 0, 0, 0] + v6), (108, [0, 0, 0, 2] + v4),
        ]
        let directory = try TemporaryDirectory(prefix: "seqwall-replay")
        for (linkType, frame) in cases {
            for format in ["pcap", "pcapng"] {
                let frames = [TestFrame(seconds: 1_700_000_000, bytes: frame)]
                let bytes = format == "pcap" ? CaptureWriter.pcap(linkType: linkType, frames: frames)
                    : CaptureWriter.pcapng(linkType: UInt16(linkType), frames: frames)
                let (lines, damage) = try replayFile(try directory.file("\(linkType).\(format)", bytes))
                #expect(damage == nil)
                #expect(lines.first?.hasSuffix(":8080 [S] seq=0 ack=0 win=65535 len=0 ACCEPT SYN_SENT") == true,
                        "link type \(linkType) \(format): \(lines.first ?? "")")
            }
        }
    }
}
