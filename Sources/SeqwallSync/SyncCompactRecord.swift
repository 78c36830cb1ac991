import SeqwallCore

/// An entry in the compact encoding of kinds 9 and 10 (docs/sync-protocol.md, Compact
/// entries): the state file's record (StateSnapshot.appendRecord) with what it need not carry
/// left out and its numbers coded by size. It is a transform of that record's bytes, so the
/// receiver rebuilds the very record and reads it with the state file's checks
/// (StateSnapshot.decodeRecord): both encodings mean the same, field for field. The sender
/// writes the same bytes from the connection's fields without building the record
/// (`write`); the unit tests hold it to the transform of the record.
///
/// A sequence number is sent as its distance from another one it is close to (an ACK from the
/// other side's end, a window's end from its own side's end), zigzag coded as protobuf's
/// sint32 (signed distances, small either way), each number then as an LEB128 varint.
enum SyncCompactRecord {
    /// Bit 0 of the form byte: both addresses in ::ffff:0:0/96 (RFC 4291 2.5.5.2), 4 bytes each.
    static let formIPv4: UInt8 = 1
    /// Bit 1: the TCP fields (record bytes 44..<104) follow; without it they are all zero.
    static let formTCP: UInt8 = 2
    /// Longest encoding after the length byte: every number at its longest, IPv6.
    static let maximumLength = 2 + 6 + 32 + 4 + 8 + 2 * (5 + 5 + 5 + 2) + 3 * 5 + 6 + 6 * 10

    /// Record offsets (StateSnapshot.Encoder.putRecord).
    private static let addresses = 8, ports = 40, tcpFields = 44, lastSequence = 44, lastAcknowledgment = 48
    private static let lastEnd = 52, lastRest = 56, peers = 64, peerLength = 20, counters = 104

    /// Appends `entry`'s compact encoding, its length byte first, to `out`.
    static func append(_ entry: SyncEntry, monotonicNow: UInt64, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: maximumLength + 1) { room in
            let length = write(entry, monotonicNow: monotonicNow, to: room.baseAddress!)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: room[..<length]))
        }
    }

    /// Writes `entry`'s compact encoding, its length byte first, at `start`, which must have
    /// room for `maximumLength + 1` bytes; how many it wrote. The bytes are those of the state
    /// file's record (StateSnapshot.Encoder.putRecord) transformed as docs/sync-protocol.md
    /// says, taken from the connection's fields in one pass: the sync thread encodes every
    /// record it sends, and building the 152-byte record first cost it more than the rest of
    /// the encoding (BENCHMARKS.md, State sync end to end).
    static func write(_ entry: SyncEntry, monotonicNow: UInt64, to start: UnsafeMutablePointer<UInt8>) -> Int {
        let connection = entry.connection, key = connection.key
        let original = connection.original, reply = connection.reply
        var at = start + 1
        func put8(_ value: UInt8) { at.pointee = value; at += 1 }
        func put16(_ value: UInt16) { put8(UInt8(truncatingIfNeeded: value)); put8(UInt8(truncatingIfNeeded: value >> 8)) }
        func put32(_ value: UInt32) { put16(UInt16(truncatingIfNeeded: value)); put16(UInt16(truncatingIfNeeded: value >> 16)) }
        /// Network order, as the record holds an address.
        func put64BigEndian(_ value: UInt64) {
            for byte in (0..<8).reversed() { put8(UInt8(truncatingIfNeeded: value >> UInt64(8 * byte))) }
        }
        func putVarint(_ value: UInt64) {
            var rest = value
            while rest >= 0x80 {
                put8(UInt8(truncatingIfNeeded: rest) | 0x80)
                rest >>= 7
            }
            put8(UInt8(rest))
        }
        func putDistance(_ value: UInt32, from base: UInt32) { putVarint(UInt64(zigzag(value, from: base))) }
        func putPeer(_ peer: TCPPeerState, other: TCPPeerState) {
            putDistance(peer.maxEnd, from: peer.end)
            putDistance(peer.maxAck, from: other.end)
            putVarint(UInt64(peer.maxWindow))
            put8(peer.scale)
            put8(peer.flags.rawValue)
        }

        let ipv4 = key.source.isIPv4 && key.destination.isIPv4
        // Whether any of record bytes 44..<104 (the last packet's fields, both sides' window
        // data; its reserved bytes are always zero) is not zero.
        let lastFields = connection.lastSequence | connection.lastAcknowledgment | connection.lastEnd
            | UInt32(connection.lastWindow) | UInt32(connection.lastWindowScale) | UInt32(connection.lastPeerFlags.rawValue)
            | UInt32(connection.retransmissions) | UInt32(connection.closing.rawValue)
        let peerFields = original.end | original.maxEnd | original.maxWindow | original.maxAck
            | reply.end | reply.maxEnd | reply.maxWindow | reply.maxAck
            | UInt32(original.scale | original.flags.rawValue | reply.scale | reply.flags.rawValue)
        let tcp = lastFields | peerFields != 0
        put8(entry.operation.rawValue)
        put8((ipv4 ? formIPv4 : 0) | (tcp ? formTCP : 0))
        put8(key.protocolNumber)
        put8(connection.state.rawValue)
        put8(connection.status.rawValue)
        put8(connection.direction.rawValue)
        put8(connection.lastIndex.rawValue)
        put8(connection.lastDirection.rawValue)
        if ipv4 {
            put32(key.source.ipv4Value.bigEndian)
            put32(key.destination.ipv4Value.bigEndian)
        } else {
            put64BigEndian(key.source.high)
            put64BigEndian(key.source.low)
            put64BigEndian(key.destination.high)
            put64BigEndian(key.destination.low)
        }
        put16(key.sourcePort)
        put16(key.destinationPort)
        if tcp {
            put32(original.end)
            put32(reply.end)
            putPeer(original, other: reply)
            putPeer(reply, other: original)
            let (from, other) = connection.lastDirection.rawValue == 0 ? (original, reply) : (reply, original)
            putDistance(connection.lastSequence, from: from.end)
            putDistance(connection.lastAcknowledgment, from: other.end)
            putDistance(connection.lastEnd, from: connection.lastSequence)
            put16(connection.lastWindow)
            put8(connection.lastWindowScale)
            put8(connection.lastPeerFlags.rawValue)
            put8(connection.retransmissions)
            put8(connection.closing.rawValue)
        }
        // As StateSnapshot.appendRecord: an expired connection with 0 remaining, one opened
        // after `monotonicNow` as new.
        putVarint(connection.expiresAt > monotonicNow ? connection.expiresAt - monotonicNow : 0)
        putVarint(monotonicNow > connection.createdAt ? monotonicNow - connection.createdAt : 0)
        putVarint(connection.packetsOriginal)
        putVarint(connection.packetsReply)
        putVarint(connection.bytesOriginal)
        putVarint(connection.bytesReply)
        let length = at - start
        start.pointee = UInt8(length - 1)
        return length
    }

    /// Reads one entry (length byte first) at `reader`'s place; nil when it is not one, every
    /// field of the rebuilt record checked as in a state file.
    static func decode(from reader: inout SyncBytes, monotonicNow: UInt64) -> SyncEntry? {
        guard let length = reader.get8() else { return nil }
        return reader.withNext(Int(length)) { bytes in
            var input = SyncRecordInput(bytes)
            return decode(&input, monotonicNow: monotonicNow)
        } ?? nil
    }

    /// Reads one entry, without its length byte, all of `input`: the record it is a transform
    /// of is rebuilt in place, on the stack, and read with the state file's checks.
    private static func decode(_ input: inout SyncRecordInput, monotonicNow: UInt64) -> SyncEntry? {
        withUnsafeTemporaryAllocation(byteCount: StateSnapshot.recordLength, alignment: 8) { record -> SyncEntry? in
            record.initializeMemory(as: UInt8.self, repeating: 0)
            let base = record.baseAddress!
            func store32(_ value: UInt32, at offset: Int) {
                record.storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt32.self)
            }
            func load32(_ offset: Int) -> UInt32 {
                UInt32(littleEndian: record.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            }
            guard let operationValue = input.get8(), let operation = SyncOperation(rawValue: operationValue),
                  let form = input.get8(), form & ~(formIPv4 | formTCP) == 0,
                  input.copy(6, to: base + 2) else { return nil }
            if form & formIPv4 != 0 {
                record.storeBytes(of: 0xFFFF, toByteOffset: addresses + 10, as: UInt16.self)
                record.storeBytes(of: 0xFFFF, toByteOffset: addresses + 26, as: UInt16.self)
                guard input.copy(4, to: base + addresses + 12), input.copy(4, to: base + addresses + 28) else { return nil }
            } else {
                guard input.copy(32, to: base + addresses) else { return nil }
            }
            guard input.copy(4, to: base + ports) else { return nil }
            if form & formTCP != 0 {
                guard input.copy(4, to: base + peers), input.copy(4, to: base + peers + peerLength) else { return nil }
                let ends = (load32(peers), load32(peers + peerLength))
                for side in 0..<2 {
                    let at = peers + side * peerLength
                    let (own, other) = side == 0 ? ends : (ends.1, ends.0)
                    guard let maxEnd = input.getDistance(from: own),
                          let maxAck = input.getDistance(from: other),
                          let maxWindow = input.getVarint(), maxWindow <= UInt64(UInt32.max),
                          let scale = input.get8(), let flags = input.get8() else { return nil }
                    store32(maxEnd, at: at + 4)
                    store32(UInt32(maxWindow), at: at + 8)
                    store32(maxAck, at: at + 12)
                    record[at + 16] = scale
                    record[at + 17] = flags
                }
                let (from, other) = record[7] == 0 ? ends : (ends.1, ends.0)
                guard let sequence = input.getDistance(from: from),
                      let acknowledgment = input.getDistance(from: other),
                      let end = input.getDistance(from: sequence),
                      input.copy(6, to: base + lastRest) else { return nil }
                store32(sequence, at: lastSequence)
                store32(acknowledgment, at: lastAcknowledgment)
                store32(end, at: lastEnd)
            }
            for index in 0..<6 {
                guard let value = input.getVarint() else { return nil }
                record.storeBytes(of: value.littleEndian, toByteOffset: counters + 8 * index, as: UInt64.self)
            }
            guard input.remaining == 0,
                  case .success(let decoded) = StateSnapshot.decodeRecord(UnsafeRawBufferPointer(record), at: 0,
                                                                          monotonicNow: monotonicNow) else {
                return nil
            }
            return SyncEntry(operation, decoded.entry.connection)
        }
    }

    // MARK: Numbers

    /// The signed distance from `base` to `value` (mod 2^32), zigzag coded.
    static func zigzag(_ value: UInt32, from base: UInt32) -> UInt32 {
        let distance = Int32(bitPattern: value &- base)
        return UInt32(bitPattern: (distance << 1) ^ (distance >> 31))
    }

    static func unzigzag(_ coded: UInt32, from base: UInt32) -> UInt32 {
        let distance = Int32(bitPattern: coded >> 1) ^ -Int32(bitPattern: coded & 1)
        return base &+ UInt32(bitPattern: distance)
    }

    /// LEB128: 7 bits a byte, least significant first, the top bit set on all but the last.
    static func putVarint(_ value: UInt64, to out: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
    }
}
