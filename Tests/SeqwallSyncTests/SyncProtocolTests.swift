import SeqwallCore
import SeqwallSync
import SeqwallTestSupport
import XCTest

final class SyncProtocolTests: XCTestCase {
    func change(_ port: UInt16, _ pair: SyncTestPair, family: Family = .ipv4) -> SyncChange {
        SyncChange(.changed, SyncTestPair.connection(port: port, family: family, now: pair.now))
    }

    // MARK: Format

    func testEntriesRoundTripWithRemainingTimeOnTheReceiversClock() throws {
        for family in Family.allCases {
            let senderNow: UInt64 = 50_000_000_000, receiverNow: UInt64 = 7_000_000_000
            var message = SyncMessage(kind: .connections)
            let connection = SyncTestPair.connection(port: 40000, family: family, now: senderNow, seconds: 120)
            message.entries = [SyncEntry(.upsert, connection), SyncEntry(.delete, connection)]
            message.wallTime = 42
            message.dataSequence = 9
            let body = message.encoded(monotonicNow: senderNow)
            let decoded = try XCTUnwrap(SyncMessage.decode(kind: .connections, body: body, monotonicNow: receiverNow))
            XCTAssertEqual(decoded.dataSequence, 9)
            XCTAssertEqual(decoded.wallTime, 42)
            XCTAssertEqual(decoded.entries.map(\.operation), [.upsert, .delete])
            let got = decoded.entries[0].connection
            XCTAssertEqual(got.key, connection.key)
            XCTAssertEqual(got.state, .established)
            XCTAssertEqual(got.status, [.seenReply, .assured])
            XCTAssertEqual(got.original, connection.original)
            XCTAssertEqual(got.reply, connection.reply)
            XCTAssertEqual(got.expiresAt, receiverNow + 120_000_000_000, "remaining time, not an absolute deadline")
        }
    }

    func testEveryKindRoundTrips() throws {
        for kind in SyncMessageKind.allCases {
            var message = SyncMessage(kind: kind)
            message.wallTime = 7
            if kind.isData { message.dataSequence = 3 }
            if [.bulkEnd, .alive, .skip, .nack].contains(kind) { message.first = 5 }
            if kind == .nack || kind == .alive { message.last = 8 }
            let decoded = SyncMessage.decode(kind: kind, body: message.encoded(monotonicNow: 0), monotonicNow: 0)
            XCTAssertEqual(decoded, message, kind.name)
        }
    }

    // MARK: Crypto

    func testWrongKeyIsRefusedAsAuthentication() {
        var pair = SyncTestPair()
        var other = SyncSession(key: SyncKey(bytes: Array(repeating: 9, count: 32)), node: 0xC, epoch: 100)
        other.submit(change(1, pair), now: pair.now)
        other.tick(now: pair.now + 100_000_000, wallNow: pair.wallNow)
        for datagram in other.takeOutgoing() {
            let receipt = pair.b.receive(datagram, now: pair.now, wallNow: pair.wallNow)
            XCTAssertEqual(receipt.refused, .authentication)
            XCTAssertTrue(receipt.entries.isEmpty)
        }
        XCTAssertGreaterThan(pair.b.status.refused["authentication"] ?? 0, 0)
    }

    func testReplayedTruncatedAndOtherVersionMessagesAreRefused() {
        var pair = SyncTestPair()
        pair.a.submit(change(1, pair), now: pair.now)
        pair.run(10)
        XCTAssertEqual(pair.appliedOnB.count, 1)
        let first = pair.fromA.first { SyncTestPair.isConnections($0) }!
        XCTAssertEqual(pair.b.receive(first, now: pair.now, wallNow: pair.wallNow).refused, .replay)
        XCTAssertEqual(pair.b.receive(Array(first.prefix(60)), now: pair.now, wallNow: pair.wallNow).refused, .authentication)
        XCTAssertEqual(pair.b.receive(Array(first.prefix(10)), now: pair.now, wallNow: pair.wallNow).refused, .truncated)
        var otherVersion = first
        otherVersion[4] = 2
        XCTAssertEqual(pair.b.receive(otherVersion, now: pair.now, wallNow: pair.wallNow).refused, .version)
        var flipped = first
        flipped[flipped.count / 2] ^= 0x10
        XCTAssertEqual(pair.b.receive(flipped, now: pair.now, wallNow: pair.wallNow).refused, .authentication)
        XCTAssertEqual(pair.appliedOnB.count, 1, "nothing refused was applied")
        let refused = pair.b.status.refused
        XCTAssertEqual(refused["replay"], 1)
        XCTAssertEqual(refused["truncated"], 1)
        XCTAssertEqual(refused["version"], 1)
        XCTAssertEqual(refused["authentication"], 2)
    }

    func testAnOlderIncarnationAndAStaleClockAreRefused() {
        var pair = SyncTestPair()
        pair.run(3)
        // The peer restarts: a new node number and a later epoch.
        var restarted = SyncSession(key: SyncTestPair.key, node: 0xAA, epoch: 200)
        restarted.tick(now: pair.now, wallNow: pair.wallNow)
        for datagram in restarted.takeOutgoing() {
            XCTAssertNil(pair.b.receive(datagram, now: pair.now, wallNow: pair.wallNow).refused)
        }
        // Messages of the old incarnation are now refused.
        pair.a.tick(now: pair.now + 2_000_000_000, wallNow: pair.wallNow)
        for datagram in pair.a.takeOutgoing() {
            XCTAssertEqual(pair.b.receive(datagram, now: pair.now, wallNow: pair.wallNow).refused, .oldEpoch)
        }
        // An earlier start of the peer with the same epoch (another node number): its messages
        // are replayed ones, since every start's epoch is above the last (SyncEpoch).
        var sameSecond = SyncSession(key: SyncTestPair.key, node: 0xAB, epoch: 200)
        sameSecond.tick(now: pair.now, wallNow: pair.wallNow)
        let replayed = sameSecond.takeOutgoing()
        XCTAssertFalse(replayed.isEmpty)
        for datagram in replayed {
            XCTAssertEqual(pair.b.receive(datagram, now: pair.now, wallNow: pair.wallNow).refused, .oldEpoch)
        }
        // A message sealed with a clock far from ours: replayed to a node that restarted.
        var fresh = SyncSession(key: SyncTestPair.key, node: 0xD, epoch: 300)
        fresh.tick(now: pair.now, wallNow: pair.wallNow - 3_600_000_000_000)
        var newNode = SyncSession(key: SyncTestPair.key, node: 0xE, epoch: 1)
        for datagram in fresh.takeOutgoing() {
            XCTAssertEqual(newNode.receive(datagram, now: pair.now, wallNow: pair.wallNow).refused, .stale)
        }
    }

    func testKeyFileChecks() throws {
        XCTAssertThrowsError(try SyncKey(fileContents: Array(repeating: 1, count: 32), mode: 0o100644))
        XCTAssertThrowsError(try SyncKey(fileContents: Array(repeating: 1, count: 16), mode: 0o100600))
        XCTAssertThrowsError(try SyncKey(fileContents: [], mode: 0o100600))
        _ = try SyncKey(fileContents: Array(repeating: 1, count: 32), mode: 0o100600)
        _ = try SyncKey(fileContents: Array(String(repeating: "ab", count: 32).utf8) + [10], mode: 0o100400)
        XCTAssertThrowsError(try SyncKey(fileContents: Array(String(repeating: "zz", count: 32).utf8), mode: 0o100600))
    }

    // MARK: Reliability

    func testBulkAtStartThenInSync() {
        var pair = SyncTestPair()
        pair.bulkOnA = (1...20).map { SyncTestPair.connection(port: $0, now: pair.now) }
        XCTAssertFalse(pair.b.status.in_sync)
        pair.run(20)
        XCTAssertTrue(pair.b.status.in_sync)
        XCTAssertTrue(pair.a.status.in_sync, "B's empty bulk completes too")
        XCTAssertEqual(Set(pair.appliedOnB.map(\.connection.key.sourcePort)), Set(1...20))
    }

    func testLossIsNackedAndResent() {
        var pair = SyncTestPair()
        pair.run(5)
        for port in UInt16(1)...40 { pair.a.submit(change(port, pair), now: pair.now) }
        var dropped = 0
        // Lose the first two connection messages A sends.
        pair.step(100_000_000) { datagram in
            guard SyncTestPair.isConnections(datagram), dropped < 2 else { return false }
            dropped += 1
            return true
        }
        pair.run(20)
        XCTAssertEqual(dropped, 2)
        XCTAssertEqual(Set(pair.appliedOnB.map(\.connection.key.sourcePort)), Set(1...40))
        XCTAssertGreaterThan(pair.b.status.nacks_sent, 0)
        XCTAssertGreaterThanOrEqual(pair.a.status.resends, 2)
        XCTAssertTrue(pair.b.status.in_sync)
    }

    func testTheLossOfTheLastMessageIsSeenFromTheNextAlive() {
        var pair = SyncTestPair()
        pair.run(5)
        pair.a.submit(change(7, pair), now: pair.now)
        // The only data message is lost, and nothing follows it but alive messages.
        pair.step(100_000_000) { SyncTestPair.isConnections($0) }
        XCTAssertTrue(pair.appliedOnB.isEmpty)
        for _ in 0..<3 { pair.step(1_000_000_000) }
        XCTAssertEqual(pair.appliedOnB.map(\.connection.key.sourcePort), [7])
        XCTAssertGreaterThan(pair.b.status.nacks_sent, 0)
        XCTAssertGreaterThanOrEqual(pair.a.status.resends, 1)
    }

    func testResendQueueOverflowLeadsToABulk() {
        var pair = SyncTestPair()
        var settings = SyncSettings()
        settings.resendCapacity = 4
        pair.a = SyncSession(key: SyncTestPair.key, node: 0xA, epoch: 100, settings: settings)
        pair.run(10)
        XCTAssertTrue(pair.b.status.in_sync)
        let bulksBefore = pair.b.status.bulks_received
        // Cut the link while A sends more than its resend queue holds.
        for port in UInt16(1)...160 { pair.a.submit(change(port, pair), now: pair.now) }
        pair.bulkOnA = (1...160).map { SyncTestPair.connection(port: $0, now: pair.now) }
        pair.step(100_000_000) { SyncTestPair.isConnections($0) }
        pair.a.submit(change(161, pair), now: pair.now)
        pair.run(60)
        XCTAssertGreaterThan(pair.a.status.resend_dropped, 0)
        XCTAssertEqual(pair.b.status.bulks_received, bulksBefore + 1, "the lost records came back by a bulk")
        XCTAssertTrue(pair.b.status.in_sync)
        XCTAssertTrue(Set(pair.appliedOnB.map(\.connection.key.sourcePort)).isSuperset(of: Set(1...161)))
    }

    func testChangesAreCoalescedPerConnection() {
        var coalescer = SyncCoalescer(interval: 50, maximumChanges: 4)
        var connection = SyncTestPair.connection(port: 1, now: 0)
        coalescer.add(SyncChange(.changed, connection), now: 0)
        connection.state = .finWait
        coalescer.add(SyncChange(.changed, connection), now: 10)
        XCTAssertTrue(coalescer.take(now: 20).isEmpty, "before the interval")
        let due = coalescer.take(now: 50)
        XCTAssertEqual(due.count, 1)
        XCTAssertEqual(due.first?.connection.state, .finWait, "the latest state")
        // maxupd: the fourth change goes at once.
        for _ in 0..<4 { coalescer.add(SyncChange(.changed, connection), now: 60) }
        XCTAssertEqual(coalescer.take(now: 60).count, 1)
        // A refresh carries nothing when no packet moved, and goes when one did.
        coalescer.add(SyncChange(.refresh, connection), now: 70)
        XCTAssertTrue(coalescer.take(now: 200).isEmpty)
        connection.packetsReply += 1
        coalescer.add(SyncChange(.refresh, connection), now: 210)
        XCTAssertEqual(coalescer.take(now: 210).count, 1)
        // A refresh while a record waits brings it up to date (packets after its change), without
        // counting as a change.
        connection.state = .closeWait
        coalescer.add(SyncChange(.changed, connection), now: 220)
        var later = connection
        later.packetsOriginal += 5
        later.expiresAt += 1000
        for _ in 0..<5 { coalescer.add(SyncChange(.refresh, later), now: 230) }
        XCTAssertTrue(coalescer.take(now: 240).isEmpty, "refreshes are not changes")
        XCTAssertEqual(coalescer.take(now: 270).map(\.connection), [later])
        // An older look (fewer packets: another worker's copy) leaves the record as it is.
        coalescer.add(SyncChange(.changed, later), now: 280)
        coalescer.add(SyncChange(.refresh, connection), now: 290)
        XCTAssertEqual(coalescer.take(now: 330).map(\.connection), [later])
        // Opened and closed within the interval: the peer never hears of it.
        let brief = SyncTestPair.connection(port: 2, now: 0)
        coalescer.add(SyncChange(.changed, brief), now: 300)
        coalescer.add(SyncChange(.removed, brief), now: 310)
        XCTAssertTrue(coalescer.take(now: 1000).isEmpty)
        // A known one removed: a delete.
        coalescer.add(SyncChange(.removed, connection), now: 1000)
        XCTAssertEqual(coalescer.take(now: 1000).map(\.operation), [.delete])
    }

    func testCoalescedRecordsGoInTheOrderTheyBecameDue() {
        var coalescer = SyncCoalescer(interval: 50, maximumChanges: 16)
        for port in UInt16(1)...100 {
            coalescer.add(SyncChange(.changed, SyncTestPair.connection(port: port, now: 0)), now: UInt64(port))
        }
        // Later changes replace a waiting record without moving it.
        for port in UInt16(1)...100 {
            var connection = SyncTestPair.connection(port: port, now: 0)
            connection.state = .finWait
            coalescer.add(SyncChange(.changed, connection), now: 100 + UInt64(port))
        }
        // Removed while waiting, then opened again: it waits from its new first change.
        let again = SyncTestPair.connection(port: 10, now: 0)
        coalescer.add(SyncChange(.removed, again), now: 201)
        coalescer.add(SyncChange(.changed, again), now: 202)
        XCTAssertEqual(coalescer.pendingCount, 100)
        let first = coalescer.take(now: 80)
        XCTAssertEqual(first.map(\.connection.key.sourcePort), Array(1...30).filter { $0 != 10 })
        XCTAssertTrue(first.allSatisfy { $0.operation == .upsert && $0.connection.state == .finWait })
        let rest = coalescer.take(now: 300)
        XCTAssertEqual(rest.map(\.connection.key.sourcePort), Array(31...100) + [10])
        XCTAssertEqual(rest.last?.connection.state, .established, "the reopened one's own state")
        XCTAssertEqual(coalescer.pendingCount, 0)
        XCTAssertTrue(coalescer.take(now: 1000, flushAll: true).isEmpty)
    }

    func testConnectionsPastTheirDeadlineAreForgotten() {
        // Expiry is each node's own: a connection whose deadline passed with nothing sent
        // since is no longer remembered, so the record of what the peer holds stays bounded.
        var coalescer = SyncCoalescer(interval: 50, maximumChanges: 16)
        let second: UInt64 = 1_000_000_000
        let brief = SyncTestPair.connection(port: 1, now: 0, seconds: 1)
        let long = SyncTestPair.connection(port: 2, now: 0, seconds: 300)
        coalescer.add(SyncChange(.changed, brief), now: 0)
        coalescer.add(SyncChange(.changed, long), now: 0)
        XCTAssertEqual(coalescer.take(now: 100).count, 2)
        XCTAssertTrue(coalescer.take(now: 20 * second).isEmpty)
        coalescer.add(SyncChange(.removed, brief), now: 20 * second)
        coalescer.add(SyncChange(.removed, long), now: 20 * second)
        XCTAssertEqual(coalescer.take(now: 20 * second).map(\.connection.key.sourcePort), [2])
    }

    // MARK: Arbitrary bytes

    func testArbitraryBytesNeverCrashAndAreNeverApplied() {
        var pair = SyncTestPair()
        for port in UInt16(1)...30 { pair.a.submit(change(port, pair), now: pair.now) }
        pair.run(20)
        let applied = pair.appliedOnB.count
        var generator = SplitMix64(seed: 16)
        var samples = pair.fromA
        for _ in 0..<300 {
            let length = Int(generator.next() % 1400)
            samples.append((0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
        }
        for sample in pair.fromA {
            for _ in 0..<20 {
                var mutated = sample
                switch generator.next() % 3 {
                case 0: mutated.removeLast(Int(generator.next() % UInt64(mutated.count)))
                case 1: mutated[Int(generator.next() % UInt64(mutated.count))] ^= UInt8(1 << (generator.next() % 8))
                default: mutated += [UInt8(truncatingIfNeeded: generator.next())]
                }
                samples.append(mutated)
            }
        }
        for sample in samples {
            let receipt = pair.b.receive(sample, now: pair.now, wallNow: pair.wallNow)
            XCTAssertNotNil(receipt.refused)
            XCTAssertTrue(receipt.entries.isEmpty)
        }
        XCTAssertEqual(pair.appliedOnB.count, applied)
        // Bodies decoded without the cipher: every kind, every cut.
        for sample in samples.prefix(200) {
            for kind in SyncMessageKind.allCases {
                _ = SyncMessage.decode(kind: kind, body: Array(sample.dropFirst(24)), monotonicNow: 0)
            }
        }
    }
}
