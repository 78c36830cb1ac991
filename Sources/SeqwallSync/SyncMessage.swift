import SeqwallCore

/// The body of a sync message, after the header and before encryption
/// (docs/sync-protocol.md, Bodies). Every body starts with the sender's wall clock.
public struct SyncMessage: Sendable, Equatable {
    public var kind: SyncMessageKind
    /// The sender's wall clock when it sealed the message, nanoseconds since the Unix epoch.
    public var wallTime: UInt64 = 0
    /// Data kinds: the place in the reliable stream.
    public var dataSequence: UInt32 = 0
    /// connections, bulk-chunk.
    public var entries: [SyncEntry] = []
    /// proxies: proxied connections' SYN proxy states.
    public var proxies: [SyncProxyEntry] = []
    /// bulk-end: records in the bulk; nack: first missing; alive: next data sequence
    /// expected (all before it received); skip: the oldest the sender still holds; features:
    /// the feature bits (`readsCompact`).
    public var first: UInt32 = 0
    /// nack: last missing; alive: the sender's own next data sequence (what it sent is
    /// before it), so that the loss of its last data messages is seen without a later one.
    public var last: UInt32 = 0

    public init(kind: SyncMessageKind) { self.kind = kind }

    /// At most this many entries per message: a message stays within 1,500 bytes with IPv6
    /// and UDP headers, so it is never fragmented on an Ethernet link.
    public static let maximumEntries = 8
    /// At most this many proxy states per `proxies` message, within the same bound.
    public static let maximumProxies = 16
    /// At most this many entries per compact message (the shortest entry is 27 bytes).
    public static let maximumCompactEntries = 64
    /// The bytes a compact message's entries may take: 1,500 less IPv6 and UDP headers (48),
    /// the sync header and tag (40) and the body's fields before the entries (14).
    public static let compactEntryBytes = 1_398
    /// features bit 0: the sender reads the compact kinds (9 and 10).
    public static let readsCompact: UInt32 = 1

    /// Encodes `entries` from the first in the compact encoding, as many as fit in one
    /// message: how many, and their bytes. Each is written in place after the one before, and
    /// kept only if it ends within `compactEntryBytes` (the room has an entry's worth more).
    static func packCompact(_ entries: ArraySlice<SyncEntry>, monotonicNow: UInt64) -> (count: Int, records: [UInt8]) {
        var count = 0
        let records = [UInt8](unsafeUninitializedCapacity: compactEntryBytes + SyncCompactRecord.maximumLength + 1) { room, used in
            used = 0
            for entry in entries.prefix(maximumCompactEntries) {
                let length = SyncCompactRecord.write(entry, monotonicNow: monotonicNow, to: room.baseAddress! + used)
                guard used + length <= compactEntryBytes else { break }
                used += length
                count += 1
            }
        }
        return (count, records)
    }

    /// The body of a compact message whose entries are already encoded (`packCompact`).
    func encoded(count: Int, records: [UInt8]) -> [UInt8] {
        var out = SyncBytes(capacity: 8 + 4 + 2 + records.count)
        out.put64(wallTime)
        out.put32(dataSequence)
        out.put16(UInt16(count))
        out.put(records)
        return out.bytes
    }

    /// The body's bytes; connection deadlines relative to `monotonicNow` (the sender's clock).
    public func encoded(monotonicNow: UInt64) -> [UInt8] {
        var out = SyncBytes()
        out.put64(wallTime)
        if kind.isData { out.put32(dataSequence) }
        switch kind {
        case .connections, .bulkChunk:
            out.put16(UInt16(entries.count))
            var records: [UInt8] = []
            records.reserveCapacity(entries.count * SyncEntry.encodedLength)
            for entry in entries {
                records.append(entry.operation.rawValue)
                StateSnapshot.appendRecord(entry.connection, queue: 0, monotonicNow: monotonicNow, to: &records)
            }
            out.put(records)
        case .compactConnections, .compactBulkChunk:
            var records: [UInt8] = []
            var count = 0
            for entry in entries {
                SyncCompactRecord.append(entry, monotonicNow: monotonicNow, to: &records)
                count += 1
            }
            out.put16(UInt16(count))
            out.put(records)
        case .proxies:
            out.put16(UInt16(proxies.count))
            for proxy in proxies { proxy.encode(into: &out) }
        case .bulkEnd, .skip, .features:
            out.put32(first)
        case .nack, .alive:
            out.put32(first)
            out.put32(last)
        case .bulkRequest:
            break
        }
        return out.bytes
    }

    /// Reads a body of `kind`; connection deadlines are put on the receiver's clock at
    /// `monotonicNow`. Nil when the bytes are not a well-formed body of that kind.
    public static func decode(kind: SyncMessageKind, body: [UInt8], monotonicNow: UInt64) -> SyncMessage? {
        var reader = SyncBytes(body)
        var message = SyncMessage(kind: kind)
        guard let wallTime = reader.get64() else { return nil }
        message.wallTime = wallTime
        if kind.isData {
            guard let sequence = reader.get32() else { return nil }
            message.dataSequence = sequence
        }
        switch kind {
        case .connections, .bulkChunk:
            guard let count = reader.get16(), Int(count) <= maximumEntries,
                  reader.remaining == Int(count) * SyncEntry.encodedLength,
                  let records = reader.get(reader.remaining) else { return nil }
            let bytes = Array(records)
            let ok = bytes.withUnsafeBytes { buffer -> Bool in
                for index in 0..<Int(count) {
                    let offset = index * SyncEntry.encodedLength
                    guard let operation = SyncOperation(rawValue: buffer[offset]),
                          case .success(let decoded) = StateSnapshot.decodeRecord(buffer, at: offset + 1,
                                                                                   monotonicNow: monotonicNow)
                    else { return false }
                    message.entries.append(SyncEntry(operation, decoded.entry.connection))
                }
                return true
            }
            guard ok else { return nil }
        case .compactConnections, .compactBulkChunk:
            // No bound on the bytes past the datagram's: a message sent again is encoded anew,
            // and its entries' ages may each take a byte more than when it was packed.
            guard let count = reader.get16(), Int(count) <= maximumCompactEntries else { return nil }
            message.entries.reserveCapacity(Int(count))
            for _ in 0..<count {
                guard let entry = SyncCompactRecord.decode(from: &reader, monotonicNow: monotonicNow)
                else { return nil }
                message.entries.append(entry)
            }
        case .proxies:
            guard let count = reader.get16(), Int(count) <= maximumProxies,
                  reader.remaining == Int(count) * SyncProxyEntry.encodedLength else { return nil }
            for _ in 0..<count {
                guard let proxy = SyncProxyEntry.decode(from: &reader) else { return nil }
                message.proxies.append(proxy)
            }
        case .bulkEnd, .skip, .features:
            guard let first = reader.get32() else { return nil }
            message.first = first
        case .alive:
            guard let first = reader.get32(), let last = reader.get32() else { return nil }
            message.first = first
            message.last = last
        case .nack:
            guard let first = reader.get32(), let last = reader.get32(), first <= last else { return nil }
            message.first = first
            message.last = last
        case .bulkRequest:
            break
        }
        return reader.remaining == 0 ? message : nil
    }
}
