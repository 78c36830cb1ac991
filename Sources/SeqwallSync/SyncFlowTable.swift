import SeqwallCore

/// What the sync thread keeps per connection (SyncCoalescer), by flow key: an open-addressing
/// table with linear probing and backward-shift deletion (no tombstones, Knuth 6.4 algorithm
/// R), the same seeded flow hash as the workers' tables (FlowHasher).
///
/// Every change of every worker is looked up here, and among tens of thousands of connections
/// (TIME_WAIT included) a connection's first change finds its position cold: the lookup's
/// cost is its cache misses. So a position is one 64-byte line, aligned: the tag, the key and
/// the value together (the coalescer's value is 16 bytes, SyncCoalescer.Known), and a lookup
/// that finds its key at home reads one line of memory. (A dense array of tags beside an
/// array of entries read two: the tag's, then the entry's, which straddled two lines.)
///
/// The keys are chosen by whoever sends packets through the firewall: the hash is seeded at
/// random for each table so they cannot be aimed at one probe run (HashDoS).
///
/// A position (`find`, `findOrInsert`) stays valid until the next insertion or removal.
struct SyncFlowTable<Value> {
    struct Entry {
        /// 0: empty; else the top half of the key's hash with bit 0 set.
        var tag: UInt32
        var key: FlowKey
        var value: Value
    }

    /// The positions, allocated on a cache line, shared until written (copy on write). A
    /// table of a huge page or more takes its positions from `regions` when it has one (the
    /// daemon's: huge pages, HugePageRegions): written whole when made, a table of 65,536
    /// positions (4 MiB) is otherwise 1,024 page faults at once, and its random probes each
    /// want a TLB entry of their own (BENCHMARKS.md, State sync end to end).
    final class Storage {
        let entries: UnsafeMutablePointer<Entry>
        let size: Int
        private let regions: RegionProvider?
        /// Whether `entries` came from `regions`.
        private let mapped: Bool

        init(size: Int, placeholder: Entry, regions: RegionProvider?) {
            self.size = size
            self.regions = regions
            let byteCount = size * MemoryLayout<Entry>.stride
            let region = byteCount >= ConnectionTable.hugePageBytes ? regions?.allocate(byteCount) : nil
            mapped = region != nil
            let raw = region ?? UnsafeMutableRawPointer.allocate(byteCount: byteCount,
                                                                 alignment: max(64, MemoryLayout<Entry>.alignment))
            entries = raw.bindMemory(to: Entry.self, capacity: size)
            entries.initialize(repeating: placeholder, count: size)
        }

        func copy() -> Storage {
            let copy = Storage(size: size, placeholder: entries[0], regions: regions)
            copy.entries.update(from: entries, count: size)
            return copy
        }

        deinit {
            entries.deinitialize(count: size)
            if mapped, let regions {
                regions.release(UnsafeMutableRawPointer(entries), size * MemoryLayout<Entry>.stride)
            } else {
                UnsafeMutableRawPointer(entries).deallocate()
            }
        }
    }

    private let hasher: FlowHasher
    private let regions: RegionProvider?
    private var storage: Storage
    private let placeholder: Entry
    private var mask: Int
    private(set) var count = 0

    /// Room for `capacity` keys before it grows; `placeholder` fills empty positions;
    /// `regions`: where a large table's positions come from (Storage).
    init(capacity: Int, placeholder: Value, hasher: FlowHasher = FlowHasher(), regions: RegionProvider? = nil) {
        self.hasher = hasher
        self.regions = regions
        self.placeholder = Entry(tag: 0, key: FlowKey(source: IPAddress(high: 0, low: 0),
                                                      destination: IPAddress(high: 0, low: 0),
                                                      sourcePort: 0, destinationPort: 0, protocolNumber: 0),
                                 value: placeholder)
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        storage = Storage(size: size, placeholder: self.placeholder, regions: regions)
        mask = size - 1
    }

    private var entries: UnsafeMutablePointer<Entry> { storage.entries }

    /// Before a write: a copy of the table (a value) no longer shares its positions.
    @inline(__always)
    private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// The key's tag: the top half of its seeded hash, bit 0 set. A caller that looks a key up
    /// twice (touch, then find) computes it once and hands it to both.
    @inline(__always)
    func tag(of key: FlowKey) -> UInt32 { UInt32(truncatingIfNeeded: hasher.hash(key) >> 32) | 1 }

    @inline(__always)
    private func home(of tag: UInt32) -> Int { Int(tag >> 1) & mask }

    /// The position holding `key`, nil when it is not held.
    func find(_ key: FlowKey) -> Int? { find(key, tag: tag(of: key)) }

    /// As `find(_:)`, `wanted` being `tag(of: key)`.
    func find(_ key: FlowKey, tag wanted: UInt32) -> Int? {
        var position = home(of: wanted)
        while true {
            let found = entries[position].tag
            if found == 0 { return nil }
            if found == wanted && entries[position].key == key { return position }
            position = (position + 1) & mask
        }
    }

    /// The position holding `key`, after putting it there with `value` when it was not held.
    mutating func findOrInsert(_ key: FlowKey, _ value: @autoclosure () -> Value) -> Int {
        findOrInsert(key, tag: tag(of: key), value())
    }

    /// As `findOrInsert(_:_:)`, `wanted` being `tag(of: key)`.
    mutating func findOrInsert(_ key: FlowKey, tag wanted: UInt32, _ value: @autoclosure () -> Value) -> Int {
        var position = home(of: wanted)
        while true {
            let found = entries[position].tag
            if found == 0 { break }
            if found == wanted && entries[position].key == key { return position }
            position = (position + 1) & mask
        }
        if (count + 1) * 2 > storage.size {
            grow()
            return findOrInsert(key, tag: wanted, value())
        }
        makeUnique()
        entries[position] = Entry(tag: wanted, key: key, value: value())
        count += 1
        return position
    }

    /// Reads where `key` would be found, for nothing but to bring it into the cache: the
    /// coalescer touches a turn's keys first, so that their misses overlap instead of stalling
    /// one lookup after another. The value returned is only there to keep the reads.
    func touch(tag: UInt32) -> UInt64 {
        UInt64(entries[home(of: tag)].tag)
    }

    subscript(position: Int) -> Value {
        get { entries[position].value }
        _modify {
            makeUnique()
            yield &entries[position].value
        }
    }

    func key(at position: Int) -> FlowKey { entries[position].key }

    /// Removes `key`; its value, nil when it was not held.
    @discardableResult
    mutating func remove(_ key: FlowKey) -> Value? { remove(key, tag: tag(of: key)) }

    /// As `remove(_:)`, `wanted` being `tag(of: key)`.
    @discardableResult
    mutating func remove(_ key: FlowKey, tag wanted: UInt32) -> Value? {
        guard let position = find(key, tag: wanted) else { return nil }
        let value = entries[position].value
        remove(at: position)
        return value
    }

    /// Empties `position`, moving back the entries after it that probing would no longer reach.
    private mutating func remove(at position: Int) {
        makeUnique()
        var hole = position, next = position
        while true {
            next = (next + 1) & mask
            let found = entries[next].tag
            if found == 0 { break }
            let wanted = home(of: found)
            // An entry stays when its home is cyclically within (hole, next].
            let stays = hole <= next ? (hole < wanted && wanted <= next) : (hole < wanted || wanted <= next)
            if stays { continue }
            entries[hole] = entries[next]
            hole = next
        }
        entries[hole] = placeholder
        count -= 1
    }

    private mutating func grow() {
        let old = storage
        storage = Storage(size: old.size * 2, placeholder: placeholder, regions: regions)
        mask = storage.size - 1
        for index in 0..<old.size where old.entries[index].tag != 0 {
            var position = home(of: old.entries[index].tag)
            while entries[position].tag != 0 { position = (position + 1) & mask }
            entries[position] = old.entries[index]
        }
    }

    /// Keeps the entries `keep` says to, after it may change their values.
    mutating func update(keeping keep: (inout Value) -> Bool) {
        makeUnique()
        var removed: [FlowKey] = []
        for position in 0..<storage.size where entries[position].tag != 0 {
            if !keep(&entries[position].value) { removed.append(entries[position].key) }
        }
        // Removal moves entries back: by key, once the pass is over.
        for key in removed { remove(key) }
    }

    func contains(where predicate: (Value) -> Bool) -> Bool {
        for position in 0..<storage.size where entries[position].tag != 0 && predicate(entries[position].value) {
            return true
        }
        return false
    }

    /// Every key and value, in no particular order.
    var all: [(key: FlowKey, value: Value)] {
        (0..<storage.size).filter { entries[$0].tag != 0 }.map { (entries[$0].key, entries[$0].value) }
    }
}
