import SeqwallTestSupport
@testable import SeqwallCore
import Testing

// Unit tests of the per-source connection limits and overload (ConnectionTracker+Overload.swift),
// on the fake clock of TrackerLab.swift; the packets go through the whole tracker.

private let location = SeqwallCore.SourceLocation(file: "test.rules", line: 1, column: 1)
private let bruteforce = TableReference(name: "bruteforce", index: 0)

/// Port 80 open inbound (the lab's policy), a persist table <bruteforce>, and `configure`'s limits.
private func overloadPolicy(_ family: Family, _ configure: (inout Policy) -> Void) -> Policy {
    var policy = Lab.defaultPolicy(family)
    policy.tables = [AddressTable(name: "bruteforce", persist: true, entries: [])]
    configure(&policy)
    return policy
}

private func another(_ family: Family) -> IPAddress {
    family == .ipv4 ? family.otherClient : ip("2001:db8:1:1::66")
}

extension Lab {
    /// The client's RST that ends its connection from `port`.
    func reset(from source: IPAddress, port: UInt16, serverPort: UInt16 = 80) -> Verdict {
        segment(.client, peer: source, port: port, serverPort: serverPort, .rst, seq: 1001, ack: 0)
    }

    var overloadEvents: [OverloadEvent] { (0..<tracker.overloads.count).map { tracker.overloads[$0] } }
}

@Suite("Limits: connections per source and overload")
struct OverloadTests {
    // limit conn 3 per-source overload <bruteforce> expire 10m flush: three established
    // connections, the fourth handshake is cut and its source handed on, once.
    @Test(arguments: Family.allCases)
    func establishedCountAndOverload(family: Family) {
        let lab = Lab(family: family, policy: overloadPolicy(family) {
            $0.limits.connPerSource = SourceConnectionLimit(
                count: 3, overload: Overload(table: bruteforce, expireSeconds: 600, flush: true))
        })
        let a = family.client, b = another(family)
        for port in UInt16(40000)..<40003 { #expect(lab.connect(from: a, port: port)) }
        #expect(lab.tracker.establishedCount(of: a) == 3)
        // The fourth passes its SYN and SYN-ACK; the ACK that would make it the fourth
        // established connection is dropped and the connection removed.
        #expect(lab.syn(from: a, port: 40003) == .accept)
        #expect(lab.synAck(to: a, port: 40003) == .accept)
        #expect(lab.completingAck(from: a, port: 40003) == .drop(.connLimit))
        #expect(lab.tracker.connectionCount == 3)
        #expect(lab.tracker.establishedCount(of: a) == 3)
        #expect(lab.tracker.counters[.connLimit] == 1)
        #expect(lab.tracker.counters.overloads == 1)
        let prefixLength = family == .ipv4 ? 32 : 64
        #expect(lab.overloadEvents == [OverloadEvent(
            source: IPNetwork(address: SourceLimiter.prefix(of: a), prefixLength: prefixLength), tableIndex: 0,
            tableNameHash: OverloadEvent.hash(ofTableName: "bruteforce"), expireSeconds: 600, flush: true, scope: 0,
            reason: .connLimit)])
        // Another source has its own count.
        #expect(lab.connect(from: b, port: 40000))
        #expect(lab.tracker.establishedCount(of: b) == 1)
        // One ends: room for one more at once, though its entry stays a while (CLOSE).
        #expect(lab.reset(from: a, port: 40000) == .accept)
        #expect(lab.tracker.connectionCount == 4)
        #expect(lab.tracker.establishedCount(of: a) == 2)
        #expect(lab.connect(from: a, port: 40010))
        #expect(lab.tracker.establishedCount(of: a) == 3)
    }

    // Spoofed SYNs never complete a handshake, so they count for nothing and overload no one.
    @Test func spoofedSynsAreNotCounted() {
        let family = Family.ipv4
        let lab = Lab(family: family, policy: overloadPolicy(family) {
            $0.limits.connPerSource = SourceConnectionLimit(count: 1, overload: Overload(table: bruteforce))
            $0.limits.connRatePerSource = SourceConnectionLimit(count: 1, seconds: 60, overload: Overload(table: bruteforce))
        })
        for port in UInt16(40000)..<40020 { #expect(lab.syn(from: family.client, port: port) == .accept) }
        #expect(lab.tracker.establishedCount(of: family.client) == 0)
        #expect(lab.tracker.counters.overloads == 0)
        #expect(lab.tracker.overloads.count == 0)
    }

    // limit conn-rate 5/10s: a bucket 5 deep, one token back every 2 s, exactly.
    @Test(arguments: Family.allCases)
    func rateBucketEdges(family: Family) {
        let lab = Lab(family: family, policy: overloadPolicy(family) {
            $0.limits.connRatePerSource = SourceConnectionLimit(count: 5, seconds: 10)
        })
        let a = family.client
        for port in UInt16(40000)..<40005 { #expect(lab.connect(from: a, port: port)) }
        #expect(lab.syn(from: a, port: 40005) == .accept)
        #expect(lab.synAck(to: a, port: 40005) == .accept)
        #expect(lab.completingAck(from: a, port: 40005) == .drop(.connRate))
        // No overload table: dropped, nothing handed on.
        #expect(lab.tracker.overloads.count == 0)
        lab.advance(milliseconds: 1999)
        #expect(!lab.connect(from: a, port: 40006))
        lab.advance(milliseconds: 1)
        #expect(lab.connect(from: a, port: 40007))
        #expect(!lab.connect(from: a, port: 40008))
        // A quiet spell fills the bucket to 5, not more.
        lab.advance(seconds: 3600)
        for port in UInt16(40100)..<40105 { #expect(lab.connect(from: a, port: port)) }
        #expect(!lab.connect(from: a, port: 40105))
        #expect(lab.tracker.counters[.connRate] == 4)
        // Every connection that got in is counted, as it would be for `limit conn`.
        #expect(lab.tracker.establishedCount(of: a) == 11)
        #expect(lab.tracker.connectionCount == 11)
    }

    // A rule's limit counts only what the rule lets in, under its own id; the global one
    // counts every inbound connection; flush cuts exactly what the limit counted.
    @Test func ruleScopeAndFlush() {
        let family = Family.ipv4
        var policy = overloadPolicy(family) {
            $0.limits.connPerSource = SourceConnectionLimit(count: 100)
        }
        policy.rules = [
            Rule(action: .pass, direction: .inbound, ports: [PortRange(22)],
                 connPerSource: SourceConnectionLimit(count: 2, overload: Overload(table: bruteforce, flush: true)),
                 location: location),
            Rule(action: .pass, direction: .inbound, ports: [PortRange(80)], location: location),
        ]
        let lab = Lab(family: family, policy: policy)
        let a = family.client, b = family.otherClient
        for port in UInt16(40000)..<40003 { #expect(lab.connect(from: a, port: port, serverPort: 80)) }
        for port in UInt16(41000)..<41002 { #expect(lab.connect(from: a, port: port, serverPort: 22)) }
        #expect(lab.connect(from: b, port: 41000, serverPort: 22))
        #expect(lab.tracker.establishedCount(of: a, rule: 0) == 2)
        #expect(lab.tracker.establishedCount(of: a) == 5)
        #expect(lab.syn(from: a, port: 41002, serverPort: 22) == .accept)
        #expect(lab.synAck(to: a, port: 41002, serverPort: 22) == .accept)
        #expect(lab.completingAck(from: a, port: 41002, serverPort: 22) == .drop(.connLimit))
        let events = lab.overloadEvents
        #expect(events.count == 1 && events.first?.scope == lab.tracker.limiter.ruleIDs[0] && events.first?.flush == true)
        // Flush: a's two port-22 connections go; its port-80 ones and b's stay.
        guard let event = events.first else { return }
        #expect(lab.tracker.removeConnections(overloadedBy: event) == 2)
        #expect(lab.tracker.connectionCount == 4)
        #expect(lab.tracker.establishedCount(of: a, rule: 0) == 0)
        #expect(lab.tracker.establishedCount(of: a) == 3)
        #expect(lab.tracker.establishedCount(of: b, rule: 0) == 1)
        // A global event flushes every inbound connection of the source.
        var global = event
        global.scope = 0
        #expect(lab.tracker.removeConnections(overloadedBy: global) == 3)
        #expect(lab.tracker.establishedCount(of: a) == 0)
        #expect(lab.tracker.connectionCount == 1)
    }

    // Counts go down exactly once, whatever removes the connection, and a reload keeps them.
    @Test func countsThroughDeleteExpiryAndReload() {
        let family = Family.ipv4
        let policy = overloadPolicy(family) { $0.limits.connPerSource = SourceConnectionLimit(count: 10) }
        let lab = Lab(family: family, policy: policy)
        let a = family.client
        for port in UInt16(40000)..<40006 { #expect(lab.connect(from: a, port: port)) }
        #expect(lab.tracker.establishedCount(of: a) == 6)
        // conntrack delete, by either direction's tuple.
        let key = FlowKey(source: a, destination: family.server, sourcePort: 40000, destinationPort: 80)
        #expect(lab.tracker.removeConnection(key) != nil)
        #expect(lab.tracker.removeConnection(key.reversed) == nil)
        #expect(lab.tracker.establishedCount(of: a) == 5)
        // A reload to a policy without the limit: held counts stay, and are given back.
        var unlimited = policy
        unlimited.limits.connPerSource = nil
        lab.tracker.replacePolicy(unlimited)
        #expect(lab.tracker.establishedCount(of: a) == 5)
        #expect(lab.tracker.removeConnections { $0.key.sourcePort == 40001 } == 1)
        #expect(lab.tracker.establishedCount(of: a) == 4)
        // New connections are not counted any more; back to the limit, old ones still are.
        #expect(lab.connect(from: a, port: 40100))
        lab.tracker.replacePolicy(policy)
        #expect(lab.tracker.establishedCount(of: a) == 4)
        // Expiry.
        lab.advance(seconds: UInt64(policy.timeouts.established) + 1)
        lab.tracker.expireAll(now: lab.now)
        #expect(lab.tracker.connectionCount == 0)
        #expect(lab.tracker.establishedCount(of: a) == 0)
    }

    // Restored connections are counted under the current policy, without a check; a restored
    // half-open one is counted when its handshake completes.
    @Test func restoreCounts() {
        let family = Family.ipv4
        let policy = overloadPolicy(family) { $0.limits.connPerSource = SourceConnectionLimit(count: 3) }
        let lab = Lab(family: family, policy: policy)
        let a = family.client
        for port in UInt16(40000)..<40003 { #expect(lab.connect(from: a, port: port)) }
        #expect(lab.syn(from: a, port: 40003) == .accept)
        #expect(lab.synAck(to: a, port: 40003) == .accept)
        var saved: [Connection] = []
        lab.tracker.forEachConnection { saved.append($0) }
        let next = Lab(family: family, policy: policy)
        next.now = lab.now
        for connection in saved { #expect(next.tracker.restore(connection, now: next.now) == .restored) }
        #expect(next.tracker.establishedCount(of: a) == 3)
        next.tracker.recordsEvents = false
        #expect(next.completingAck(from: a, port: 40003) == .drop(.connLimit))
        #expect(next.tracker.establishedCount(of: a) == 3)
        #expect(next.tracker.removeConnections { _ in true } == 3)
        #expect(next.tracker.establishedCount(of: a) == 0)
    }

    // The overload buffer is fixed: past its capacity, overloads are counted as lost.
    @Test func overloadBufferIsBounded() {
        let family = Family.ipv4
        let lab = Lab(family: family, policy: overloadPolicy(family) {
            $0.limits.connRatePerSource = SourceConnectionLimit(count: 1, seconds: 3600, overload: Overload(table: bruteforce))
        })
        let capacity = lab.tracker.overloads.capacity
        for n in 0..<(capacity + 3) {
            let source = IPAddress(ipv4: 0xC633_6400 | UInt32(n & 0xFF)) // 198.51.100.x, then again
            let port = UInt16(20000 + n)
            if lab.connect(from: source, port: port) {
                _ = lab.connect(from: source, port: port &+ 10000)
            }
        }
        #expect(lab.tracker.overloads.count == capacity)
        #expect(lab.tracker.counters.overloads == UInt64(capacity))
        #expect(lab.tracker.counters.overloadsLost == 3)
        lab.tracker.overloads.reset()
        #expect(lab.tracker.overloads.count == 0)
    }
}

@Suite("SourceLimiter: eviction when full")
struct SourceLimiterEvictionTests {
    // Two sets of 8: entries holding counts are never taken; the entry with the fullest
    // bucket goes first; a set full of counted entries refuses a newcomer.
    @Test func countedEntriesStay() {
        let limiter = SourceLimiter(entries: 16, hasher: (1, 2, 3))
        #expect(limiter.capacity == 16)
        let now: UInt64 = 1_000_000_000
        var counted: [IPAddress] = []
        var refused = 0
        for n in 0..<64 {
            let address = IPAddress(ipv4: 0xC000_0200 | UInt32(n))
            guard let slot = limiter.slot(for: address, 0, now: now) else {
                refused += 1
                continue
            }
            limiter.charge(slot: slot)
            counted.append(address)
        }
        // At most the whole table holds counts, and every count is still there.
        #expect(counted.count <= 16 && counted.count + refused == 64)
        #expect(refused > 0)
        for address in counted { #expect(limiter.halfOpen(address, scope: 0) == 1) }
        #expect(limiter.evictions == 0)
        // Give every count back: the entries are free again and a newcomer gets in.
        for address in counted { limiter.release(address, scope: 0) }
        #expect(limiter.activeEntries(now: now) == 0)
        #expect(limiter.slot(for: IPAddress(ipv4: 0xC000_0300), 0, now: now) != nil)
    }

    // Entries with only a drawn bucket are forgotten to make room, fullest bucket first, and
    // counted as evictions.
    @Test func drawnBucketsAreEvicted() {
        let limiter = SourceLimiter(entries: 8, hasher: (1, 2, 3))
        #expect(limiter.capacity == 8)
        let now: UInt64 = 1_000_000_000
        let interval: UInt64 = 1_000_000
        for n in 0..<8 {
            let address = IPAddress(ipv4: 0xC000_0200 | UInt32(n))
            guard let slot = limiter.slot(for: address, 0, now: now) else { Issue.record("no room"); return }
            // Source n draws n + 1 tokens: source 0's bucket is the fullest.
            for _ in 0...n { _ = limiter.takeToken(slot: slot, now: now, interval: interval, tolerance: 100 * interval) }
        }
        #expect(limiter.activeEntries(now: now) == 8)
        let newcomer = IPAddress(ipv4: 0xC000_0300)
        #expect(limiter.slot(for: newcomer, 0, now: now) != nil)
        #expect(limiter.evictions == 1)
        #expect(limiter.find(IPAddress(ipv4: 0xC000_0200), 0) == nil)
        #expect(limiter.find(IPAddress(ipv4: 0xC000_0207), 0) != nil)
    }
}
