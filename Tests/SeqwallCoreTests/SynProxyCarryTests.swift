import SeqwallTestSupport
@testable import SeqwallCore
import Testing

/// A proxied connection's SynProxyState carried through the state file
/// (StateSnapshot+SynProxy.swift) and restored into a new tracker, which then translates its
/// packets as the old one did.
@Suite("SYN proxy state carried")
struct SynProxyCarryTests {
    static let wallTime: UInt64 = 1_700_000_000 * 1_000_000_000

    static func state() -> SynProxyState {
        var state = SynProxyState(cookie: 0xDEAD_BEEF, clientISN: 1000,
                                  options: SynCookieOptions(mss: 1440, windowScale: 7, sackPermitted: true,
                                                            ecn: false, timestamps: true),
                                  advertisedWindowScale: 9, clientWindow: 512, clientTimestamp: 0x1234_5678,
                                  proxyTimestamp: 0x8765_4321)
        state.sequenceOffset = 0x0102_0304
        state.timestampOffset = 0xFFFF_0000
        state.serverWindowScale = 14
        state.serverAnswered = true
        return state
    }

    static func decode(_ bytes: [UInt8]) -> SynProxyState? {
        bytes.withUnsafeBytes { StateSnapshot.decodeProxyState($0, at: 0) }
    }

    @Test func stateRoundTripsAndIsChecked() {
        var bytes: [UInt8] = []
        StateSnapshot.appendProxyState(Self.state(), to: &bytes)
        #expect(bytes.count == StateSnapshot.proxyStateLength)
        #expect(Self.decode(bytes) == Self.state())
        var bare = SynProxyState(cookie: 1, clientISN: 2, options: SynCookieOptions(mss: 536),
                                 advertisedWindowScale: nil, clientWindow: 0, clientTimestamp: 0, proxyTimestamp: 0)
        bare.serverWindowScale = nil
        var bareBytes: [UInt8] = []
        StateSnapshot.appendProxyState(bare, to: &bareBytes)
        #expect(Self.decode(bareBytes) == bare)
        // A shift above 14, unknown option or flag bits: refused.
        for (offset, value) in [(10, UInt8(15)), (12, 200), (13, 15), (11, 8), (32, 2)] {
            var bad = bytes
            bad[offset] = value
            #expect(Self.decode(bad) == nil, "byte \(offset) = \(value)")
        }
        #expect(Self.decode(Array(bytes.dropLast())) == nil)
    }

    /// The tracker's table as a state file, each proxied connection with its state.
    static func snapshot(_ tracker: ConnectionTracker, now: UInt64) -> [UInt8] {
        var encoder = StateSnapshot.Encoder(wallTime: wallTime, monotonicNow: now)
        _ = tracker.forEachConnection(from: .start, examining: tracker.table.capacity) { connection, proxy in
            encoder.append(connection, queue: 0, proxy: proxy)
        }
        return encoder.finish()
    }

    /// `packet` through `tracker`, and the bytes it leaves with.
    static func translated(_ tracker: ConnectionTracker, _ packet: [UInt8], now: UInt64) -> (Verdict, [UInt8]) {
        var bytes = packet
        let verdict = bytes.withUnsafeMutableBytes {
            tracker.process(UnsafeRawBufferPointer($0), wireLength: packet.count, hook: .input, now: now)
        }
        return (verdict, bytes)
    }

    @Test func restartedTrackerTranslatesAsTheOldOne() throws {
        let old = SynProxyEngineTests.tracker()
        let data = try SynProxyEngineTests.establish(old)
        let now: UInt64 = 1_000_000_000
        let file = Self.snapshot(old, now: now)
        let later: UInt64 = 50_000_000_000
        let loaded = try StateSnapshot.decode(file, maximumRecords: 10, wallNow: Self.wallTime + 1_000_000_000,
                                              monotonicNow: later)
        let entry = try #require(loaded.entries.first)
        let proxy = try #require(entry.proxy)
        #expect(proxy.serverAnswered && proxy.sequenceOffset == 5000 &- proxy.cookie)

        let restarted = SynProxyEngineTests.tracker()
        #expect(restarted.restore(entry.connection, proxy: proxy, now: later) == .restored)
        let (connection, _) = try #require(restarted.connection(for: entry.connection.key))
        #expect(connection.proxied)

        // The client's data and the server's answer leave both trackers with the same bytes.
        let answer = SynProxyEngineTests.fromServer(sequence: 5001, acknowledgment: 1011, flags: [.ack, .psh],
                                                    payloadLength: 20)
        for packet in [data.build(), answer.build()] {
            let before = Self.translated(old, packet, now: now + 1_000_000)
            let after = Self.translated(restarted, packet, now: later + 1_000_000)
            #expect(before.0 == .acceptRewritten && after.0 == .acceptRewritten)
            #expect(before.1 == after.1)
            #expect(before.1 != packet && tcpChecksumHolds(after.1))
        }

        // Restored without its state, the connection is an ordinary one.
        let plain = SynProxyEngineTests.tracker()
        #expect(plain.restore(entry.connection, now: later) == .restored)
        #expect(try #require(plain.connection(for: entry.connection.key)).0.proxied == false)
    }

    @Test func aFileWithoutProxiesIsLaidOutAsBefore() throws {
        let tracker = SynProxyEngineTests.tracker()
        #expect(SynProxyEngineTests.process(tracker, SynProxyEngineTests.syn(.ipv4, port: 8080)) == .accept)
        let file = Self.snapshot(tracker, now: 1_000_000_000)
        // No proxy section: the length field is 0 and the file is header, record, nothing more.
        #expect(file.count == StateSnapshot.headerLength + StateSnapshot.recordLength)
        #expect(file[40..<44].allSatisfy { $0 == 0 })
        let loaded = try StateSnapshot.decode(file, maximumRecords: 10, wallNow: Self.wallTime, monotonicNow: 5)
        #expect(loaded.entries.count == 1 && loaded.entries[0].proxy == nil)
    }

    @Test func aBadProxySectionIsRefused() throws {
        let tracker = SynProxyEngineTests.tracker()
        _ = try SynProxyEngineTests.establish(tracker)
        let file = Self.snapshot(tracker, now: 1_000_000_000)
        let section = StateSnapshot.headerLength + StateSnapshot.recordLength
        #expect(file.count == section + 4 + 4 + StateSnapshot.proxyStateLength)
        // Record index 1 of a file of one record, with the checksum made right again.
        var bad = file
        bad[section + 4] = 1
        StateSnapshot.store32(StateSnapshot.checksum(of: bad), at: StateSnapshot.checksumOffset, in: &bad)
        #expect(throws: StateSnapshot.DecodeError.badLayout("proxy section: record 1 out of range or repeated")) {
            try StateSnapshot.decode(bad, maximumRecords: 10, wallNow: Self.wallTime, monotonicNow: 5)
        }
        // A section whose length says less than it holds.
        var short = file
        short[40] = 8
        short.removeLast(StateSnapshot.proxyStateLength)
        StateSnapshot.store32(StateSnapshot.checksum(of: short), at: StateSnapshot.checksumOffset, in: &short)
        #expect(throws: StateSnapshot.DecodeError.badLayout("proxy section: 1 states in 8 bytes")) {
            try StateSnapshot.decode(short, maximumRecords: 10, wallNow: Self.wallTime, monotonicNow: 5)
        }
    }

    @Test func aPeersStateMakesTheSyncedConnectionProxied() throws {
        let master = SynProxyEngineTests.tracker()
        _ = try SynProxyEngineTests.establish(master)
        var synced: (Connection, SynProxyState)?
        _ = master.forEachConnection(from: .start, examining: master.table.capacity) { connection, proxy in
            if let proxy { synced = (connection, proxy) }
        }
        let (connection, state) = try #require(synced)
        let backup = SynProxyEngineTests.tracker()
        // Before the record: nothing to attach the state to.
        #expect(!backup.applySyncedProxy(state, key: connection.key))
        #expect(backup.applySynced(connection, now: 2_000_000_000) == .restored)
        #expect(try #require(backup.connection(for: connection.key)).0.proxied == false)
        // The other orientation is not this connection.
        #expect(!backup.applySyncedProxy(state, key: connection.key.reversed))
        #expect(backup.applySyncedProxy(state, key: connection.key))
        #expect(try #require(backup.connection(for: connection.key)).0.proxied)
        // An older copy, from before the server answered, does not undo the handshake; a later
        // record of the connection keeps it proxied.
        var older = state
        older.serverAnswered = false
        older.sequenceOffset = 0
        #expect(backup.applySyncedProxy(older, key: connection.key))
        #expect(backup.applySynced(connection, now: 2_000_000_000) == .restored)
        var found: SynProxyState?
        _ = backup.forEachConnection(from: .start, examining: backup.table.capacity) { _, proxy in found = proxy }
        #expect(found == state)
    }
}
