import SeqwallTestSupport
@testable import SeqwallCore
import Testing

// The state file's encoding (StateSnapshot), ageing on load, and connections restored into a
// new tracker (ConnectionTracker+Restore.swift), on TrackerLab's fake clock.

/// The snapshot's wall time in these tests (any fixed instant).
private let savedWallTime: UInt64 = 1_700_000_000 * nanosecondsPerSecond
/// The restarted process's monotonic clock: unrelated to the old one.
private let restartedMonotonic: UInt64 = 777 * nanosecondsPerSecond

extension Lab {
    /// The lab's table as a state file, taken now, every connection on queue `queue`.
    func snapshot(queue: UInt16 = 3) -> [UInt8] {
        var encoder = StateSnapshot.Encoder(wallTime: savedWallTime, monotonicNow: now)
        _ = tracker.table.forEachSlot(from: 0, examining: tracker.table.capacity) { _, connection in
            encoder.append(connection, queue: queue)
        }
        return encoder.finish()
    }

    /// What a restart does: the table through a state file, read `downtime` seconds later by a
    /// new tracker (same policy unless given) whose clock is unrelated to this one. The new
    /// lab carries on where this one stopped (ports, next sequence numbers).
    func restarted(downtime: UInt64, policy: Policy? = nil) throws -> (lab: Lab, loaded: StateSnapshot.Loaded) {
        let next = Lab(family: family, policy: policy ?? tracker.policy, clientISN: clientISN, serverISN: serverISN)
        next.now = restartedMonotonic
        let loaded = try StateSnapshot.decode(snapshot(), maximumRecords: 1000,
                                              wallNow: savedWallTime + downtime * nanosecondsPerSecond,
                                              monotonicNow: next.now)
        for entry in loaded.entries { #expect(next.tracker.restore(entry.connection, now: next.now) == .restored) }
        next.clientPort = clientPort
        next.serverPort = serverPort
        next.clientNext = clientNext
        next.serverNext = serverNext
        next.hook = hook
        next.window = window
        return (next, loaded)
    }
}

/// Window scale 7 and SACK both ways, as Linux sends them.
private let synOptions: [TCPOptionSpec] = [.mss(1460), .sackPermitted, .windowScale(7)]

private func established(_ family: Family) -> Lab {
    let lab = Lab(family: family)
    lab.handshake(clientOptions: synOptions, serverOptions: synOptions)
    #expect(lab.data(.client, 1000) == .accept)
    #expect(lab.data(.server, 3000) == .accept)
    #expect(lab.ackAll(.client) == .accept)
    return lab
}

@Suite("State file: encoding and ageing")
struct StateSnapshotEncodingTests {
    @Test func crc32MatchesTheStandardCheckValue() {
        var crc = CRC32()
        crc.update(Array("123456789".utf8))
        #expect(crc.value == 0xCBF4_3926)
    }

    @Test func emptyTableIsAHeaderOnly() throws {
        var encoder = StateSnapshot.Encoder(wallTime: savedWallTime, monotonicNow: 5)
        let bytes = encoder.finish()
        #expect(bytes.count == StateSnapshot.headerLength)
        #expect(Array(bytes.prefix(8)) == Array("SQWLSTAT".utf8))
        #expect(Array(bytes[8..<12]) == [0x04, 0x03, 0x02, 0x01])   // little-endian byte-order mark
        let loaded = try StateSnapshot.decode(bytes, maximumRecords: 0, wallNow: savedWallTime, monotonicNow: 9)
        #expect(loaded.entries.isEmpty && loaded.expired == 0 && loaded.savedAt == savedWallTime)
    }

    // Every field comes back; lifetimes are shortened by the downtime and moved to the new
    // clock, ages lengthened by it.
    @Test(arguments: Family.allCases) func roundTripAgesByTheDowntime(family: Family) throws {
        let lab = established(family)
        let before = try #require(lab.connection)
        lab.advance(seconds: 30)
        let (next, loaded) = try lab.restarted(downtime: 7)
        #expect(loaded.downtime == 7 * nanosecondsPerSecond)
        #expect(loaded.expired == 0)
        let entry = try #require(loaded.entries.first)
        #expect(loaded.entries.count == 1 && entry.queue == 3)

        var expected = before
        expected.expiresAt = restartedMonotonic + (before.expiresAt - lab.now) - 7 * nanosecondsPerSecond
        expected.createdAt = restartedMonotonic - (lab.now - before.createdAt) - 7 * nanosecondsPerSecond
        expected.wheelTick = 0   // the table's own bookkeeping, not stored
        #expect(entry.connection == expected)

        // In the table: the same, with both sides relearning.
        let restored = try #require(next.connection)
        expected.original.flags.insert(.relearning)
        expected.reply.flags.insert(.relearning)
        expected.wheelTick = restored.wheelTick
        #expect(restored == expected)
        #expect(next.secondsLeft == before.secondsLeft(now: lab.now) - 7)
    }

    @Test func whatRanOutWhileDownIsDropped() throws {
        let lab = established(.ipv4)
        // Into TIME_WAIT: 120 s left.
        #expect(lab.send(.client, [.fin, .ack], seq: lab.clientNext, ack: lab.serverNext) == .accept)
        #expect(lab.send(.server, [.fin, .ack], seq: lab.serverNext, ack: lab.clientNext &+ 1) == .accept)
        #expect(lab.send(.client, .ack, seq: lab.clientNext &+ 1, ack: lab.serverNext &+ 1) == .accept)
        #expect(lab.state == .timeWait && lab.secondsLeft == 120)
        let bytes = lab.snapshot()
        func load(after seconds: UInt64) throws -> StateSnapshot.Loaded {
            try StateSnapshot.decode(bytes, maximumRecords: 10, wallNow: savedWallTime + seconds * nanosecondsPerSecond,
                                     monotonicNow: restartedMonotonic)
        }
        let nearlyGone = try load(after: 119)
        #expect(nearlyGone.entries.count == 1 && nearlyGone.expired == 0)
        #expect(nearlyGone.entries.first?.connection.expiresAt == restartedMonotonic + nanosecondsPerSecond)
        let gone = try load(after: 120)
        #expect(gone.entries.isEmpty && gone.expired == 1)
        let longGone = try load(after: 86_400 * 365)
        #expect(longGone.entries.isEmpty && longGone.expired == 1)
    }

    // A wall clock set back while seqwall was down: no downtime rather than a huge one.
    @Test func clockSetBackCountsAsNoDowntime() throws {
        let lab = established(.ipv4)
        let left = try #require(lab.secondsLeft)
        let loaded = try StateSnapshot.decode(lab.snapshot(), maximumRecords: 10,
                                              wallNow: savedWallTime - 3600 * nanosecondsPerSecond,
                                              monotonicNow: restartedMonotonic)
        #expect(loaded.downtime == 0)
        #expect(loaded.entries.first?.connection.secondsLeft(now: restartedMonotonic) == left)
    }

    @Test func expiredConnectionsAreNotWritten() {
        let lab = established(.ipv4)
        let left = lab.secondsLeft ?? 0
        lab.advance(seconds: left + 1)
        #expect(StateSnapshot.decodeCount(lab.snapshot()) == 0)
    }
}

extension StateSnapshot {
    /// The record count a header claims.
    static func decodeCount(_ bytes: [UInt8]) -> Int {
        Int(bytes[20]) | Int(bytes[21]) << 8 | Int(bytes[22]) << 16 | Int(bytes[23]) << 24
    }
}

@Suite("State file: every kind of bad file is refused whole")
struct StateSnapshotCorruptionTests {
    /// A good file of two connections (both families).
    static func goodFile() -> [UInt8] {
        var encoder = StateSnapshot.Encoder(wallTime: savedWallTime, monotonicNow: 10_000 * nanosecondsPerSecond)
        for family in Family.allCases {
            let lab = established(family)
            encoder.append(lab.connection!, queue: 0)
        }
        return encoder.finish()
    }

    static func decode(_ bytes: [UInt8], maximumRecords: Int = 100) -> StateSnapshot.DecodeError? {
        do {
            _ = try StateSnapshot.decode(bytes, maximumRecords: maximumRecords, wallNow: savedWallTime,
                                         monotonicNow: restartedMonotonic)
            return nil
        } catch {
            return error
        }
    }

    /// `bytes` with its checksum made right again, to reach the checks behind it.
    static func resealed(_ bytes: [UInt8]) -> [UInt8] {
        var copy = bytes
        StateSnapshot.store32(StateSnapshot.checksum(of: copy), at: 44, in: &copy)
        return copy
    }

    @Test func theGoodFileDecodes() {
        #expect(Self.decode(Self.goodFile()) == nil)
        #expect(Self.goodFile().count == 48 + 2 * 152)
    }

    @Test func emptyAndCutOffFiles() {
        let good = Self.goodFile()
        #expect(Self.decode([]) == .truncated(expected: 48, actual: 0))
        #expect(Self.decode(Array(good.prefix(5))) == .truncated(expected: 48, actual: 5))
        #expect(Self.decode(Array(good.prefix(47))) == .truncated(expected: 48, actual: 47))
        #expect(Self.decode(Array(good.prefix(48 + 152 + 100))) == .truncated(expected: 352, actual: 300))
        // Every length short of the whole is refused, none crashes.
        for length in 0..<good.count {
            #expect(Self.decode(Array(good.prefix(length))) != nil, "prefix \(length)")
        }
    }

    @Test func somethingElse() {
        #expect(Self.decode(Array("#!/bin/sh\necho hello, this is no state file at all\n".utf8)) == .notAStateFile)
        #expect(Self.decode(Array("SQW".utf8)) == .truncated(expected: 48, actual: 3))
        #expect(Self.decode(Array("XQW".utf8)) == .notAStateFile)
        var bytes = Self.goodFile()
        bytes[0] = UInt8(ascii: "s")
        #expect(Self.decode(bytes) == .notAStateFile)
    }

    @Test func otherByteOrder() {
        var bytes = Self.goodFile()
        bytes.replaceSubrange(8..<12, with: [0x01, 0x02, 0x03, 0x04])
        #expect(Self.decode(bytes) == .wrongByteOrder)
        bytes.replaceSubrange(8..<12, with: [0x01, 0x00, 0x00, 0x00])
        #expect(Self.decode(bytes) == .badLayout("byte-order mark 0x1"))
    }

    @Test func otherVersionOrLayout() {
        var bytes = Self.goodFile()
        bytes[12] = 2
        #expect(Self.decode(bytes) == .unsupportedVersion(2))
        bytes = Self.goodFile()
        bytes[13] = 1
        #expect(Self.decode(bytes) == .unsupportedVersion(257))
        bytes = Self.goodFile()
        bytes[16] = 160
        #expect(Self.decode(bytes) == .badLayout("record length 160"))
        bytes = Self.goodFile()
        bytes[14] = 64
        #expect(Self.decode(bytes) == .badLayout("header length 64"))
    }

    @Test func tooManyRecords() {
        let good = Self.goodFile()
        #expect(Self.decode(good, maximumRecords: 1) == .tooLarge(records: 2, limit: 1))
        var bytes = good
        bytes[23] = 0x40   // a count of about a billion, in a small file
        #expect(Self.decode(bytes, maximumRecords: 1 << 20) == .tooLarge(records: 0x4000_0002, limit: 1 << 20))
        bytes = good
        bytes[20] = 3      // one more than there is
        #expect(Self.decode(bytes) == .truncated(expected: 48 + 3 * 152, actual: good.count))
    }

    @Test func extraBytes() {
        #expect(Self.decode(Self.goodFile() + [0]) == .trailingBytes(1))
    }

    // CRC-32 catches every error within 32 bits: each byte changed anywhere is refused.
    @Test func everyChangedByteIsRefused() {
        let good = Self.goodFile()
        for index in good.indices {
            var bytes = good
            bytes[index] ^= 0x5A
            #expect(Self.decode(bytes) != nil, "byte \(index)")
        }
        var bytes = good
        bytes[48 + 152 + 70] ^= 1   // one bit of the second record's peer data
        #expect(Self.decode(bytes) == .badChecksum)
    }

    // Records that pass the checksum but hold what no tracker makes. (Every bit of the status
    // and peer-flag bytes has a meaning today, so no flag value is impossible.)
    @Test func impossibleRecords() {
        let good = Self.goodFile()
        let second = 48 + 152
        let cases: [(offset: Int, value: UInt8, reason: String)] = [
            (2, 47, "protocol 47"),
            (2, 17, "state ESTABLISHED for udp"),
            (3, 10, "state 10"),
            (5, 2, "direction 2"),
            (6, 6, "last index 6"),
            (7, 2, "last direction 2"),
            (58, 15, "last window scale 15"),
            (64 + 16, 15, "window scale 15"),
            (61, 0x40, "close progress 0x40"),
        ]
        for item in cases {
            var bytes = good
            bytes[second + item.offset] = item.value
            #expect(Self.decode(Self.resealed(bytes)) == .badRecord(index: 1, reason: item.reason), "\(item.reason)")
        }
        // An IPv4-mapped source with an IPv6 destination.
        var bytes = good
        bytes.replaceSubrange((second + 8)..<(second + 24), with: good[(48 + 8)..<(48 + 24)])
        #expect(Self.decode(Self.resealed(bytes)) == .badRecord(index: 1, reason: "mixed address families"))
    }
}

@Suite("State file: restored connections")
struct RestoredConnectionTests {
    // The close bookkeeping crosses a restart: the endpoint in TIME_WAIT stays protected, the
    // RSTs of the passive closer's side are still dropped, the active closer's own still judged.
    @Test(arguments: Family.allCases) func timeWaitKeepsItsEndpoint(family: Family) throws {
        let old = established(family)
        old.closeToTimeWait()
        let closing = try #require(old.connection?.closing)
        #expect(closing.inTimeWait(.original) && !closing.inTimeWait(.reply))
        let (lab, _) = try old.restarted(downtime: 2)
        #expect(lab.connection?.closing == closing)
        #expect(lab.send(.server, .rst, seq: lab.serverNext, ack: 0) == .drop(.timeWaitRST))
        #expect(lab.send(.client, .rst, seq: lab.clientNext, ack: 0) == .accept)
        #expect(lab.state == .close)
    }

    // A file written before the bookkeeping (its byte is 0): the side whose FIN began the
    // close is known from its close-init flag, so its repeated FIN still closes nothing more;
    // nothing is known to be acknowledged, so no RST is dropped as `time-wait-rst`.
    @Test(arguments: Family.allCases) func fileWithoutCloseBookkeeping(family: Family) throws {
        let old = established(family)
        #expect(old.fin(.client) == .accept)
        var bytes = old.snapshot()
        #expect(bytes[48 + 61] == CloseProgress([.finOriginal, .activeOriginal]).rawValue)
        bytes[48 + 61] = 0
        StateSnapshot.store32(StateSnapshot.checksum(of: bytes), at: 44, in: &bytes)
        let loaded = try StateSnapshot.decode(bytes, maximumRecords: 10, wallNow: savedWallTime,
                                              monotonicNow: restartedMonotonic)
        let connection = try #require(loaded.entries.first?.connection)
        #expect(connection.closing == [.finOriginal, .activeOriginal])

        let timeWait = established(family)
        timeWait.closeToTimeWait()
        bytes = timeWait.snapshot()
        bytes[48 + 61] = 0
        StateSnapshot.store32(StateSnapshot.checksum(of: bytes), at: 44, in: &bytes)
        let restored = try #require(try StateSnapshot.decode(bytes, maximumRecords: 10, wallNow: savedWallTime,
                                                             monotonicNow: restartedMonotonic).entries.first)
        #expect(restored.connection.closing == [.finOriginal, .activeOriginal])
        #expect(!restored.connection.closing.inTimeWait(.original))
    }

    // The connection carries on as if nothing happened: data both ways, a clean close.
    @Test(arguments: Family.allCases) func carriesOn(family: Family) throws {
        let (lab, _) = try established(family).restarted(downtime: 2)
        #expect(lab.data(.client, 1200) == .accept)
        #expect(lab.data(.server, 800) == .accept)
        #expect(lab.ackAll(.client) == .accept)
        let connection = try #require(lab.connection)
        #expect(!connection.original.flags.contains(.relearning) && !connection.reply.flags.contains(.relearning))
        #expect(lab.send(.client, [.fin, .ack], seq: lab.clientNext, ack: lab.serverNext) == .accept)
        #expect(lab.send(.server, [.fin, .ack], seq: lab.serverNext, ack: lab.clientNext &+ 1) == .accept)
        #expect(lab.send(.client, .ack, seq: lab.clientNext &+ 1, ack: lab.serverNext &+ 1) == .accept)
        #expect(lab.state == .timeWait)
        lab.expectCounters(seen: 6, accepted: 6, created: 0, destroyed: 0, halfOpen: 0)
    }

    /// An established connection whose two sides sent megabytes while seqwall was down: more
    /// than a whole window (64240 << 7, about 8 MB).
    static func movedOnWhileDown(_ family: Family, client: UInt32 = 20_000_000, server: UInt32 = 12_000_000) throws -> Lab {
        let lab = established(family)
        lab.clientNext &+= client
        lab.serverNext &+= server
        return try lab.restarted(downtime: 4).lab
    }

    // Without the grace, the first packets after the restart are false drops.
    @Test(arguments: Family.allCases) func staleWindowsWouldDrop(family: Family) throws {
        let lab = try Self.movedOnWhileDown(family, server: 0)
        let slot = try #require(lab.tracker.table.find(lab.key)).slot
        lab.tracker.table.connection(at: slot).pointee.original.flags.remove(.relearning)
        lab.tracker.table.connection(at: slot).pointee.reply.flags.remove(.relearning)
        #expect(lab.data(.client, 1000) == .drop(.seqAboveWindow))
        #expect(lab.ackAll(.server) == .drop(.ackAboveSent))
    }

    // With it, each side's data is learned forward from the other's segments until it speaks
    // itself; then every check applies in full again.
    @Test(arguments: Family.allCases) func windowsCatchUpThenAreCheckedInFull(family: Family) throws {
        let lab = try Self.movedOnWhileDown(family)
        #expect(lab.data(.client, 1000) == .accept)       // its ACK moves the server's end forward
        #expect(lab.data(.client, 1000) == .accept)       // the server has not spoken yet
        var connection = try #require(lab.connection)
        // The client spoke, but the server has not acknowledged the client's end yet; the
        // client's second ACK, at the end the first one taught, confirmed the server's.
        #expect(connection.original.flags.contains(.relearning) && connection.relearned.contains(.originalSpoke))
        #expect(connection.reply.flags.contains(.relearning) && connection.relearned == [.originalSpoke, .replyEndConfirmed])
        #expect(lab.data(.server, 500) == .accept)        // checked in full: the client spoke
        #expect(lab.ackAll(.client) == .accept)
        connection = try #require(lab.connection)
        #expect(!connection.original.flags.contains(.relearning) && !connection.reply.flags.contains(.relearning))
        #expect(connection.original.end == lab.clientNext && connection.reply.end == lab.serverNext)

        // The grace is over: conditions I and III drop again.
        #expect(lab.send(.client, .ack, seq: lab.clientNext &+ 20_000_000, ack: lab.serverNext) == .drop(.seqAboveWindow))
        #expect(lab.send(.client, .ack, seq: lab.clientNext, ack: lab.serverNext &+ 5_000_000) == .drop(.ackAboveSent))
        #expect(lab.send(.server, .ack, seq: lab.serverNext, ack: lab.clientNext &+ 5_000_000) == .drop(.ackAboveSent))
        #expect(lab.data(.server, 100) == .accept)
        #expect(lab.data(.client, 100) == .accept)
    }

    // After a restart (or a takeover) a sender whose ACKs were lost in the gap retransmits
    // from its oldest unacknowledged byte, while the receiver, which got it all, acknowledges
    // the top. The retransmission is accepted but proves nothing about where the sender
    // stands: the receiver's ACKs must still move its end forward, or every one of them is
    // dropped as ack-above-sent and the sender retransmits the same segment for ever.
    @Test(arguments: Family.allCases) func aRetransmissionDoesNotEndTheGrace(family: Family) throws {
        // The server sent 600,000 bytes seqwall never saw; the client got them all, the
        // server heard no ACK of the last 3,000.
        let lab = try Self.movedOnWhileDown(family, client: 0, server: 600_000)
        let top = lab.serverNext
        #expect(lab.send(.server, [.ack, .psh], seq: top &- 3000, ack: lab.clientNext, payload: 1000) == .accept)
        var connection = try #require(lab.connection)
        #expect(connection.reply.flags.contains(.relearning) && connection.relearned == [.replySpoke, .originalEndConfirmed])
        #expect(connection.reply.end == top &- 2000)
        // The client's duplicate ACKs of the top: the first moves the server's end, the
        // second confirms it.
        #expect(lab.ackAll(.client) == .accept)
        #expect(lab.ackAll(.client) == .accept)
        connection = try #require(lab.connection)
        #expect(connection.reply.end == top && !connection.reply.flags.contains(.relearning))
        #expect(lab.data(.server, 1000) == .accept)
        #expect(lab.ackAll(.client) == .accept)
        // The grace is over for the server: an ACK of data it never sent drops again.
        #expect(lab.send(.client, .ack, seq: lab.clientNext, ack: lab.serverNext &+ 100_000) == .drop(.ackAboveSent))
    }

    // Without the second condition the retransmission above would end the grace, as it did
    // before: the case the test above guards, shown to drop.
    @Test(arguments: Family.allCases) func aGraceEndedByTheRetransmissionWouldDrop(family: Family) throws {
        let lab = try Self.movedOnWhileDown(family, client: 0, server: 600_000)
        #expect(lab.send(.server, [.ack, .psh], seq: lab.serverNext &- 3000, ack: lab.clientNext, payload: 1000) == .accept)
        let slot = try #require(lab.tracker.table.find(lab.key)).slot
        lab.tracker.table.connection(at: slot).pointee.reply.flags.remove(.relearning)
        lab.tracker.table.connection(at: slot).pointee.relearned = []
        #expect(lab.ackAll(.client) == .drop(.ackAboveSent))
    }

    // A side that only sends data (a download's server) ends its grace once the receiver's
    // ACK stops moving its end, and a side whose end is confirmed but which has not spoken
    // keeps its maxEnd relearning: the data the other side sends is judged against the
    // window its fresh ACKs give, not the restored one.
    @Test(arguments: Family.allCases) func confirmedBeforeSpeaking(family: Family) throws {
        let lab = try Self.movedOnWhileDown(family, client: 20_000_000, server: 0)
        // The server's end has not moved: the client's ACK confirms it at once.
        #expect(lab.ackAll(.client) == .accept)
        var connection = try #require(lab.connection)
        #expect(connection.relearned == [.originalSpoke, .replyEndConfirmed] && connection.relearned.contains(.originalSpoke))
        // The client's data is far beyond the window the server's restored ACKs allowed,
        // and the server has not spoken: still learned forward.
        #expect(lab.data(.client, 1000) == .accept)
        // The server speaks: its grace ends; the client's end is confirmed by the same ACK.
        #expect(lab.ackAll(.server) == .accept)
        connection = try #require(lab.connection)
        #expect(!connection.original.flags.contains(.relearning) && !connection.reply.flags.contains(.relearning))
        #expect(connection.relearned == [])
        #expect(lab.send(.client, .ack, seq: lab.clientNext &+ 20_000_000, ack: lab.serverNext) == .drop(.seqAboveWindow))
    }

    // An RST is never learned from: it is judged on the data as restored (RFC 5961).
    @Test(arguments: Family.allCases) func resetsAreCheckedOnTheRestoredData(family: Family) throws {
        let lab = try Self.movedOnWhileDown(family)
        #expect(lab.send(.client, .rst, seq: lab.clientNext, ack: 0) == .drop(.rstOutOfWindow))
        #expect(lab.state == .established)
        // Once the connection has caught up, the exact RST ends it.
        #expect(lab.data(.client, 10) == .accept)
        #expect(lab.data(.server, 10) == .accept)
        #expect(lab.send(.server, .rst, seq: lab.serverNext, ack: 0) == .accept)
        #expect(lab.state == .close)
    }

    // A half-open connection counts as before: in the half-open count, toward its source's
    // limit and its rule's, and gives the counts back when its handshake completes.
    @Test func halfOpenCountsAreRestored() throws {
        let family = Family.ipv4
        var policy = Lab.defaultPolicy(family)
        policy.limits.halfOpenPerSource = 2
        policy.rules.insert(Rule(action: .pass, direction: .inbound, ports: [PortRange(8000)], halfOpenPerSource: 1,
                                 location: SeqwallCore.SourceLocation(file: "test.rules", line: 1, column: 1)),
                            at: 0)
        let before = Lab(family: family, policy: policy)
        let client = family.client
        #expect(before.syn(from: client, port: 1, serverPort: 8000) == .accept)
        #expect(before.syn(from: client, port: 2, serverPort: 80) == .accept)
        let (lab, loaded) = try before.restarted(downtime: 1)
        #expect(loaded.entries.count == 2)
        let ruleID = lab.tracker.limiter.ruleIDs[0]
        #expect(lab.tracker.halfOpenCount == 2)
        #expect(lab.sourceCount(client) == 2)
        #expect(lab.sourceCount(client, scope: ruleID) == 1)
        // The limits hold with the restored counts.
        #expect(lab.syn(from: client, port: 3, serverPort: 80) == .drop(.halfOpenLimit))
        #expect(lab.syn(from: family.otherClient, port: 3, serverPort: 8000) == .accept)
        // The restored SYN's handshake completes and releases both counts.
        #expect(lab.synAck(to: client, port: 1, serverPort: 8000) == .accept)
        #expect(lab.completingAck(from: client, port: 1, serverPort: 8000) == .accept)
        #expect(lab.sourceCount(client) == 1)
        #expect(lab.sourceCount(client, scope: ruleID) == 0)
        #expect(lab.tracker.halfOpenCount == 2)   // port 2's and the other client's
        #expect(lab.syn(from: client, port: 4, serverPort: 8000) == .accept)
    }

    // A restored unanswered SYN is a candidate for eviction at the half-open limit.
    @Test func restoredUnrepliedSynsCanBeEvicted() throws {
        let family = Family.ipv4
        var policy = Lab.defaultPolicy(family)
        policy.limits.halfOpen = 1
        let before = Lab(family: family, policy: policy)
        #expect(before.syn(from: family.client, port: 1) == .accept)
        let (lab, _) = try before.restarted(downtime: 1)
        #expect(lab.tracker.halfOpenCount == 1)
        #expect(lab.syn(from: family.otherClient, port: 1) == .accept)
        #expect(lab.tracker.counters.halfOpenEvictions == 1)
        #expect(lab.tracker.halfOpenCount == 1)
    }

    @Test func outcomes() throws {
        let lab = established(.ipv4)
        var connection = try #require(lab.connection)
        let tracker = ConnectionTracker(policy: lab.tracker.policy, capacity: 1)
        let now = restartedMonotonic
        connection.expiresAt = now
        #expect(tracker.restore(connection, now: now) == .expired)
        connection.expiresAt = now + 1
        #expect(tracker.restore(connection, now: now) == .restored)
        #expect(tracker.restore(connection, now: now) == .duplicate)
        connection.key.sourcePort &+= 1
        #expect(tracker.restore(connection, now: now) == .tableFull)
        #expect(tracker.table.count == 1 && tracker.counters.created == 0)
    }
}

@Suite("State file: size")
struct StateSnapshotSizeTests {
    // A full table's worth of distinct connections, both families, through a file and back.
    @Test func manyConnectionsRoundTrip() throws {
        var encoder = StateSnapshot.Encoder(wallTime: savedWallTime, monotonicNow: 0, reservingRecords: 20_000)
        var connections: [Connection] = []
        for index in 0..<20_000 {
            let family = index % 2 == 0 ? Family.ipv4 : Family.ipv6
            var connection = Connection(key: FlowKey(source: family.client, destination: family.server,
                                                     sourcePort: UInt16(1024 + index / 2), destinationPort: 443),
                                        direction: .inbound)
            connection.state = .established
            connection.original.end = UInt32(truncatingIfNeeded: index &* 2_654_435_761)
            connection.reply.maxAck = UInt32(index)
            connection.expiresAt = UInt64(index + 1) * nanosecondsPerSecond
            connection.bytesReply = UInt64(index) << 33
            connections.append(connection)
            encoder.append(connection, queue: UInt16(index % 4))
        }
        let bytes = encoder.finish()
        #expect(bytes.count == StateSnapshot.headerLength + 20_000 * StateSnapshot.recordLength)
        let loaded = try StateSnapshot.decode(bytes, maximumRecords: 20_000, wallNow: savedWallTime, monotonicNow: 0)
        #expect(loaded.entries.count == 20_000)
        #expect(loaded.entries.map(\.connection) == connections)
        #expect(loaded.entries.map(\.queue) == (0..<20_000).map { UInt16($0 % 4) })
    }
}
