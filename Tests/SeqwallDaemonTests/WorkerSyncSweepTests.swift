import SeqwallCore
@testable import SeqwallDaemon
import SeqwallSync
import SeqwallTestSupport
import XCTest

/// The sync's sweep (WorkerSync.sweep): each live connection handed over once, and again only
/// when its packets moved or its slot holds another connection.
final class WorkerSyncSweepTests: XCTestCase {
    static let second: UInt64 = 1_000_000_000

    func connection(_ port: UInt16, now: UInt64) -> Connection {
        let family = Family.ipv4
        var connection = Connection(key: FlowKey(source: family.client, destination: family.server, sourcePort: port,
                                                 destinationPort: 443, protocolNumber: TrackedProtocol.tcpNumber),
                                    direction: .outbound)
        connection.state = .established
        connection.status = [.seenReply, .assured]
        connection.expiresAt = now + 300 * Self.second
        connection.createdAt = now
        connection.packetsOriginal = 3
        connection.packetsReply = 2
        return connection
    }

    /// The slices of one sweep period (one every 100 ms; a small table is looked through more
    /// than once), drained after each as the sync thread does; the ports handed over.
    func pass(_ sync: WorkerSync, _ tracker: ConnectionTracker, now: inout UInt64) -> [UInt16] {
        var handed: [UInt16] = []
        for _ in 0..<Int(WorkerSync.sweepPeriod / WorkerSync.sliceInterval) {
            now += WorkerSync.sliceInterval
            sync.sweep(tracker, now: now)
            sync.ring.drain { change in
                XCTAssertEqual(change.kind, .refresh)
                handed.append(change.connection.key.sourcePort)
            }
        }
        return handed.sorted()
    }

    func testAConnectionIsHandedOverAgainOnlyWhenItsPacketsMoveOrItsSlotChangesHands() {
        let tracker = ConnectionTracker(policy: Policy(), capacity: 4096)
        let sync = WorkerSync(capacity: 8192)
        var now: UInt64 = 10 * Self.second
        for port in UInt16(1)...300 { tracker.applySynced(connection(port, now: now), now: now) }
        XCTAssertEqual(pass(sync, tracker, now: &now), Array(1...300))
        XCTAssertEqual(pass(sync, tracker, now: &now), [], "nothing moved")
        // Packets on one: it alone goes again.
        var moved = connection(17, now: now)
        moved.packetsReply += 1
        moved.expiresAt = now + 400 * Self.second
        tracker.applySynced(moved, now: now)
        XCTAssertEqual(pass(sync, tracker, now: &now), [17])
        // A removal moves the table's last connection into the freed slot: the one moved, and
        // a new one, go; the rest do not.
        XCTAssertTrue(tracker.removeSynced(connection(5, now: now).key))
        tracker.applySynced(connection(1000, now: now), now: now)
        let handed = pass(sync, tracker, now: &now)
        XCTAssertTrue(handed.contains(1000))
        XCTAssertFalse(handed.contains(5))
        XCTAssertLessThanOrEqual(handed.count, 2)
        XCTAssertEqual(pass(sync, tracker, now: &now), [])
    }

    func testAConnectionLostToAFullRingIsHandedOverAtTheNextLook() {
        let tracker = ConnectionTracker(policy: Policy(), capacity: 4096)
        let sync = WorkerSync(capacity: 1024)
        var now: UInt64 = 10 * Self.second
        for port in UInt16(1)...1500 { tracker.applySynced(connection(port, now: now), now: now) }
        // The sync thread does not drain during the first pass: the ring (1,024) takes what
        // fits of the slices and loses the rest, look after look.
        for _ in 0..<Int(WorkerSync.sweepPeriod / WorkerSync.sliceInterval) {
            now += WorkerSync.sliceInterval
            sync.sweep(tracker, now: now)
        }
        var first: Set<UInt16> = []
        sync.ring.drain { first.insert($0.connection.key.sourcePort) }
        let lost = sync.ring.takeLost()
        XCTAssertGreaterThan(lost, 0)
        XCTAssertEqual(first.count, 1024)
        let second = pass(sync, tracker, now: &now)
        XCTAssertEqual(Set(second), Set(1...1500).subtracting(first), "exactly the lost ones")
    }
}
