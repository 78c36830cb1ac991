import SeqwallTestSupport
@testable import SeqwallCore
import Testing

// Connections from a sync peer put into a tracker (ConnectionTracker+Sync.swift): the peer's
// record through the wire encoding (StateSnapshot.appendRecord/decodeRecord), applied on
// another node, whose packets then carry on.

@Suite("Sync: applying a peer's connections")
struct SyncApplyTests {
    @Test(arguments: Family.allCases)
    func aSyncedConnectionCarriesOnOnTheOtherNode(family: Family) throws {
        let master = Lab(family: family)
        master.handshake()
        #expect(master.data(.client, 1000) == .accept)
        #expect(master.data(.server, 2000) == .accept)
        let connection = try #require(master.connection)
        var bytes: [UInt8] = []
        StateSnapshot.appendRecord(connection, queue: 0, monotonicNow: master.now, to: &bytes)
        #expect(bytes.count == StateSnapshot.recordLength)

        let backup = Lab(family: family)
        backup.now = 5 * nanosecondsPerSecond
        let decoded = try bytes.withUnsafeBytes { try StateSnapshot.decodeRecord($0, at: 0, monotonicNow: backup.now).get() }
        #expect(decoded.entry.connection.expiresAt - backup.now == connection.expiresAt - master.now)
        backup.tracker.recordsEvents = true
        #expect(backup.tracker.applySynced(decoded.entry.connection, now: backup.now) == .restored)
        #expect(backup.tracker.events.count == 0, "a peer's change is never an event to send back")
        // The same again is an update in place, not a duplicate.
        #expect(backup.tracker.applySynced(decoded.entry.connection, now: backup.now) == .restored)
        #expect(backup.tracker.connectionCount == 1)
        #expect(backup.connection?.state == .established)

        // Failover: the backup's packets continue the master's connection.
        backup.clientPort = master.clientPort
        backup.serverPort = master.serverPort
        backup.clientNext = master.clientNext
        backup.serverNext = master.serverNext
        #expect(backup.data(.client, 500) == .accept)
        #expect(backup.data(.server, 500) == .accept)
        #expect(backup.ackAll(.client) == .accept)

        #expect(backup.tracker.removeSynced(connection.key))
        #expect(backup.tracker.connectionCount == 0)
        #expect(backup.tracker.events.count == 0)
    }

    @Test func aTruncatedRecordIsRefused() {
        let bytes = [UInt8](repeating: 0, count: StateSnapshot.recordLength - 1)
        let result = bytes.withUnsafeBytes { StateSnapshot.decodeRecord($0, at: 0, monotonicNow: 0) }
        guard case .failure = result else {
            Issue.record("a short record decoded")
            return
        }
    }
}
