import Foundation
import SeqwallControl
import SeqwallCore
import Testing

/// A connection as the tracker would hold it, without going through packets.
private func connection(_ source: String, _ destination: String, _ sourcePort: UInt16, _ destinationPort: UInt16,
                        state: TCPState, status: ConnectionStatus, secondsLeft: UInt64) -> (Connection, UInt64) {
    let key = FlowKey(source: IPAddress(source)!, destination: IPAddress(destination)!,
                      sourcePort: sourcePort, destinationPort: destinationPort)
    var connection = Connection(key: key, direction: .inbound)
    connection.state = state
    connection.status = status
    let now: UInt64 = 1_000_000_000_000
    connection.expiresAt = now + secondsLeft * 1_000_000_000 + 500_000_000
    return (connection, now)
}

@Suite("conntrack -L layout")
struct ConntrackLineTests {
    @Test("IPv4 established and assured, in conntrack's layout")
    func ipv4Assured() {
        let (c, now) = connection("198.51.100.10", "203.0.113.10", 40000, 22, state: .established,
                                  status: [.seenReply, .assured], secondsLeft: 431_999)
        #expect(Formatters.conntrackLine(ConnectionRecord(c, now: now)) ==
            "tcp      6 431999 ESTABLISHED src=198.51.100.10 dst=203.0.113.10 sport=40000 dport=22 src=203.0.113.10 dst=198.51.100.10 sport=22 dport=40000 [ASSURED] use=1")
    }

    @Test("[UNREPLIED] follows the original tuple")
    func unreplied() {
        let (c, now) = connection("198.51.100.10", "203.0.113.10", 40001, 80, state: .synSent, status: [], secondsLeft: 119)
        #expect(Formatters.conntrackLine(ConnectionRecord(c, now: now)) ==
            "tcp      6 119 SYN_SENT src=198.51.100.10 dst=203.0.113.10 sport=40001 dport=80 [UNREPLIED] src=203.0.113.10 dst=198.51.100.10 sport=80 dport=40001 use=1")
    }

    @Test("IPv6 addresses in RFC 5952 form; replied but not assured")
    func ipv6() {
        let (c, now) = connection("2001:db8:1::10", "2001:db8:2::10", 50000, 443, state: .synRecv,
                                  status: [.seenReply], secondsLeft: 59)
        #expect(Formatters.conntrackLine(ConnectionRecord(c, now: now)) ==
            "tcp      6 59 SYN_RECV src=2001:db8:1::10 dst=2001:db8:2::10 sport=50000 dport=443 src=2001:db8:2::10 dst=2001:db8:1::10 sport=443 dport=50000 use=1")
    }

    @Test("every state prints its kernel name", arguments: TCPState.allCases.dropFirst())
    func stateNames(state: TCPState) {
        let (c, now) = connection("198.51.100.1", "203.0.113.1", 1, 2, state: state, status: [.seenReply], secondsLeft: 5)
        let line = Formatters.conntrackLine(ConnectionRecord(c, now: now))
        #expect(line.hasPrefix("tcp      6 5 \(state.name) src="))
    }

    @Test("-o extended: the family first, packets and bytes after each tuple (conntrack -L -o extended with accounting)")
    func extended() {
        var (c, now) = connection("198.51.100.10", "203.0.113.10", 40000, 22, state: .established,
                                  status: [.seenReply, .assured], secondsLeft: 431_999)
        c.packetsOriginal = 5
        c.bytesOriginal = 412
        c.packetsReply = 4
        c.bytesReply = 3120
        #expect(Formatters.conntrackLine(ConnectionRecord(c, now: now), extended: true) ==
            "ipv4     2 tcp      6 431999 ESTABLISHED src=198.51.100.10 dst=203.0.113.10 sport=40000 dport=22 packets=5 bytes=412 src=203.0.113.10 dst=198.51.100.10 sport=22 dport=40000 packets=4 bytes=3120 [ASSURED] use=1")
        let (fresh, _) = connection("2001:db8:1::10", "2001:db8:2::10", 50000, 443, state: .synSent, status: [], secondsLeft: 119)
        #expect(Formatters.conntrackLine(ConnectionRecord(fresh, now: now), extended: true) ==
            "ipv6     10 tcp      6 119 SYN_SENT src=2001:db8:1::10 dst=2001:db8:2::10 sport=50000 dport=443 packets=0 bytes=0 [UNREPLIED] src=2001:db8:2::10 dst=2001:db8:1::10 sport=443 dport=50000 packets=0 bytes=0 use=1")
        #expect(Formatters.eventLine(EventRecord(ConnectionEvent(kind: .destroy, connection: c), now: now), extended: true) ==
            "[DESTROY] ipv4     2 tcp      6 src=198.51.100.10 dst=203.0.113.10 sport=40000 dport=22 packets=5 bytes=412 src=203.0.113.10 dst=198.51.100.10 sport=22 dport=40000 packets=4 bytes=3120 [ASSURED]")
        #expect(Formatters.eventLine(EventRecord(ConnectionEvent(kind: .new, connection: fresh), now: now), extended: true) ==
            "    [NEW] ipv6     10 tcp      6 119 SYN_SENT src=2001:db8:1::10 dst=2001:db8:2::10 sport=50000 dport=443 packets=0 bytes=0 [UNREPLIED] src=2001:db8:2::10 dst=2001:db8:1::10 sport=443 dport=50000 packets=0 bytes=0")
    }

    @Test("counts name their noun in the right number")
    func counted() {
        #expect(Counted.text(1, "connection") == "1 connection")
        #expect(Counted.text(0, "connection") == "0 connections")
        #expect(Counted.text(UInt64(2), "entry", "entries") == "2 entries")
        #expect(Counted.text(1, "entry", "entries") == "1 entry")
    }

    @Test("summary line as conntrack prints it")
    func summary() {
        #expect(Formatters.listSummary(count: 1) == "seqwall: 1 flow entry has been shown.")
        #expect(Formatters.listSummary(count: 3) == "seqwall: 3 flow entries have been shown.")
    }
}

@Suite("JSON records")
struct RecordTests {
    @Test("a record carries the fields of docs/control-protocol.md")
    func fields() throws {
        var (c, now) = connection("198.51.100.10", "203.0.113.10", 40000, 22, state: .established,
                                  status: [.seenReply, .assured], secondsLeft: 100)
        c.packetsOriginal = 3
        c.packetsReply = 2
        c.bytesOriginal = 180
        c.bytesReply = 120
        let data = try JSONEncoder().encode(ConnectionRecord(c, now: now))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in ["proto", "state", "timeout", "orig", "reply", "assured", "packets", "bytes"] {
            #expect(object[key] != nil, "missing \(key)")
        }
        #expect(object["proto"] as? String == "tcp")
        #expect(object["timeout"] as? Int == 100)
        let orig = try #require(object["orig"] as? [String: Any])
        #expect(orig["src"] as? String == "198.51.100.10")
        #expect(orig["dport"] as? Int == 22)
        let packets = try #require(object["packets"] as? [String: Any])
        #expect(packets["orig"] as? Int == 3 && packets["reply"] as? Int == 2)
        let bytes = try #require(object["bytes"] as? [String: Any])
        #expect(bytes["orig"] as? Int == 180 && bytes["reply"] as? Int == 120)
    }

    @Test("stats sum the queues and list every reason")
    func stats() {
        var first = TrackerCounters()
        first.seen = 10
        first.accepted = 7
        first.dropped = 3
        first.drops[Int(DropReason.badFlags.rawValue)] = 2
        first.drops[Int(DropReason.rule.rawValue)] = 1
        var second = TrackerCounters()
        second.seen = 5
        second.accepted = 5
        let stats = StatsRecord(queues: [
            .init(queue: 0, counters: first, connections: 2, halfOpen: 1, connectionLimit: 100, enobufs: 0, kernel: nil),
            .init(queue: 1, counters: second, connections: 1, halfOpen: 0, connectionLimit: 100, enobufs: 4,
                  malformedMessages: 2, sendErrors: 1, rejectAnswers: 3, rejectAnswersLimited: 2,
                  rejectAnswersFailed: 1, kernel: nil),
        ])
        #expect(stats.packets.seen == 15 && stats.packets.accepted == 12 && stats.packets.dropped == 3)
        #expect(stats.drops.count == DropReason.allCases.count)
        #expect(stats.drops["bad-flags"] == 2 && stats.drops["rule"] == 1 && stats.drops["truncated"] == 0)
        #expect(stats.connections.current == 3 && stats.connections.half_open == 1 && stats.connections.limit == 200)
        #expect(stats.queues.map(\.enobufs) == [0, 4])
        #expect(stats.queues.map(\.malformed_messages) == [0, 2] && stats.queues.map(\.send_errors) == [0, 1])
        let text = Formatters.statsText(stats)
        #expect(text.contains("packets      seen 15  accepted 12  dropped 3"))
        #expect(text.contains("  bad-flags             2"))
        // Answers to rejects show only for a queue that sent or held back any.
        #expect(stats.queues.map(\.reject_answers) == [0, 3])
        #expect(text.contains("send-errors 1  connections 1  reject-answers 3 (rate-limited 2, failed 1)"))
        #expect(!text.contains("send-errors 0  connections 2  reject-answers"))
        // No limit and no source table: the new fields say so, and JSON leaves them out.
        #expect(stats.connections.half_open_limit == nil && stats.sources == nil)
        #expect(text.contains("limits       half-open limit none  half-open evictions 0  early drops 0"))
        // Figures no daemon made (replay) name no version.
        #expect(!text.contains("version"))
    }

    @Test("the daemon's version heads the text and is in the JSON; a build outside git has no commit")
    func version() throws {
        var stats = StatsRecord(queues: [.init(queue: 0, counters: TrackerCounters(), connections: 0, halfOpen: 0,
                                               connectionLimit: 100, enobufs: 0, kernel: nil)])
        stats.version = "1.2.3"
        stats.commit = "0123456789ab"
        #expect(Formatters.statsText(stats).hasPrefix("version      1.2.3  commit 0123456789ab\npackets "))
        let json = try #require(String(data: try JSONEncoder().encode(stats), encoding: .utf8))
        #expect(json.contains("\"version\":\"1.2.3\"") && json.contains("\"commit\":\"0123456789ab\""))
        stats.commit = nil
        #expect(Formatters.statsText(stats).hasPrefix("version      1.2.3\npackets "))
        let decoded = try JSONDecoder().decode(StatsRecord.self, from: try JSONEncoder().encode(stats))
        #expect(decoded.version == "1.2.3" && decoded.commit == nil)
    }

    @Test("limits: evictions, the half-open limit and the source tables add up over queues")
    func limits() throws {
        var first = TrackerCounters()
        first.halfOpenEvictions = 7
        first.earlyDrops = 1
        var second = TrackerCounters()
        second.halfOpenEvictions = 3
        let stats = StatsRecord(queues: [
            .init(queue: 0, counters: first, connections: 2, halfOpen: 1, connectionLimit: 100, enobufs: 0, kernel: nil,
                  halfOpenLimit: 50, sources: .init(active: 4, capacity: 4096, evictions: 2)),
            .init(queue: 1, counters: second, connections: 1, halfOpen: 0, connectionLimit: 100, enobufs: 0, kernel: nil,
                  halfOpenLimit: 50, sources: .init(active: 1, capacity: 4096, evictions: 0)),
        ])
        #expect(stats.connections.half_open_evictions == 10 && stats.connections.early_drops == 1)
        #expect(stats.connections.half_open_limit == 100)
        #expect(stats.sources == .init(active: 5, capacity: 8192, evictions: 2))
        let text = Formatters.statsText(stats)
        #expect(text.contains("limits       half-open limit 100  half-open evictions 10  early drops 1  sources 5/8192  source evictions 2"))
        let json = try #require(String(data: try JSONEncoder().encode(stats), encoding: .utf8))
        for key in ["\"half_open\":1", "\"current\":3", "\"half_open_evictions\":10", "\"early_drops\":1",
                    "\"half_open_limit\":100", "\"sources\":{"] {
            #expect(json.contains(key), "\(key) in \(json)")
        }
    }

    @Test("pickup: connections picked up add up over queues; the grace period's end as UTC")
    func pickup() throws {
        var first = TrackerCounters()
        first.pickedUp = 3
        var second = TrackerCounters()
        second.pickedUp = 2
        var stats = StatsRecord(queues: [
            .init(queue: 0, counters: first, connections: 3, halfOpen: 0, connectionLimit: 100, enobufs: 0, kernel: nil),
            .init(queue: 1, counters: second, connections: 2, halfOpen: 0, connectionLimit: 100, enobufs: 0, kernel: nil),
        ])
        #expect(stats.pickup == .init(picked_up: 5))
        #expect(Formatters.statsText(stats).contains("pickup       picked up 5  no grace period"))
        stats.pickup?.grace_ends = 1_796_317_323
        stats.pickup?.grace_seconds_left = 42
        #expect(Formatters.statsText(stats).contains("pickup       picked up 5  grace period until 2026-12-03T17:02:03Z (42 s left)"))
        let json = try #require(String(data: try JSONEncoder().encode(stats), encoding: .utf8))
        #expect(json.contains("\"pickup\":{"), "\(json)")
        for key in ["\"picked_up\":5", "\"grace_ends\":1796317323", "\"grace_seconds_left\":42"] {
            #expect(json.contains(key), "\(key) in \(json)")
        }
        stats.pickup?.grace_seconds_left = 0
        #expect(Formatters.statsText(stats).contains("grace period over since 2026-12-03T17:02:03Z"))
    }

    @Test("UTC times", arguments: [
        (UInt64(0), "1970-01-01T00:00:00Z"), (951_782_400, "2000-02-29T00:00:00Z"),
        (1_796_317_323, "2026-12-03T17:02:03Z"), (4_102_444_799, "2099-12-31T23:59:59Z"),
    ])
    func utcTime(seconds: UInt64, text: String) {
        #expect(Formatters.utcTime(seconds) == text)
    }
}

@Suite("filters")
struct FilterTests {
    @Test("each field narrows the match")
    func matching() throws {
        let (c, _) = connection("198.51.100.10", "203.0.113.10", 40000, 22, state: .established,
                                status: [.seenReply], secondsLeft: 1)
        #expect(try ConnectionFilter().compiled().matches(c))
        #expect(try ConnectionFilter(state: "established").compiled().matches(c))
        #expect(try ConnectionFilter(state: "SYN_SENT").compiled().matches(c) == false)
        #expect(try ConnectionFilter(source: "198.51.100.0/24").compiled().matches(c))
        #expect(try ConnectionFilter(source: "203.0.113.10").compiled().matches(c) == false)
        #expect(try ConnectionFilter(destination: "203.0.113.10").compiled().matches(c))
        #expect(try ConnectionFilter(sourcePort: 40000, destinationPort: 22).compiled().matches(c))
        #expect(try ConnectionFilter(destinationPort: 23).compiled().matches(c) == false)
        #expect(try ConnectionFilter(family: "ipv6").compiled().matches(c) == false)
        #expect(try ConnectionFilter(proto: "tcp", family: "ipv4").compiled().matches(c))
    }

    @Test("bad values are refused with a message naming them")
    func errors() {
        #expect(throws: FilterError.self) { try ConnectionFilter(state: "OPEN").compiled() }
        #expect(throws: FilterError.self) { try ConnectionFilter(source: "198.51.100.300").compiled() }
        #expect(throws: FilterError.self) { try ConnectionFilter(destination: "203.0.113.0/33").compiled() }
        #expect(throws: FilterError.self) { try ConnectionFilter(proto: "sctp").compiled() }
        #expect(throws: FilterError.self) { try ConnectionFilter(family: "ipx").compiled() }
        do {
            _ = try ConnectionFilter(state: "OPEN").compiled()
        } catch {
            #expect(error.description.contains("'OPEN'"))
        }
    }
}

@Suite("conntrack -E layout")
struct EventLineTests {
    @Test("NEW, UPDATE and DESTROY as conntrack -E prints them")
    func events() throws {
        let (fresh, now) = connection("198.51.100.10", "203.0.113.10", 40000, 22, state: .synSent, status: [], secondsLeft: 119)
        #expect(Formatters.eventLine(EventRecord(ConnectionEvent(kind: .new, connection: fresh), now: now)) ==
            "    [NEW] tcp      6 119 SYN_SENT src=198.51.100.10 dst=203.0.113.10 sport=40000 dport=22 [UNREPLIED] src=203.0.113.10 dst=198.51.100.10 sport=22 dport=40000")
        let (open, _) = connection("198.51.100.10", "203.0.113.10", 40000, 22, state: .established,
                                   status: [.seenReply, .assured], secondsLeft: 431_999)
        #expect(Formatters.eventLine(EventRecord(ConnectionEvent(kind: .update, connection: open), now: now)) ==
            " [UPDATE] tcp      6 431999 ESTABLISHED src=198.51.100.10 dst=203.0.113.10 sport=40000 dport=22 src=203.0.113.10 dst=198.51.100.10 sport=22 dport=40000 [ASSURED]")
        #expect(Formatters.eventLine(EventRecord(ConnectionEvent(kind: .destroy, connection: open), now: now)) ==
            "[DESTROY] tcp      6 src=198.51.100.10 dst=203.0.113.10 sport=40000 dport=22 src=203.0.113.10 dst=198.51.100.10 sport=22 dport=40000 [ASSURED]")
    }

    @Test("an event is one flat JSON object with \"event\" beside the connection's fields")
    func flatJSON() throws {
        let (c, now) = connection("2001:db8:1::10", "2001:db8:2::10", 50000, 443, state: .synRecv,
                                  status: [.seenReply], secondsLeft: 59)
        let record = EventRecord(ConnectionEvent(kind: .update, connection: c), now: now)
        let data = try JSONEncoder().encode(record)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["event"] as? String == "update")
        #expect(object["state"] as? String == "SYN_RECV")
        #expect((object["orig"] as? [String: Any])?["src"] as? String == "2001:db8:1::10")
        #expect(try JSONDecoder().decode(EventRecord.self, from: data) == record)
    }
}

/// A UDP flow and an echo flow, keyed as the parser keys them.
private func datagramFlows() -> (udp: Connection, icmp: Connection, icmp6: Connection, now: UInt64) {
    let now: UInt64 = 1_000_000_000_000
    var udp = Connection(key: FlowKey(source: IPAddress("198.51.100.10")!, destination: IPAddress("203.0.113.10")!,
                                      sourcePort: 40000, destinationPort: 53, protocolNumber: 17), direction: .inbound)
    udp.expiresAt = now + 29_500_000_000
    let request = ICMPEcho.key(source: IPAddress("198.51.100.10")!, destination: IPAddress("203.0.113.10")!,
                               ipv6: false, type: 8, code: 0, identifier: 4660)!.key
    var icmp = Connection(key: request, direction: .inbound)
    icmp.status = [.seenReply]
    icmp.expiresAt = now + 29_500_000_000
    let request6 = ICMPEcho.key(source: IPAddress("2001:db8:1::10")!, destination: IPAddress("2001:db8:2::10")!,
                                ipv6: true, type: 128, code: 0, identifier: 7)!.key
    var icmp6 = Connection(key: request6, direction: .inbound)
    icmp6.expiresAt = now + 10_000_000_000
    return (udp, icmp, icmp6, now)
}

@Suite("conntrack layout for UDP and ICMP")
struct DatagramLineTests {
    @Test func udpLine() throws {
        let flows = datagramFlows()
        var udp = flows.udp
        #expect(Formatters.conntrackLine(ConnectionRecord(udp, now: flows.now)) ==
            "udp      17 29 src=198.51.100.10 dst=203.0.113.10 sport=40000 dport=53 [UNREPLIED] src=203.0.113.10 dst=198.51.100.10 sport=53 dport=40000 use=1")
        udp.status = [.seenReply, .assured]
        let record = ConnectionRecord(udp, now: flows.now)
        #expect(Formatters.conntrackLine(record) ==
            "udp      17 29 src=198.51.100.10 dst=203.0.113.10 sport=40000 dport=53 src=203.0.113.10 dst=198.51.100.10 sport=53 dport=40000 [ASSURED] use=1")
        #expect(Formatters.eventLine(EventRecord(ConnectionEvent(kind: .destroy, connection: udp), now: flows.now)) ==
            "[DESTROY] udp      17 src=198.51.100.10 dst=203.0.113.10 sport=40000 dport=53 src=203.0.113.10 dst=198.51.100.10 sport=53 dport=40000 [ASSURED]")
        let object = try JSONSerialization.jsonObject(with: JSONEncoder().encode(record)) as? [String: Any]
        #expect(object?["proto"] as? String == "udp" && object?["state"] as? String == "")
        #expect(object?["window"] == nil)
    }

    @Test("a flow a reject rule refused shows [REJECTED], in text and JSON")
    func rejectedFlows() throws {
        let flows = datagramFlows()
        var udp = flows.udp
        udp.status = .rejected
        let record = ConnectionRecord(udp, now: flows.now)
        #expect(record.rejected == true && record.unreplied)
        #expect(Formatters.conntrackLine(record) ==
            "udp      17 29 src=198.51.100.10 dst=203.0.113.10 sport=40000 dport=53 [UNREPLIED] src=203.0.113.10 dst=198.51.100.10 sport=53 dport=40000 [REJECTED] use=1")
        #expect(Formatters.eventLine(EventRecord(ConnectionEvent(kind: .destroy, connection: udp), now: flows.now)) ==
            "[DESTROY] udp      17 src=198.51.100.10 dst=203.0.113.10 sport=40000 dport=53 [UNREPLIED] src=203.0.113.10 dst=198.51.100.10 sport=53 dport=40000 [REJECTED]")
        let object = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(record)) as? [String: Any])
        #expect(object["rejected"] as? Bool == true)
        // An open flow says so too, and a record without the key (an older daemon) decodes.
        let open = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(ConnectionRecord(flows.udp, now: flows.now))) as? [String: Any])
        #expect(open["rejected"] as? Bool == false)
        var older = open
        older["rejected"] = nil
        let decoded = try JSONDecoder().decode(ConnectionRecord.self, from: JSONSerialization.data(withJSONObject: older))
        #expect(decoded.rejected == nil && !Formatters.conntrackLine(decoded).contains("REJECTED"))
        // A refused TCP connection keeps its CLOSE state and carries the flag as well.
        let (tcp, now) = connection("198.51.100.10", "203.0.113.10", 40002, 23, state: .close, status: .rejected, secondsLeft: 9)
        #expect(Formatters.conntrackLine(ConnectionRecord(tcp, now: now)).hasSuffix("sport=23 dport=40002 [REJECTED] use=1"))
    }

    @Test func icmpLines() throws {
        let flows = datagramFlows()
        #expect(Formatters.conntrackLine(ConnectionRecord(flows.icmp, now: flows.now)) ==
            "icmp     1 29 src=198.51.100.10 dst=203.0.113.10 type=8 code=0 id=4660 src=203.0.113.10 dst=198.51.100.10 type=0 code=0 id=4660 use=1")
        #expect(Formatters.conntrackLine(ConnectionRecord(flows.icmp6, now: flows.now)) ==
            "icmpv6   58 10 src=2001:db8:1::10 dst=2001:db8:2::10 type=128 code=0 id=7 [UNREPLIED] src=2001:db8:2::10 dst=2001:db8:1::10 type=129 code=0 id=7 use=1")
        #expect(Formatters.eventLine(EventRecord(ConnectionEvent(kind: .new, connection: flows.icmp6), now: flows.now)) ==
            "    [NEW] icmpv6   58 10 src=2001:db8:1::10 dst=2001:db8:2::10 type=128 code=0 id=7 [UNREPLIED] src=2001:db8:2::10 dst=2001:db8:1::10 type=129 code=0 id=7")
        let data = try JSONEncoder().encode(ConnectionRecord(flows.icmp, now: flows.now))
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for key in ["proto", "state", "timeout", "orig", "reply", "assured", "packets", "bytes"] {
            #expect(object[key] != nil, "\(key)")
        }
        let orig = try #require(object["orig"] as? [String: Any])
        let reply = try #require(object["reply"] as? [String: Any])
        #expect(orig["type"] as? Int == 8 && orig["code"] as? Int == 0 && orig["id"] as? Int == 4660)
        #expect(reply["type"] as? Int == 0 && reply["id"] as? Int == 4660 && orig["sport"] == nil)
        // And back: the CLI decodes what the daemon sends.
        #expect(try JSONDecoder().decode(ConnectionRecord.self, from: data) == ConnectionRecord(flows.icmp, now: flows.now))
    }

    @Test func protocolFilters() throws {
        let flows = datagramFlows()
        let (tcp, _) = connection("198.51.100.10", "203.0.113.10", 40000, 53, state: .established, status: [],
                                  secondsLeft: 1)
        let udp = try ConnectionFilter(proto: "udp").compiled()
        #expect(udp.matches(flows.udp) && !udp.matches(tcp) && !udp.matches(flows.icmp))
        let icmp = try ConnectionFilter(proto: "icmp").compiled()
        #expect(icmp.matches(flows.icmp) && !icmp.matches(flows.icmp6) && !icmp.matches(flows.udp))
        #expect(try ConnectionFilter(proto: "icmpv6").compiled().matches(flows.icmp6))
        #expect(try ConnectionFilter(proto: "58").compiled().matches(flows.icmp6))
        // Ports are TCP's and UDP's; a state is TCP's.
        let port53 = try ConnectionFilter(destinationPort: 53).compiled()
        #expect(port53.matches(flows.udp) && port53.matches(tcp))
        #expect(!(try ConnectionFilter(sourcePort: 4660).compiled().matches(flows.icmp)))
    }
}
