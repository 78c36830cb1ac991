import SeqwallCore
import SeqwallTestSupport
import Testing

/// Events recorded for `conntrack watch` (conntrack -E: NEW, UPDATE on state or status
/// change, DESTROY).
@Suite("Connection events")
struct ConnectionEventTests {
    func kinds(_ lab: Lab) -> [(ConnectionEventKind, TCPState)] {
        (0..<lab.tracker.events.count).map { (lab.tracker.events[$0].kind, lab.tracker.events[$0].connection.state) }
    }

    @Test(arguments: Family.allCases)
    func handshakeDataAndExpiry(family: Family) {
        let lab = Lab(family: family)
        lab.tracker.recordsEvents = true
        lab.handshake()
        _ = lab.data(.client, 100)
        _ = lab.ackAll(.server)
        let seen = kinds(lab)
        // NEW in SYN_SENT; UPDATE to SYN_RECV (answered); UPDATE to ESTABLISHED (assured);
        // data that changes neither state nor status records nothing.
        #expect(seen.map(\.0) == [.new, .update, .update])
        #expect(seen.map(\.1) == [.synSent, .synRecv, .established])
        #expect(lab.tracker.events[2].connection.status.contains(.assured))

        lab.tracker.events.reset()
        lab.advance(seconds: 6 * 86_400)
        lab.tracker.expire(now: lab.now, budget: lab.tracker.connectionLimit)
        #expect(kinds(lab).map(\.0) == [.destroy])
    }

    @Test func nothingIsRecordedWithoutWatchers() {
        let lab = Lab(family: .ipv4)
        lab.handshake()
        #expect(lab.tracker.events.count == 0)
    }

    @Test func aFullBufferCountsLostEvents() {
        let events = ConnectionEventBuffer(capacity: 2)
        let connection = Connection(key: FlowKey(source: IPAddress(ipv4: 1), destination: IPAddress(ipv4: 2),
                                                 sourcePort: 1, destinationPort: 2), direction: .inbound)
        for _ in 0..<5 { events.append(.new, connection) }
        #expect(events.count == 2)
        #expect(events.reset() == 3)
        #expect(events.count == 0 && events.lost == 0)
    }
}
