/// The state file (`seqwall run --state-file`): the connection table written at exit and
/// every few seconds, read back at start so tracked connections survive a restart
/// (docs/design.md, State file). UDP and ICMP echo flows are records like TCP connections, told
/// apart by their protocol byte, with state NONE and their TCP fields zero: the layout is the
/// same, so the version stays 1 (a reader that knows only TCP refuses such a file, naming the
/// protocol).
/// Likewise the close bookkeeping (CloseProgress) took the first of three reserved bytes: a
/// file without it reads as one whose byte is 0, from which the side that sent the first FIN
/// is still known (CloseProgress.implied), and an older seqwall skips the byte.
/// This is the pure part, bytes in and bytes out; the daemon does the file I/O.
///
/// The format is fixed and versioned, every field encoded explicitly (never Swift memory,
/// whose layout may change between compilers), little-endian:
///
///     header, 48 bytes
///       0  magic "SQWLSTAT"
///       8  u32 byte-order mark 0x01020304 (reads as 0x04030201 from a big-endian writer)
///      12  u16 version (1)
///      14  u16 header length (48)
///      16  u16 record length (152)
///      18  u16 reserved, 0
///      20  u32 record count
///      24  u64 wall-clock time of the snapshot, nanoseconds since the Unix epoch
///      32  u64 length of the table section after the records (0: none)
///      40  u32 length of the proxy section after the table section (0: none)
///      44  u32 CRC-32 (IEEE 802.3) of bytes 0..<44 and of everything after the header
///     count records of 152 bytes (see `encode(_:queue:into:)`)
///     the table section, when there is one (see `Encoder.finish()`)
///     the proxy section, when there is one (see `Encoder.finish()`)
///
/// The table section keeps what `seqwall table` changed in `persist` tables (TableChanges).
/// It took a reserved field that older files hold 0 in, so they read as files without one;
/// the CRC covers it as it covers the records. The proxy section keeps the SynProxyState of
/// each proxied connection (StateSnapshot+SynProxy.swift) and took the last reserved field
/// the same way: a file written before it, or with no proxied connection, reads as one
/// without; a seqwall older than the section refuses a file that has one (trailing bytes).
///
/// Times in the tracker are monotonic nanoseconds, which mean nothing to the next process.
/// So a record holds each connection's remaining lifetime and age as of the snapshot, and the
/// header the wall time of the snapshot: at load, every lifetime is shortened by the wall
/// time that passed (seqwall's downtime) and what has run out is dropped.
public enum StateSnapshot {
    public static let magic: [UInt8] = Array("SQWLSTAT".utf8)
    public static let version: UInt16 = 1
    public static let byteOrderMark: UInt32 = 0x0102_0304
    public static let headerLength = 48
    public static let recordLength = 152
    static let checksumOffset = 44
    static let tableSectionOffset = 32
    static let proxySectionOffset = 40
    /// Most bytes a table section may take: room for a few million changed entries.
    public static let maximumTableSectionLength = 64 << 20
    /// An entry in the table section: 16 address bytes, prefix length, flags.
    static let tableEntryLength = 18

    /// One connection and the queue (worker) it belongs to. The kernel's --queue-balance hash
    /// is keyed with a random value private to the kernel (xt_NFQUEUE.c, jhash_initval), so
    /// no process can compute where a flow goes; the queue a connection's packets came
    /// through is where they will come again, as long as the iptables rules stay the same.
    public struct Entry: Sendable, Equatable {
        public var queue: UInt16
        public var connection: Connection
        /// A proxied connection's SYN proxy state (docs/synproxy.md); nil for every other.
        public var proxy: SynProxyState?

        public init(queue: UInt16, connection: Connection, proxy: SynProxyState? = nil) {
            self.queue = queue
            self.connection = connection
            self.proxy = proxy
        }
    }

    /// Why a state file was not used. Each says what was wrong in one line.
    public enum DecodeError: Error, Equatable, Sendable, CustomStringConvertible {
        case notAStateFile
        case truncated(expected: Int, actual: Int)
        case wrongByteOrder
        case unsupportedVersion(UInt16)
        case badLayout(String)
        case tooLarge(records: Int, limit: Int)
        case trailingBytes(Int)
        case badChecksum
        case badRecord(index: Int, reason: String)

        public var description: String {
            switch self {
            case .notAStateFile: "not a seqwall state file (bad magic)"
            case .truncated(let expected, let actual): "truncated: \(Counted.text(actual, "byte")), expected \(expected)"
            case .wrongByteOrder: "written with the other byte order"
            case .unsupportedVersion(let version): "version \(version), this seqwall reads version \(StateSnapshot.version)"
            case .badLayout(let what): "corrupt header: \(what)"
            case .tooLarge(let records, let limit): "too large: \(records) records, at most \(limit) fit the table"
            case .trailingBytes(let count): "corrupt: \(Counted.text(count, "byte")) after the last record"
            case .badChecksum: "corrupt: checksum mismatch"
            case .badRecord(let index, let reason): "corrupt: record \(index): \(reason)"
            }
        }
    }

    /// What a state file held, aged to the present.
    public struct Loaded: Sendable {
        /// Wall time of the snapshot, nanoseconds since the epoch.
        public var savedAt: UInt64
        /// How long seqwall was down (wall time from the snapshot to the load; 0 when the
        /// clock went backwards).
        public var downtime: UInt64
        /// The connections still alive, their deadlines on the loading process's clock.
        public var entries: [Entry]
        /// What `seqwall table` had changed in each `persist` table, by table name.
        public var tables: [String: TableChanges] = [:]
        /// Connections whose lifetime ran out while seqwall was down.
        public var expired: Int
    }

    // MARK: Encoding

    /// Builds a state file. `wallTime` and `monotonicNow` are the same instant on the wall
    /// clock and on the tracker's clock: lifetimes are stored relative to it.
    public struct Encoder {
        public private(set) var bytes: [UInt8]
        public private(set) var count = 0
        let monotonicNow: UInt64
        /// The persist tables' run-time changes, written after the records by `finish`.
        public var tables: [String: TableChanges] = [:]
        /// The proxied connections' states, by record index, written last by `finish`.
        var proxies: [(record: UInt32, state: SynProxyState)] = []

        public init(wallTime: UInt64, monotonicNow: UInt64, reservingRecords: Int = 0) {
            self.monotonicNow = monotonicNow
            bytes = []
            bytes.reserveCapacity(StateSnapshot.headerLength + reservingRecords * StateSnapshot.recordLength)
            bytes += StateSnapshot.magic
            put32(StateSnapshot.byteOrderMark)
            put16(StateSnapshot.version)
            put16(UInt16(StateSnapshot.headerLength))
            put16(UInt16(StateSnapshot.recordLength))
            put16(0)
            put32(0)        // count, set by `finish`
            put64(wallTime)
            put64(0)
            put32(0)        // proxy section length, set by `finish`
            put32(0)        // checksum, set by `finish`
        }

        /// Adds one connection. A connection that has expired at `monotonicNow` is left out.
        public mutating func append(_ connection: Connection, queue: UInt16, proxy: SynProxyState? = nil) {
            guard connection.expiresAt > monotonicNow else { return }
            if let proxy { proxies.append((UInt32(count), proxy)) }
            putRecord(connection, queue: queue)
            count += 1
        }

        /// Continues `bytes` with records only, no header: the sync protocol's records
        /// (StateSnapshot.appendRecord).
        init(continuing bytes: [UInt8], monotonicNow: UInt64) {
            self.bytes = bytes
            self.monotonicNow = monotonicNow
        }

        mutating func putRecord(_ connection: Connection, queue: UInt16) {
            let start = bytes.count
            put16(queue)
            put8(connection.key.protocolNumber)
            put8(connection.state.rawValue)
            put8(connection.status.rawValue)
            put8(connection.direction.rawValue)
            put8(connection.lastIndex.rawValue)
            put8(connection.lastDirection.rawValue)
            putAddress(connection.key.source)
            putAddress(connection.key.destination)
            put16(connection.key.sourcePort)
            put16(connection.key.destinationPort)
            put32(connection.lastSequence)
            put32(connection.lastAcknowledgment)
            put32(connection.lastEnd)
            put16(connection.lastWindow)
            put8(connection.lastWindowScale)
            put8(connection.lastPeerFlags.rawValue)
            put8(connection.retransmissions)
            put8(connection.closing.rawValue)
            put8(0); put8(0)
            putPeer(connection.original)
            putPeer(connection.reply)
            put64(connection.expiresAt - monotonicNow)
            // A connection opened after `monotonicNow` (while the snapshot was being taken)
            // is as good as new.
            put64(monotonicNow > connection.createdAt ? monotonicNow - connection.createdAt : 0)
            put64(connection.packetsOriginal)
            put64(connection.packetsReply)
            put64(connection.bytesOriginal)
            put64(connection.bytesReply)
            assert(bytes.count - start == StateSnapshot.recordLength)
        }

        /// The finished file.
        /// The table section, by table name: u32 table count, then for each table a u16 name
        /// length, the name in UTF-8, u32 added count, u32 deleted count, and the added then the
        /// deleted entries, 18 bytes each (an address as in a record, u8 prefix length, u8 flags:
        /// bit 0 an exception). Tables with no changes are left out.
        /// The proxy section: u32 count, then for each proxied connection u32 the index of its
        /// record and its state (`proxyStateLength` bytes). Left out when no connection is proxied.
        public mutating func finish() -> [UInt8] {
            let tableStart = bytes.count
            let changed = tables.filter { !$0.value.isEmpty }.sorted { $0.key < $1.key }
            if !changed.isEmpty {
                put32(UInt32(changed.count))
                for (name, changes) in changed {
                    let utf8 = Array(name.utf8)
                    put16(UInt16(utf8.count))
                    bytes += utf8
                    put32(UInt32(changes.added.count))
                    put32(UInt32(changes.deleted.count))
                    for entry in changes.added + changes.deleted {
                        putAddress(entry.network.address)
                        put8(UInt8(entry.network.prefixLength))
                        put8(entry.negated ? 1 : 0)
                    }
                }
            }
            StateSnapshot.store32(UInt32(bytes.count - tableStart), at: StateSnapshot.tableSectionOffset, in: &bytes)
            let proxyStart = bytes.count
            if !proxies.isEmpty {
                put32(UInt32(proxies.count))
                for (record, state) in proxies {
                    put32(record)
                    putProxyState(state)
                }
            }
            StateSnapshot.store32(UInt32(bytes.count - proxyStart), at: StateSnapshot.proxySectionOffset, in: &bytes)
            StateSnapshot.store32(UInt32(count), at: 20, in: &bytes)
            StateSnapshot.store32(StateSnapshot.checksum(of: bytes), at: StateSnapshot.checksumOffset, in: &bytes)
            return bytes
        }

        mutating func put8(_ value: UInt8) { bytes.append(value) }
        mutating func put16(_ value: UInt16) { putBytes(of: value.littleEndian) }
        mutating func put32(_ value: UInt32) { putBytes(of: value.littleEndian) }
        mutating func put64(_ value: UInt64) { putBytes(of: value.littleEndian) }

        /// An integer's bytes as they are in memory: callers convert to the byte order wanted.
        mutating func putBytes<T: FixedWidthInteger>(of value: T) {
            withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) }
        }

        /// An address as its 16 bytes in network order (IPv4 mapped), like on the wire.
        mutating func putAddress(_ address: IPAddress) {
            putBytes(of: address.high.bigEndian)
            putBytes(of: address.low.bigEndian)
        }

        /// 20 bytes: end, maxEnd, maxWindow, maxAck, scale, flags, 2 reserved.
        mutating func putPeer(_ peer: TCPPeerState) {
            put32(peer.end)
            put32(peer.maxEnd)
            put32(peer.maxWindow)
            put32(peer.maxAck)
            put8(peer.scale)
            put8(peer.flags.rawValue)
            put16(0)
        }
    }

    // MARK: Decoding

    /// Reads a state file made by `Encoder`. `maximumRecords` bounds what is accepted (the
    /// tables' capacity: a larger file is refused whole rather than cut at some arbitrary
    /// connection). `wallNow` and `monotonicNow` are the present on both clocks.
    public static func decode(_ bytes: UnsafeRawBufferPointer, maximumRecords: Int, wallNow: UInt64,
                              monotonicNow: UInt64) throws(DecodeError) -> Loaded {
        // What there is of the magic must match; then a short file is a cut-off one.
        guard bytes.prefix(magic.count).elementsEqual(magic.prefix(min(bytes.count, magic.count))) else {
            throw .notAStateFile
        }
        guard bytes.count >= headerLength else { throw .truncated(expected: headerLength, actual: bytes.count) }
        var reader = Reader(bytes: bytes, offset: magic.count)
        let mark = reader.u32()
        if mark == byteOrderMark.byteSwapped { throw .wrongByteOrder }
        guard mark == byteOrderMark else { throw .badLayout("byte-order mark \(hex(mark))") }
        let fileVersion = reader.u16()
        guard fileVersion == version else { throw .unsupportedVersion(fileVersion) }
        let fileHeaderLength = Int(reader.u16()), fileRecordLength = Int(reader.u16())
        guard fileHeaderLength == headerLength else { throw .badLayout("header length \(fileHeaderLength)") }
        guard fileRecordLength == recordLength else { throw .badLayout("record length \(fileRecordLength)") }
        _ = reader.u16()
        let count = Int(reader.u32())
        let savedAt = reader.u64()
        let tableLength = reader.u64()
        let proxyLength = Int(reader.u32())
        guard count <= maximumRecords else { throw .tooLarge(records: count, limit: maximumRecords) }
        guard tableLength <= UInt64(maximumTableSectionLength) else { throw .badLayout("table section of \(tableLength) bytes") }
        guard proxyLength <= 4 + count * (4 + proxyStateLength) else { throw .badLayout("proxy section of \(proxyLength) bytes") }
        let expected = headerLength + count * recordLength + Int(tableLength) + proxyLength
        guard bytes.count >= expected else { throw .truncated(expected: expected, actual: bytes.count) }
        guard bytes.count == expected else { throw .trailingBytes(bytes.count - expected) }
        reader.offset = checksumOffset
        guard reader.u32() == checksum(of: bytes) else { throw .badChecksum }

        let downtime = wallNow > savedAt ? wallNow - savedAt : 0
        var loaded = Loaded(savedAt: savedAt, downtime: downtime, entries: [], expired: 0)
        loaded.entries.reserveCapacity(count)
        let proxies = try decodeProxies(bytes, at: expected - proxyLength, end: expected, records: count)
        for index in 0..<count {
            reader.offset = headerLength + index * recordLength
            let (entry, remaining, age) = try decodeRecord(&reader, index: index)
            guard remaining > downtime else {
                loaded.expired += 1
                continue
            }
            var aged = entry
            aged.proxy = proxies[index]
            aged.connection.expiresAt = monotonicNow &+ (remaining - downtime)
            let sinceOpened = age &+ downtime
            aged.connection.createdAt = monotonicNow > sinceOpened ? monotonicNow - sinceOpened : 0
            loaded.entries.append(aged)
        }
        reader.offset = headerLength + count * recordLength
        loaded.tables = try decodeTables(&reader, end: expected - proxyLength)
        return loaded
    }

    /// The proxy section (`Encoder.finish()`): each record index named at most once.
    static func decodeProxies(_ bytes: UnsafeRawBufferPointer, at start: Int, end: Int,
                              records: Int) throws(DecodeError) -> [Int: SynProxyState] {
        guard start < end else { return [:] }
        func bad(_ what: String) -> DecodeError { .badLayout("proxy section: \(what)") }
        var reader = Reader(bytes: bytes, offset: start)
        guard end - start >= 4 else { throw bad("cut short") }
        let count = Int(reader.u32())
        guard end - reader.offset == count * (4 + proxyStateLength) else { throw bad("\(count) states in \(end - start) bytes") }
        var proxies: [Int: SynProxyState] = [:]
        for _ in 0..<count {
            let record = Int(reader.u32())
            guard record < records, proxies[record] == nil else { throw bad("record \(record) out of range or repeated") }
            guard let state = reader.proxyState() else { throw bad("state of record \(record)") }
            proxies[record] = state
        }
        return proxies
    }

    /// The table section (`Encoder.finish()`), every length checked against what is left.
    static func decodeTables(_ reader: inout Reader, end: Int) throws(DecodeError) -> [String: TableChanges] {
        guard reader.offset < end else { return [:] }
        func bad(_ what: String) -> DecodeError { .badLayout("table section: \(what)") }
        guard end - reader.offset >= 4 else { throw bad("cut short") }
        var tables: [String: TableChanges] = [:]
        for _ in 0..<reader.u32() {
            guard end - reader.offset >= 2 else { throw bad("cut short") }
            let nameLength = Int(reader.u16())
            guard nameLength > 0, end - reader.offset >= nameLength + 8 else { throw bad("cut short") }
            guard let name = String(validating: reader.bytes[reader.offset..<(reader.offset + nameLength)], as: UTF8.self),
                  tables[name] == nil else { throw bad("bad or repeated table name") }
            reader.offset += nameLength
            let addedCount = Int(reader.u32()), deletedCount = Int(reader.u32())
            guard (end - reader.offset) / tableEntryLength >= addedCount + deletedCount else { throw bad("cut short") }
            var entries: [TableEntry] = []
            entries.reserveCapacity(addedCount + deletedCount)
            for _ in 0..<(addedCount + deletedCount) {
                let address = reader.address()
                let prefixLength = Int(reader.u8()), flags = reader.u8()
                guard prefixLength <= (address.isIPv4 ? 32 : 128), flags & ~1 == 0 else {
                    throw bad("entry \(address)/\(prefixLength) flags \(hex(flags)) in <\(name)>")
                }
                entries.append(TableEntry(IPNetwork(address: address, prefixLength: prefixLength), negated: flags == 1))
            }
            tables[name] = TableChanges(added: Array(entries[..<addedCount]), deleted: Array(entries[addedCount...]))
        }
        guard reader.offset == end else { throw .trailingBytes(end - reader.offset) }
        return tables
    }

    public static func decode(_ bytes: [UInt8], maximumRecords: Int, wallNow: UInt64,
                              monotonicNow: UInt64) throws(DecodeError) -> Loaded {
        // withUnsafeBytes rethrows untyped errors; carry the typed one out in a Result.
        try bytes.withUnsafeBytes { buffer in
            Result { () throws(DecodeError) -> Loaded in
                try decode(buffer, maximumRecords: maximumRecords, wallNow: wallNow, monotonicNow: monotonicNow)
            }
        }.get()
    }

    /// One record; every enumerated field and flag set is checked, so a record that passed
    /// the checksum but was written by something else cannot put a state in the table that no
    /// packet could have made.
    static func decodeRecord(_ reader: inout Reader, index: Int) throws(DecodeError)
        -> (entry: Entry, remaining: UInt64, age: UInt64) {
        func bad(_ reason: String) -> DecodeError { .badRecord(index: index, reason: reason) }
        let queue = reader.u16()
        let protocolNumber = reader.u8()
        guard let protocolName = TrackedProtocol(protocolNumber: protocolNumber) else {
            throw bad("protocol \(protocolNumber)")
        }
        let stateValue = reader.u8(), statusValue = reader.u8(), directionValue = reader.u8()
        let lastIndexValue = reader.u8(), lastDirectionValue = reader.u8()
        guard let state = TCPState(rawValue: stateValue) else { throw bad("state \(stateValue)") }
        // UDP and echo flows have no TCP state (ConnectionTracker+Datagram.swift).
        guard protocolName == .tcp || state == .none else { throw bad("state \(state) for \(protocolName.conntrackName)") }
        guard statusValue & ~knownStatus == 0 else { throw bad("status \(hex(statusValue))") }
        guard let direction = Direction(rawValue: directionValue) else { throw bad("direction \(directionValue)") }
        guard let lastIndex = TCPFlagIndex(rawValue: lastIndexValue) else { throw bad("last index \(lastIndexValue)") }
        guard let lastDirection = FlowDirection(rawValue: lastDirectionValue) else {
            throw bad("last direction \(lastDirectionValue)")
        }
        let source = reader.address(), destination = reader.address()
        guard source.isIPv4 == destination.isIPv4 else { throw bad("mixed address families") }
        guard protocolName != .icmp || source.isIPv4, protocolName != .icmp6 || !source.isIPv4 else {
            throw bad("\(protocolName.conntrackName) with \(source.isIPv4 ? "IPv4" : "IPv6") addresses")
        }
        let key = FlowKey(source: source, destination: destination, sourcePort: reader.u16(),
                          destinationPort: reader.u16(), protocolNumber: protocolNumber)
        var connection = Connection(key: key, direction: direction)
        connection.state = state
        connection.status = ConnectionStatus(rawValue: statusValue)
        connection.lastIndex = lastIndex
        connection.lastDirection = lastDirection
        connection.lastSequence = reader.u32()
        connection.lastAcknowledgment = reader.u32()
        connection.lastEnd = reader.u32()
        connection.lastWindow = reader.u16()
        connection.lastWindowScale = reader.u8()
        // The scale of the last SYN seen, which a SYN-ACK resync gives back to the opener as
        // its peer scale: the same bound as the peers' (RFC 7323 2.3).
        guard connection.lastWindowScale <= 14 else { throw bad("last window scale \(connection.lastWindowScale)") }
        let lastPeerFlags = reader.u8()
        guard lastPeerFlags & ~knownPeerFlags == 0 else { throw bad("last flags \(hex(lastPeerFlags))") }
        connection.lastPeerFlags = PeerFlags(rawValue: lastPeerFlags)
        connection.retransmissions = reader.u8()
        let closing = reader.u8()
        guard closing & ~CloseProgress.known.rawValue == 0 else { throw bad("close progress \(hex(closing))") }
        reader.offset += 2
        for side in [FlowDirection.original, .reply] {
            var peer = TCPPeerState()
            peer.end = reader.u32()
            peer.maxEnd = reader.u32()
            peer.maxWindow = reader.u32()
            peer.maxAck = reader.u32()
            peer.scale = reader.u8()
            let flags = reader.u8()
            reader.offset += 2
            // RFC 7323 2.3: the tracker never keeps a shift over 14.
            guard peer.scale <= 14 else { throw bad("window scale \(peer.scale)") }
            guard flags & ~knownPeerFlags == 0 else { throw bad("peer flags \(hex(flags))") }
            peer.flags = PeerFlags(rawValue: flags)
            connection.setPeer(side, peer)
        }
        // 0 is also what a file written before the bookkeeping holds.
        connection.closing = closing != 0 ? CloseProgress(rawValue: closing)
            : CloseProgress.implied(original: connection.original.flags, reply: connection.reply.flags)
        let remaining = reader.u64(), age = reader.u64()
        connection.packetsOriginal = reader.u64()
        connection.packetsReply = reader.u64()
        connection.bytesOriginal = reader.u64()
        connection.bytesReply = reader.u64()
        return (Entry(queue: queue, connection: connection), remaining, age)
    }

    // MARK: One record

    /// Appends one connection's record (`recordLength` bytes, as in a state file) to `bytes`,
    /// its lifetime and age relative to `monotonicNow`: the sync protocol sends connections
    /// in this encoding (docs/sync-protocol.md), so a record means the same in both places.
    /// An expired connection is written with 0 remaining.
    public static func appendRecord(_ connection: Connection, queue: UInt16, monotonicNow: UInt64,
                                    to bytes: inout [UInt8]) {
        var writer = Encoder(continuing: bytes, monotonicNow: monotonicNow)
        bytes = []
        var alive = connection
        if alive.expiresAt < monotonicNow { alive.expiresAt = monotonicNow }
        writer.putRecord(alive, queue: queue)
        bytes = writer.bytes
    }

    /// Reads one record at `offset` (which must leave `recordLength` bytes), every field
    /// checked as in a state file; the connection's deadline and age are put on the reader's
    /// clock at `monotonicNow`. Returns nil with the reason when the record is bad.
    public static func decodeRecord(_ bytes: UnsafeRawBufferPointer, at offset: Int,
                                    monotonicNow: UInt64) -> Result<(entry: Entry, remaining: UInt64), DecodeError> {
        guard offset >= 0, bytes.count - offset >= recordLength else {
            return .failure(.truncated(expected: recordLength, actual: max(0, bytes.count - offset)))
        }
        var reader = Reader(bytes: bytes, offset: offset)
        do {
            var (entry, remaining, age) = try decodeRecord(&reader, index: 0)
            entry.connection.expiresAt = monotonicNow &+ remaining
            entry.connection.createdAt = monotonicNow > age ? monotonicNow - age : 0
            return .success((entry, remaining))
        } catch {
            return .failure(error)
        }
    }

    /// The flag bits a tracker sets; anything else in a file is corruption. Every bit of
    /// ConnectionStatus (up to the dropped-close notes) and of PeerFlags (up to `.relearning`,
    /// which a snapshot taken soon after a restore has) is in use today.
    static let knownStatus: UInt8 = 0xFF
    static let knownPeerFlags: UInt8 = 0xFF

    struct Reader {
        let bytes: UnsafeRawBufferPointer
        var offset: Int

        @inline(__always)
        mutating func u8() -> UInt8 {
            defer { offset += 1 }
            return bytes[offset]
        }

        @inline(__always)
        mutating func u16() -> UInt16 { UInt16(littleEndian: load()) }
        @inline(__always)
        mutating func u32() -> UInt32 { UInt32(littleEndian: load()) }
        @inline(__always)
        mutating func u64() -> UInt64 { UInt64(littleEndian: load()) }

        /// One field's bytes as they lie (a record's fields are not aligned). A sync receiver
        /// reads every entry the peer sends through here, byte by byte before.
        @inline(__always)
        private mutating func load<T: FixedWidthInteger>() -> T {
            precondition(offset >= 0 && bytes.count - offset >= MemoryLayout<T>.size, "a state record read past its end")
            defer { offset += MemoryLayout<T>.size }
            return bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        }

        /// 16 bytes in network order.
        @inline(__always)
        mutating func address() -> IPAddress {
            let high = UInt64(bigEndian: load()), low = UInt64(bigEndian: load())
            return IPAddress(high: high, low: low)
        }
    }

    static func store32(_ value: UInt32, at offset: Int, in bytes: inout [UInt8]) {
        for index in 0..<4 { bytes[offset + index] = UInt8(truncatingIfNeeded: value >> UInt32(8 * index)) }
    }

    static func hex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }

    // MARK: Checksum

    /// CRC-32 of the header before the checksum field and of every record.
    static func checksum<Bytes: Collection>(of bytes: Bytes) -> UInt32 where Bytes.Element == UInt8, Bytes.Index == Int {
        var crc = CRC32()
        crc.update(bytes[bytes.startIndex..<(bytes.startIndex + checksumOffset)])
        crc.update(bytes[(bytes.startIndex + headerLength)...])
        return crc.value
    }
}
