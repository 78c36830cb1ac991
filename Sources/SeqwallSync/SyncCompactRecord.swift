import SeqwallCore

/// An entry in the compact encoding of kinds 9 and 10 (docs/sync-protocol.md, Compact
/// entries): the state file's record (StateSnapshot.appendRecord) with what it need not carry
/// left out and its numbers coded by size. It is a transform of that record's bytes, so the
/// receiver rebuilds the very record and reads it with the state file's checks
/// (StateSnapshot.decodeRecord): both encodings mean the same, field for field.
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

    /// Appends `entry`'s compact encoding, its length byte first, to `out`; `record` is scratch
    /// room (its contents are replaced).
    static func append(_ entry: SyncEntry, monotonicNow: UInt64, record: inout [UInt8], to out: inout [UInt8]) {
        record.removeAll(keepingCapacity: true)
        StateSnapshot.appendRecord(entry.connection, queue: 0, monotonicNow: monotonicNow, to: &record)
        let lengthAt = out.count
        out.append(0)
        out.append(entry.operation.rawValue)
        record.withUnsafeBufferPointer { r in
            let ipv4 = isMapped(r, at: addresses) && isMapped(r, at: addresses + 16)
            let tcp = r[tcpFields..<counters].contains { $0 != 0 }
            out.append((ipv4 ? formIPv4 : 0) | (tcp ? formTCP : 0))
            out.append(contentsOf: r[2..<8])
            if ipv4 {
                out.append(contentsOf: r[(addresses + 12)..<(addresses + 16)])
                out.append(contentsOf: r[(addresses + 28)..<(addresses + 32)])
            } else {
                out.append(contentsOf: r[addresses..<(addresses + 32)])
            }
            out.append(contentsOf: r[ports..<(ports + 4)])
            if tcp {
                let ends = [load32(r, peers), load32(r, peers + peerLength)]
                out.append(contentsOf: r[peers..<(peers + 4)])
                out.append(contentsOf: r[(peers + peerLength)..<(peers + peerLength + 4)])
                for side in 0..<2 {
                    let at = peers + side * peerLength
                    putVarint(UInt64(zigzag(load32(r, at + 4), from: ends[side])), to: &out)
                    putVarint(UInt64(zigzag(load32(r, at + 12), from: ends[1 - side])), to: &out)
                    putVarint(UInt64(load32(r, at + 8)), to: &out)
                    out.append(r[at + 16])
                    out.append(r[at + 17])
                }
                let side = r[7] == 0 ? 0 : 1
                let sequence = load32(r, lastSequence)
                putVarint(UInt64(zigzag(sequence, from: ends[side])), to: &out)
                putVarint(UInt64(zigzag(load32(r, lastAcknowledgment), from: ends[1 - side])), to: &out)
                putVarint(UInt64(zigzag(load32(r, lastEnd), from: sequence)), to: &out)
                out.append(contentsOf: r[lastRest..<(lastRest + 6)])
            }
            for index in 0..<6 { putVarint(load64(r, counters + 8 * index), to: &out) }
        }
        out[lengthAt] = UInt8(out.count - lengthAt - 1)
    }

    /// Reads one entry (length byte first) at `reader`'s place; nil when it is not one, every
    /// field of the rebuilt record checked as in a state file. `record` is scratch room.
    static func decode(from reader: inout SyncBytes, monotonicNow: UInt64, record: inout [UInt8]) -> SyncEntry? {
        guard let length = reader.get8(), let slice = reader.get(Int(length)) else { return nil }
        var input = SyncBytes(Array(slice))
        record.removeAll(keepingCapacity: true)
        record.append(contentsOf: repeatElement(0, count: StateSnapshot.recordLength))
        guard let operationValue = input.get8(), let operation = SyncOperation(rawValue: operationValue),
              let form = input.get8(), form & ~(formIPv4 | formTCP) == 0,
              let head = input.get(6) else { return nil }
        record.replaceSubrange(2..<8, with: head)
        if form & formIPv4 != 0 {
            guard let source = input.get(4), let destination = input.get(4) else { return nil }
            for base in [addresses, addresses + 16] { record[base + 10] = 0xFF; record[base + 11] = 0xFF }
            record.replaceSubrange((addresses + 12)..<(addresses + 16), with: source)
            record.replaceSubrange((addresses + 28)..<(addresses + 32), with: destination)
        } else {
            guard let both = input.get(32) else { return nil }
            record.replaceSubrange(addresses..<(addresses + 32), with: both)
        }
        guard let portBytes = input.get(4) else { return nil }
        record.replaceSubrange(ports..<(ports + 4), with: portBytes)
        if form & formTCP != 0 {
            guard let original = input.get(4), let reply = input.get(4) else { return nil }
            record.replaceSubrange(peers..<(peers + 4), with: original)
            record.replaceSubrange((peers + peerLength)..<(peers + peerLength + 4), with: reply)
            let ends = record.withUnsafeBufferPointer { [load32($0, peers), load32($0, peers + peerLength)] }
            for side in 0..<2 {
                let at = peers + side * peerLength
                guard let maxEnd = getDistance(&input, from: ends[side]),
                      let maxAck = getDistance(&input, from: ends[1 - side]),
                      let maxWindow = getVarint(&input), maxWindow <= UInt64(UInt32.max),
                      let scale = input.get8(), let flags = input.get8() else { return nil }
                store32(maxEnd, at: at + 4, in: &record)
                store32(UInt32(maxWindow), at: at + 8, in: &record)
                store32(maxAck, at: at + 12, in: &record)
                record[at + 16] = scale
                record[at + 17] = flags
            }
            let side = record[7] == 0 ? 0 : 1
            guard let sequence = getDistance(&input, from: ends[side]),
                  let acknowledgment = getDistance(&input, from: ends[1 - side]),
                  let end = getDistance(&input, from: sequence),
                  let rest = input.get(6) else { return nil }
            store32(sequence, at: lastSequence, in: &record)
            store32(acknowledgment, at: lastAcknowledgment, in: &record)
            store32(end, at: lastEnd, in: &record)
            record.replaceSubrange(lastRest..<(lastRest + 6), with: rest)
        }
        for index in 0..<6 {
            guard let value = getVarint(&input) else { return nil }
            for byte in 0..<8 { record[counters + 8 * index + byte] = UInt8(truncatingIfNeeded: value >> UInt64(8 * byte)) }
        }
        guard input.remaining == 0 else { return nil }
        return record.withUnsafeBytes { bytes -> SyncEntry? in
            guard case .success(let decoded) = StateSnapshot.decodeRecord(bytes, at: 0, monotonicNow: monotonicNow) else {
                return nil
            }
            return SyncEntry(operation, decoded.entry.connection)
        }
    }

    // MARK: Numbers

    private static func isMapped(_ r: UnsafeBufferPointer<UInt8>, at offset: Int) -> Bool {
        r[offset..<(offset + 10)].allSatisfy { $0 == 0 } && r[offset + 10] == 0xFF && r[offset + 11] == 0xFF
    }

    private static func load32(_ r: UnsafeBufferPointer<UInt8>, _ offset: Int) -> UInt32 {
        UInt32(r[offset]) | UInt32(r[offset + 1]) << 8 | UInt32(r[offset + 2]) << 16 | UInt32(r[offset + 3]) << 24
    }

    private static func load64(_ r: UnsafeBufferPointer<UInt8>, _ offset: Int) -> UInt64 {
        UInt64(load32(r, offset)) | UInt64(load32(r, offset + 4)) << 32
    }

    private static func store32(_ value: UInt32, at offset: Int, in record: inout [UInt8]) {
        for byte in 0..<4 { record[offset + byte] = UInt8(truncatingIfNeeded: value >> UInt32(8 * byte)) }
    }

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

    /// At most 10 bytes, and nothing above 64 bits.
    static func getVarint(_ input: inout SyncBytes) -> UInt64? {
        var value: UInt64 = 0
        for index in 0..<10 {
            guard let byte = input.get8() else { return nil }
            let bits = UInt64(byte & 0x7F)
            if index == 9 && bits > 1 { return nil }
            value |= bits << UInt64(7 * index)
            if byte & 0x80 == 0 { return value }
        }
        return nil
    }

    private static func getDistance(_ input: inout SyncBytes, from base: UInt32) -> UInt32? {
        guard let coded = getVarint(&input), coded <= UInt64(UInt32.max) else { return nil }
        return unzigzag(UInt32(coded), from: base)
    }
}
