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

    // The backup's copy is as old as the last record: the master forwarded another 203,000
    // bytes of a download before it died, the client got them all, and the server, which
    // heard no ACK of the last 3,000, retransmits from its oldest unacknowledged byte through
    // the backup. The client's ACKs of the top must pass (its end moves forward) until one
    // confirms it; then the server's new data flows and the checks are whole again.
    @Test(arguments: Family.allCases)
    func aTakeoverBehindTheMasterCarriesOnAfterARetransmission(family: Family) throws {
        let master = Lab(family: family)
        master.handshake()
        #expect(master.data(.server, 1000) == .accept)
        #expect(master.ackAll(.client) == .accept)
        let connection = try #require(master.connection)
        var bytes: [UInt8] = []
        StateSnapshot.appendRecord(connection, queue: 0, monotonicNow: master.now, to: &bytes)
        for _ in 0..<200 {
            #expect(master.data(.server, 1000) == .accept)
            #expect(master.ackAll(.client) == .accept)
        }
        for _ in 0..<3 {
            #expect(master.data(.server, 1000) == .accept)   // their ACKs are lost with the master
        }

        let backup = Lab(family: family)
        let decoded = try bytes.withUnsafeBytes { try StateSnapshot.decodeRecord($0, at: 0, monotonicNow: backup.now).get() }
        #expect(backup.tracker.applySynced(decoded.entry.connection, now: backup.now) == .restored)
        backup.clientPort = master.clientPort
        backup.serverPort = master.serverPort
        backup.clientNext = master.clientNext
        backup.serverNext = master.serverNext
        let top = master.serverNext
        for _ in 0..<3 {
            // The server's retransmission of its oldest unacknowledged segment, and the
            // client's duplicate ACK of all three.
            #expect(backup.send(.server, [.ack, .psh], seq: top &- 3000, ack: backup.clientNext, payload: 1000) == .accept)
            #expect(backup.ackAll(.client) == .accept)
        }
        #expect(backup.data(.server, 1000) == .accept)
        #expect(backup.ackAll(.client) == .accept)
        let carried = try #require(backup.connection)
        #expect(!carried.original.flags.contains(.relearning) && !carried.reply.flags.contains(.relearning))
        #expect(backup.send(.client, .ack, seq: backup.clientNext, ack: backup.serverNext &+ 50_000) == .drop(.ackAboveSent))
        #expect(backup.tracker.counters[.ackAboveSent] == 1)
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
