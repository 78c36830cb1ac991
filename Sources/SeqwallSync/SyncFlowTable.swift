import SeqwallCore

/// What the sync thread keeps per connection (SyncCoalescer), by flow key: an open-addressing
/// table with linear probing and backward-shift deletion (no tombstones, Knuth 6.4 algorithm
/// R), the same seeded flow hash as the workers' tables (FlowHasher). Every change of every
/// worker is looked up here; a Swift Dictionary hashed each key with SipHash through Hasher
/// and read its keys and values from two arrays. Here a probe reads the dense array of hashes
/// and only a matching one reads its entry.
///
/// The keys are chosen by whoever sends packets through the firewall: the hash is seeded at
/// random for each table so they cannot be aimed at one probe run (HashDoS).
///
/// A position (`find`, `findOrInsert`) stays valid until the next insertion or removal.
struct SyncFlowTable<Value> {
    struct Entry {
        var key: FlowKey
        var value: Value
    }

    private let hasher: FlowHasher
    /// 0: empty; else the key's hash with bit 0 set.
    private var tags: [UInt64]
    private var entries: [Entry]
    private let placeholder: Entry
    private var mask: Int
    private(set) var count = 0

    /// Room for `capacity` keys before it grows; `placeholder` fills empty positions.
    init(capacity: Int, placeholder: Value, hasher: FlowHasher = FlowHasher()) {
        self.hasher = hasher
        self.placeholder = Entry(key: FlowKey(source: IPAddress(high: 0, low: 0), destination: IPAddress(high: 0, low: 0),
                                              sourcePort: 0, destinationPort: 0, protocolNumber: 0),
                                 value: placeholder)
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        tags = [UInt64](repeating: 0, count: size)
        entries = [Entry](repeating: self.placeholder, count: size)
        mask = size - 1
    }

    @inline(__always)
    private func tag(of key: FlowKey) -> UInt64 { hasher.hash(key) | 1 }

    @inline(__always)
    private func home(of tag: UInt64) -> Int { Int(truncatingIfNeeded: tag >> 1) & mask }

    /// The position holding `key`, nil when it is not held.
    func find(_ key: FlowKey) -> Int? {
        let wanted = tag(of: key)
        var position = home(of: wanted)
        while true {
            let found = tags[position]
            if found == 0 { return nil }
            if found == wanted && entries[position].key == key { return position }
            position = (position + 1) & mask
        }
    }

    /// The position holding `key`, after putting it there with `value` when it was not held.
    mutating func findOrInsert(_ key: FlowKey, _ value: @autoclosure () -> Value) -> Int {
        let wanted = tag(of: key)
        var position = home(of: wanted)
        while true {
            let found = tags[position]
            if found == 0 { break }
            if found == wanted && entries[position].key == key { return position }
            position = (position + 1) & mask
        }
        if (count + 1) * 2 > tags.count {
            grow()
            return findOrInsert(key, value())
        }
        tags[position] = wanted
        entries[position] = Entry(key: key, value: value())
        count += 1
        return position
    }

    /// Reads where `key` would be found, for nothing but to bring it into the cache: the
    /// coalescer touches a turn's keys first, so that their misses overlap instead of stalling
    /// one lookup after another. The value returned is only there to keep the reads.
    func touch(_ key: FlowKey) -> UInt64 {
        let position = home(of: tag(of: key))
        return tags[position] ^ UInt64(entries[position].key.sourcePort)
    }

    subscript(position: Int) -> Value {
        get { entries[position].value }
        _modify { yield &entries[position].value }
    }

    func key(at position: Int) -> FlowKey { entries[position].key }

    /// Removes `key`; its value, nil when it was not held.
    @discardableResult
    mutating func remove(_ key: FlowKey) -> Value? {
        guard let position = find(key) else { return nil }
        let value = entries[position].value
        remove(at: position)
        return value
    }

    /// Empties `position`, moving back the entries after it that probing would no longer reach.
    private mutating func remove(at position: Int) {
        var hole = position, next = position
        while true {
            next = (next + 1) & mask
            let found = tags[next]
            if found == 0 { break }
            let wanted = home(of: found)
            // An entry stays when its home is cyclically within (hole, next].
            let stays = hole <= next ? (hole < wanted && wanted <= next) : (hole < wanted || wanted <= next)
            if stays { continue }
            tags[hole] = found
            entries[hole] = entries[next]
            hole = next
        }
        tags[hole] = 0
        entries[hole] = placeholder
        count -= 1
    }

    private mutating func grow() {
        let oldTags = tags, oldEntries = entries
        tags = [UInt64](repeating: 0, count: oldTags.count * 2)
        entries = [Entry](repeating: placeholder, count: oldTags.count * 2)
        mask = tags.count - 1
        for index in oldTags.indices where oldTags[index] != 0 {
            var position = home(of: oldTags[index])
            while tags[position] != 0 { position = (position + 1) & mask }
            tags[position] = oldTags[index]
            entries[position] = oldEntries[index]
        }
    }

    /// Keeps the entries `keep` says to, after it may change their values.
    mutating func update(keeping keep: (inout Value) -> Bool) {
        var removed: [FlowKey] = []
        for position in tags.indices where tags[position] != 0 {
            if !keep(&entries[position].value) { removed.append(entries[position].key) }
        }
        // Removal moves entries back: by key, once the pass is over.
        for key in removed { remove(key) }
    }

    func contains(where predicate: (Value) -> Bool) -> Bool {
        for position in tags.indices where tags[position] != 0 && predicate(entries[position].value) { return true }
        return false
    }

    /// Every key and value, in no particular order.
    var all: [(key: FlowKey, value: Value)] {
        tags.indices.filter { tags[$0] != 0 }.map { (entries[$0].key, entries[$0].value) }
    }
}
