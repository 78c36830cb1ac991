import SeqwallCore
@testable import SeqwallSync
import SeqwallTestSupport
import XCTest

/// The compact entry encoding of kinds 9 and 10 (SyncCompactRecord, docs/sync-protocol.md,
/// Compact entries) and when a session uses it.
final class SyncCompactTests: XCTestCase {
    /// A connection with every field drawn at random within what a record may hold: TCP with
    /// sequence numbers anywhere (the distances wrap), UDP with no TCP fields, both families.
    static func randomConnection(_ generator: inout SplitMix64, now: UInt64) -> Connection {
        let family: Family = generator.next() % 2 == 0 ? .ipv4 : .ipv6
        let tcp = generator.next() % 4 != 0
        let key = FlowKey(source: family.client, destination: family.server,
                          sourcePort: UInt16(truncatingIfNeeded: generator.next()),
                          destinationPort: UInt16(truncatingIfNeeded: generator.next()),
                          protocolNumber: tcp ? TrackedProtocol.tcpNumber : TrackedProtocol.udpNumber)
        var connection = Connection(key: key, direction: generator.next() % 2 == 0 ? .inbound : .outbound)
        // A value of 1 to `bits` bits.
        func small(_ bits: UInt64) -> UInt64 { generator.next() & (UInt64.max >> (63 - generator.next() % bits)) }
        if tcp {
            connection.state = TCPState.allCases[Int(generator.next() % UInt64(TCPState.allCases.count))]
            connection.lastIndex = TCPFlagIndex(rawValue: UInt8(generator.next() % 6))!
            connection.lastDirection = generator.next() % 2 == 0 ? .original : .reply
            for side in [FlowDirection.original, .reply] {
                var peer = TCPPeerState()
                peer.end = UInt32(truncatingIfNeeded: generator.next())
                // Near the end (a window) or anywhere.
                peer.maxEnd = generator.next() % 3 == 0 ? UInt32(truncatingIfNeeded: generator.next())
                    : peer.end &+ UInt32(small(24))
                peer.maxWindow = UInt32(truncatingIfNeeded: small(32))
                peer.maxAck = UInt32(truncatingIfNeeded: generator.next())
                peer.scale = UInt8(generator.next() % 15)
                peer.flags = PeerFlags(rawValue: UInt8(truncatingIfNeeded: generator.next()))
                connection.setPeer(side, peer)
            }
            connection.lastSequence = connection.original.end &- UInt32(small(16))
            connection.lastAcknowledgment = UInt32(truncatingIfNeeded: generator.next())
            connection.lastEnd = connection.lastSequence &+ UInt32(small(16))
            connection.lastWindow = UInt16(truncatingIfNeeded: generator.next())
            connection.lastWindowScale = UInt8(generator.next() % 15)
            connection.lastPeerFlags = PeerFlags(rawValue: UInt8(truncatingIfNeeded: generator.next()))
            connection.retransmissions = UInt8(truncatingIfNeeded: generator.next())
            connection.closing = CloseProgress(rawValue: UInt8(generator.next() % 0x40))
        }
        connection.status = ConnectionStatus(rawValue: UInt8(truncatingIfNeeded: generator.next()))
        connection.expiresAt = now &+ small(48)
        connection.createdAt = now &- min(now, small(40))
        connection.packetsOriginal = small(64)
        connection.packetsReply = small(64)
        connection.bytesOriginal = small(64)
        connection.bytesReply = small(64)
        return connection
    }

    /// Entries of a compact message mean exactly what the same entries of a plain one do,
    /// field for field, and every prefix of its body and every body with a byte more is refused.
    func testCompactEntriesDecodeAsThePlainOnesAndEveryTruncationIsRefused() throws {
        var generator = SplitMix64(seed: 0x5EC0_A11)
        let senderNow: UInt64 = 90_000_000_000, receiverNow: UInt64 = 3_000_000_000
        for round in 0..<64 {
            let entries = (0..<(1 + round % SyncMessage.maximumEntries)).map { index in
                SyncEntry(index % 3 == 2 ? .delete : .upsert, Self.randomConnection(&generator, now: senderNow))
            }
            var plain = SyncMessage(kind: .connections)
            plain.entries = entries
            plain.wallTime = 77
            plain.dataSequence = UInt32(round)
            var compact = plain
            compact.kind = .compactConnections
            let body = compact.encoded(monotonicNow: senderNow)
            let fromPlain = try XCTUnwrap(SyncMessage.decode(kind: .connections, body: plain.encoded(monotonicNow: senderNow),
                                                             monotonicNow: receiverNow))
            let decoded = try XCTUnwrap(SyncMessage.decode(kind: .compactConnections, body: body, monotonicNow: receiverNow),
                                        "round \(round)")
            XCTAssertEqual(decoded.entries, fromPlain.entries, "round \(round)")
            XCTAssertEqual(decoded.dataSequence, plain.dataSequence)
            XCTAssertEqual(decoded.wallTime, 77)
            XCTAssertLessThan(body.count, plain.encoded(monotonicNow: senderNow).count)
            for length in 0..<body.count {
                XCTAssertNil(SyncMessage.decode(kind: .compactConnections, body: Array(body.prefix(length)),
                                                monotonicNow: receiverNow), "round \(round), \(length) of \(body.count) bytes")
            }
            XCTAssertNil(SyncMessage.decode(kind: .compactConnections, body: body + [0], monotonicNow: receiverNow))
        }
    }

    /// A connection of every kind the sender meets, and of the corners of the encoding: TCP in
    /// each state, with its TCP fields random, all zero or all zero but one (the form's TCP bit
    /// from any one of them); UDP, ICMP and ICMPv6; IPv4, IPv6 and one address of each; counters
    /// from zero to 64 bits; expired, and opened after the snapshot's instant.
    static func anyConnection(_ generator: inout SplitMix64, now: UInt64, index: Int) -> Connection {
        var connection = randomConnection(&generator, now: now)
        var key = connection.key
        switch index % 7 {
        case 0: key.protocolNumber = TrackedProtocol.udpNumber
        case 1: key.protocolNumber = generator.next() % 2 == 0 ? TrackedProtocol.icmpNumber : TrackedProtocol.icmp6Number
        default: key.protocolNumber = TrackedProtocol.tcpNumber
        }
        switch index % 5 {
        case 0: key.destination = Family.ipv6.server
        case 1: key.source = Family.ipv4.client; key.destination = Family.ipv4.server
        case 2: key.source = Family.ipv6.client; key.destination = Family.ipv6.server
        default: break
        }
        connection.key = key
        if key.protocolNumber == TrackedProtocol.tcpNumber {
            connection.state = TCPState.allCases[index % TCPState.allCases.count]
            if index % 3 != 0 {
                // Every TCP field zero (as UDP), then, on most of these, one set again.
                var blank = Connection(key: key, direction: connection.direction)
                blank.state = connection.state
                blank.status = connection.status
                blank.expiresAt = connection.expiresAt
                blank.createdAt = connection.createdAt
                blank.packetsOriginal = connection.packetsOriginal
                blank.packetsReply = connection.packetsReply
                blank.bytesOriginal = connection.bytesOriginal
                blank.bytesReply = connection.bytesReply
                let value = UInt32(truncatingIfNeeded: generator.next() | 1)
                let byte = UInt8(truncatingIfNeeded: value)
                switch generator.next() % 24 {
                case 0: blank.lastSequence = value
                case 1: blank.lastAcknowledgment = value
                case 2: blank.lastEnd = value
                case 3: blank.lastWindow = UInt16(truncatingIfNeeded: value) | 1
                case 4: blank.lastWindowScale = byte
                case 5: blank.lastPeerFlags = PeerFlags(rawValue: byte)
                case 6: blank.retransmissions = byte
                case 7: blank.closing = CloseProgress(rawValue: byte)
                case 8: blank.original.end = value
                case 9: blank.original.maxEnd = value
                case 10: blank.original.maxWindow = value
                case 11: blank.original.maxAck = value
                case 12: blank.original.scale = byte
                case 13: blank.original.flags = PeerFlags(rawValue: byte)
                case 14: blank.reply.end = value
                case 15: blank.reply.maxEnd = value
                case 16: blank.reply.maxWindow = value
                case 17: blank.reply.maxAck = value
                case 18: blank.reply.scale = byte
                case 19: blank.reply.flags = PeerFlags(rawValue: byte)
                default: break
                }
                connection = blank
            }
        }
        switch index % 11 {
        case 0: connection.expiresAt = now - UInt64(index)
        case 1: connection.createdAt = now + UInt64(index)
        case 2:
            connection.packetsOriginal = UInt64.max
            connection.bytesReply = UInt64.max - UInt64(index)
            connection.expiresAt = UInt64.max
        case 3:
            connection.packetsOriginal = 0
            connection.packetsReply = 0
            connection.bytesOriginal = 0
            connection.bytesReply = 0
            connection.expiresAt = now
            connection.createdAt = now
        default: break
        }
        return connection
    }

    /// The sender writes each entry from the connection's fields (SyncCompactRecord.write):
    /// byte for byte what the state file's record transformed gives (RecordTransform), alone
    /// and packed into a message.
    func testEntriesWrittenFromTheFieldsAreTheRecordsTransform() throws {
        var generator = SplitMix64(seed: 0xD1_2EC7)
        let now: UInt64 = 7_000_000_000_000
        var entries: [SyncEntry] = []
        var seenStates = Set<UInt8>(), seenProtocols = Set<UInt8>(), seenForms = Set<UInt8>()
        for index in 0..<20_000 {
            let entry = SyncEntry(index % 4 == 3 ? .delete : .upsert, Self.anyConnection(&generator, now: now, index: index))
            let expected = RecordTransform.encode(entry, monotonicNow: now)
            var written: [UInt8] = [0xAA]
            SyncCompactRecord.append(entry, monotonicNow: now, to: &written)
            XCTAssertEqual(written, [0xAA] + expected, "entry \(index): \(entry.connection)")
            XCTAssertLessThanOrEqual(expected.count, SyncCompactRecord.maximumLength + 1)
            seenStates.insert(entry.connection.state.rawValue)
            seenProtocols.insert(entry.connection.key.protocolNumber)
            seenForms.insert(expected[2])
            entries.append(entry)
        }
        XCTAssertEqual(seenStates.count, TCPState.allCases.count)
        XCTAssertEqual(seenProtocols, [TrackedProtocol.tcpNumber, TrackedProtocol.udpNumber,
                                       TrackedProtocol.icmpNumber, TrackedProtocol.icmp6Number])
        XCTAssertEqual(seenForms, [0, SyncCompactRecord.formIPv4, SyncCompactRecord.formTCP,
                                   SyncCompactRecord.formIPv4 | SyncCompactRecord.formTCP])
        var start = 0
        while start < entries.count {
            let (count, records) = SyncMessage.packCompact(entries[start...], monotonicNow: now)
            XCTAssertGreaterThan(count, 0)
            XCTAssertEqual(records, entries[start..<(start + count)].flatMap { RecordTransform.encode($0, monotonicNow: now) })
            start += count
        }
    }

    /// A delete carries the tuple, protocol and direction only (docs/sync-protocol.md): in the
    /// compact encoding an IPv4 TCP delete is 27 bytes where the record is some 70, and the
    /// peer, reading either encoding, removes the connection by its tuple.
    func testADeleteCarriesTheTupleOnly() throws {
        for family in Family.allCases {
            var coalescer = SyncCoalescer(interval: 50, maximumChanges: 4)
            let connection = SyncTestPair.connection(port: 7, family: family, now: 0)
            coalescer.add(SyncChange(.changed, connection), now: 0)
            let record = try XCTUnwrap(coalescer.take(now: 50).first)
            coalescer.add(SyncChange(.removed, connection), now: 60)
            let delete = try XCTUnwrap(coalescer.take(now: 60).first)
            XCTAssertEqual(delete.operation, .delete)
            var expected = Connection(key: connection.key, direction: connection.direction)
            expected.createdAt = .max
            XCTAssertEqual(delete.connection, expected)
            var recordBytes: [UInt8] = [], deleteBytes: [UInt8] = []
            SyncCompactRecord.append(record, monotonicNow: 100, to: &recordBytes)
            SyncCompactRecord.append(delete, monotonicNow: 100, to: &deleteBytes)
            // Its length, operation, form, six record bytes, addresses, ports, six varints of 0.
            XCTAssertEqual(deleteBytes.count, family == .ipv4 ? 27 : 51, "\(family)")
            XCTAssertGreaterThanOrEqual(recordBytes.count - deleteBytes.count, 40, "\(family)")
            for kind in [SyncMessageKind.connections, .compactConnections] {
                var message = SyncMessage(kind: kind)
                message.entries = [delete]
                let decoded = try XCTUnwrap(SyncMessage.decode(kind: kind, body: message.encoded(monotonicNow: 100),
                                                               monotonicNow: 5_000), "\(family) \(kind)")
                XCTAssertEqual(decoded.entries.map(\.operation), [.delete])
                XCTAssertEqual(decoded.entries.map(\.connection.key), [connection.key])
            }
        }
    }

    /// Packing fills a message up to the datagram's bound and no further.
    func testPackingStaysWithinOneUnfragmentedDatagram() throws {
        var generator = SplitMix64(seed: 7)
        let now: UInt64 = 5_000_000_000
        let entries = (0..<500).map { _ in SyncEntry(.upsert, Self.randomConnection(&generator, now: now)) }
        var start = 0
        while start < entries.count {
            let (count, records) = SyncMessage.packCompact(entries[start...], monotonicNow: now)
            XCTAssertGreaterThanOrEqual(count, min(SyncMessage.maximumEntries, entries.count - start),
                                        "at least as many as the plain kinds hold")
            XCTAssertLessThanOrEqual(records.count, SyncMessage.compactEntryBytes)
            var message = SyncMessage(kind: .compactBulkChunk)
            message.entries = Array(entries[start..<(start + count)])
            let body = message.encoded(count: count, records: records)
            XCTAssertEqual(body, message.encoded(monotonicNow: now))
            // IPv6 and UDP headers, the sync header and tag: within 1,500 bytes.
            XCTAssertLessThanOrEqual(40 + 8 + SyncHeader.length + body.count + 16, 1_500)
            let decoded = try XCTUnwrap(SyncMessage.decode(kind: .compactBulkChunk, body: body, monotonicNow: now))
            XCTAssertEqual(decoded.entries.count, count)
            // Sent again much later (encoded anew, every age longer): still read.
            let again = message.encoded(monotonicNow: now + 1_000_000_000_000)
            XCTAssertEqual(SyncMessage.decode(kind: .compactBulkChunk, body: again, monotonicNow: now)?.entries.count, count)
            start += count
            if start < entries.count {
                // The next one would not have fitted.
                var one: [UInt8] = []
                SyncCompactRecord.append(entries[start], monotonicNow: now, to: &one)
                XCTAssertTrue(count == SyncMessage.maximumCompactEntries
                              || records.count + one.count > SyncMessage.compactEntryBytes)
            }
        }
    }

    func testVarintsAndZigzagDistances() {
        for value: UInt64 in [0, 1, 127, 128, 300, 1 << 35, UInt64.max] {
            var out: [UInt8] = []
            SyncCompactRecord.putVarint(value, to: &out)
            out.withUnsafeBytes { bytes in
                var input = SyncRecordInput(bytes)
                XCTAssertEqual(input.getVarint(), value)
                XCTAssertEqual(input.remaining, 0)
            }
        }
        // Eleven bytes, or a tenth byte past 64 bits: refused; and one cut short.
        for refused in [[UInt8](repeating: 0x80, count: 10) + [0], [UInt8](repeating: 0xFF, count: 9) + [0x02], [0x80]] {
            refused.withUnsafeBytes { bytes in
                var input = SyncRecordInput(bytes)
                XCTAssertNil(input.getVarint())
            }
        }
        for (value, base) in [(UInt32(5), UInt32(3)), (3, 5), (0, UInt32.max), (UInt32.max, 0), (0x8000_0000, 0)] {
            XCTAssertEqual(SyncCompactRecord.unzigzag(SyncCompactRecord.zigzag(value, from: base), from: base), value)
        }
        XCTAssertEqual(SyncCompactRecord.zigzag(5, from: 3), 4)
        XCTAssertEqual(SyncCompactRecord.zigzag(3, from: 5), 3)
    }

    // MARK: Sessions

    /// Two nodes that read the compact kinds use them once each has said so.
    func testNodesThatBothReadThemSendCompactEntries() {
        var pair = SyncTestPair()
        pair.run(5)
        XCTAssertTrue(pair.a.peerReadsCompact)
        XCTAssertTrue(pair.b.peerReadsCompact)
        let sentBefore = pair.fromA.count
        for port in UInt16(1)...40 {
            pair.a.submit(SyncChange(.changed, SyncTestPair.connection(port: port, now: pair.now)), now: pair.now)
        }
        pair.step(100_000_000)
        let kinds = pair.fromA[sentBefore...].map { $0[5] }
        XCTAssertFalse(kinds.contains(SyncMessageKind.connections.rawValue))
        XCTAssertEqual(kinds.filter { $0 == SyncMessageKind.compactConnections.rawValue }.count, 3,
                       "40 entries of about 70 bytes in three datagrams, not five")
        pair.run(5)
        XCTAssertEqual(Set(pair.appliedOnB.map(\.connection.key.sourcePort)), Set(1...40))
    }

    /// A peer of the release before (one that never says `features`, and refuses the kind as
    /// malformed) gets the plain kinds, and everything still arrives.
    func testAPeerThatNeverSaidItReadsThemGetsThePlainKinds() {
        var pair = SyncTestPair()
        pair.dropFromB = { $0[5] == SyncMessageKind.features.rawValue }
        pair.bulkOnA = (1...30).map { SyncTestPair.connection(port: $0, now: pair.now) }
        pair.run(10)
        for port in UInt16(31)...50 {
            pair.a.submit(SyncChange(.changed, SyncTestPair.connection(port: port, now: pair.now)), now: pair.now)
        }
        pair.run(20)
        XCTAssertFalse(pair.a.peerReadsCompact)
        XCTAssertTrue(pair.b.peerReadsCompact)
        let kinds = Set(pair.fromA.map { $0[5] })
        XCTAssertTrue(kinds.contains(SyncMessageKind.bulkChunk.rawValue))
        XCTAssertTrue(kinds.contains(SyncMessageKind.connections.rawValue))
        XCTAssertTrue(kinds.isDisjoint(with: [SyncMessageKind.compactConnections.rawValue,
                                              SyncMessageKind.compactBulkChunk.rawValue]))
        XCTAssertEqual(Set(pair.appliedOnB.map(\.connection.key.sourcePort)), Set(1...50))
        XCTAssertTrue(pair.b.status.in_sync)
    }

    /// A peer that restarts may be of another release: the plain kinds until it says again.
    func testAPeersRestartForgetsWhatItRead() {
        var pair = SyncTestPair()
        pair.run(5)
        XCTAssertTrue(pair.a.peerReadsCompact)
        pair.b = SyncSession(key: SyncTestPair.key, node: 0xB2, epoch: 101)
        pair.dropFromB = { $0[5] == SyncMessageKind.features.rawValue }
        pair.run(5)
        XCTAssertFalse(pair.a.peerReadsCompact, "the new incarnation has not said it reads them")
        pair.dropFromB = nil
        pair.run(150)
        XCTAssertTrue(pair.a.peerReadsCompact)
    }
}
