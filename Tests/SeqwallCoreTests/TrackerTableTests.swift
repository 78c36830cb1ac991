import SeqwallCore
import SeqwallTestSupport
import Testing

private let second: UInt64 = 1_000_000_000

private func key(_ index: Int) -> FlowKey {
    FlowKey(source: IPAddress(ipv4: 0xC000_0200 | UInt32(index % 250 + 1)), destination: ip("203.0.113.10"),
            sourcePort: UInt16(20_000 + index), destinationPort: 443)
}

/// A tracker holding `count` established connections, restored as a state file would put them
/// back, each with its own deadline: connection i expires i + 1 seconds after `now`.
private func tracker(holding count: Int, limit: Int = 64, now: UInt64) -> ConnectionTracker {
    var policy = Policy()
    policy.limits.states = limit
    let tracker = ConnectionTracker(policy: policy, hasher: FlowHasher(seeds: (3, 1, 4, 1, 5)))
    for index in 0..<count {
        var connection = Connection(key: key(index), direction: .inbound)
        connection.state = .established
        connection.expiresAt = now + UInt64(index + 1) * second
        #expect(tracker.restore(connection, now: now) == .restored)
    }
    return tracker
}

// The engine's query and mutation API (ConnectionTracker+Table.swift): every answer a value,
// no slot or pointer in sight.
@Suite("Tracker: table queries and mutations")
struct TrackerTableTests {
    let now: UInt64 = 1_000 * second

    @Test func lookupByTupleFromEitherSide() throws {
        let tracker = tracker(holding: 10, now: now)
        #expect(tracker.connectionCount == 10)
        #expect(tracker.connectionLimit == 64)
        let (original, forward) = try #require(tracker.connection(for: key(3)))
        #expect(forward == .original)
        #expect(original.key == key(3))
        #expect(original.expiresAt == now + 4 * second)
        let (reply, backward) = try #require(tracker.connection(for: key(3).reversed))
        #expect(backward == .reply)
        #expect(reply == original)
        #expect(tracker.connection(for: key(10)) == nil)
    }

    @Test func removeByTupleReturnsTheConnection() throws {
        let tracker = tracker(holding: 10, now: now)
        let removed = try #require(tracker.removeConnection(key(4).reversed))
        #expect(removed.key == key(4))
        #expect(tracker.connection(for: key(4)) == nil)
        #expect(tracker.removeConnection(key(4)) == nil)
        #expect(tracker.connectionCount == 9)
        #expect(tracker.counters.destroyed == 1)
        for index in 0..<10 where index != 4 { #expect(tracker.connection(for: key(index)) != nil) }
    }

    @Test func removeByPredicateCountsWhatWent() {
        let tracker = tracker(holding: 20, now: now)
        let removed = tracker.removeConnections { $0.key.sourcePort % 2 == 0 }
        #expect(removed == 10)
        #expect(tracker.connectionCount == 10)
        var left: [UInt16] = []
        tracker.forEachConnection { left.append($0.key.sourcePort) }
        let odd: [UInt16] = stride(from: 20_001, to: 20_020, by: 2).map { UInt16($0) }
        #expect(left.sorted() == odd)
    }

    // A listing in chunks visits every connection once, and says when it is done.
    @Test(arguments: [1, 7, 64, 1000] as [Int])
    func listingInChunks(chunk: Int) {
        let tracker = tracker(holding: 40, now: now)
        var seen: [FlowKey: Int] = [:]
        var cursor: ConnectionCursor? = .start
        var calls = 0
        while let from = cursor {
            cursor = tracker.forEachConnection(from: from, examining: chunk) { seen[$0.key, default: 0] += 1 }
            calls += 1
        }
        #expect(calls == (64 + chunk - 1) / chunk)
        #expect(seen.count == 40)
        #expect(seen.values.allSatisfy { $0 == 1 })
    }

    @Test func expireAllRemovesWhatIsDue() {
        let tracker = tracker(holding: 30, now: now)
        tracker.expireAll(now: now + 10 * second)
        #expect(tracker.connectionCount == 20)
        #expect(tracker.connection(for: key(9)) == nil)
        #expect(tracker.connection(for: key(10)) != nil)
    }

    @Test func limiterFigures() throws {
        var policy = Policy()
        policy.limits.states = 64
        #expect(ConnectionTracker(policy: policy).sourceTableUsage(now: now) == nil)
        #expect(ConnectionTracker(policy: policy).halfOpenLimit == nil)
        policy.limits.halfOpen = 10
        policy.limits.halfOpenPerSource = 2
        let limited = ConnectionTracker(policy: policy, shares: 2)
        #expect(limited.halfOpenLimit == 5)
        let usage = try #require(limited.sourceTableUsage(now: now))
        #expect(usage.active == 0)
        #expect(usage.capacity > 0)
        #expect(usage.evictions == 0)
    }
}
