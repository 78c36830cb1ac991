/// The connection table: the connections in a dense array of exactly `limit` entries, found
/// through an open-addressing index of (tag, entry) pairs with linear probing, a seeded hash
/// that is the same for both directions, and backward-shift deletion (no tombstones, so probe
/// chains never rot). Sized once; never grows, never allocates after init.
///
/// Why two arrays: a power-of-two table of inline connections, kept at a load of at most 3/4,
/// leaves between a third and well over half of its connection-sized slots empty. Here the
/// slack is in the index, 8 bytes a position, and the connections are packed (BENCHMARKS.md
/// has the bytes per connection), while a lookup still costs one index probe (tag and entry
/// share 8 bytes) and one connection. Removing an entry moves the last one into the
/// hole, so the array stays dense: its index position and its wheel links move with it.
///
/// Every entry is also filed on an expiry wheel by its deadline (ExpiryWheel): the tracker asks
/// the table for the connections that have come due, at a cost that follows their number, not
/// the table's size.
///
/// Single-owner: a table belongs to one worker thread and is never shared.
public final class ConnectionTable {
    /// The most connections it holds (`limit states`).
    public let limit: Int
    /// Entry slots: `limit`. The connections are in slots 0..<count.
    public var capacity: Int { limit }
    /// Index positions: a power of two with the load kept at or under 3/4.
    let indexCapacity: Int
    /// How many connections it holds. Kept behind a pointer, as ConnectionTracker.hot is, so
    /// that the packet path reads it without a run-time exclusivity check.
    public var count: Int { countStorage.pointee }
    let countStorage: UnsafeMutablePointer<Int>
    /// `indexCapacity - 1`.
    let indexMask: Int
    let hasher: FlowHasher
    struct IndexEntry {
        /// 0 when the position is empty, else the flow hash with the top bit set.
        var tag: UInt32
        /// The entry slot of the connection.
        var slot: UInt32
    }
    /// Regions allocated once (MemoryRegion), not arrays: they start on a huge page, and a
    /// lookup reads them with no uniqueness, bounds or exclusivity check.
    let index: UnsafeMutablePointer<IndexEntry>
    let slots: UnsafeMutablePointer<Connection>
    private let indexRegion: MemoryRegion
    private let slotsRegion: MemoryRegion
    var wheel: ExpiryWheel
    /// The SYN proxy's side table (docs/synproxy.md): the SynProxyState of the proxied
    /// connection in the same slot, valid where `Connection.proxied` is set. Kept beside the
    /// slots rather than in them, so that a connection of any other rule stays its size; made
    /// only once a policy has a `synproxy` rule (`makeProxyStates`).
    private(set) var proxyStates: UnsafeMutablePointer<SynProxyState>?

    /// One-second buckets on the expiry wheel: a power of two, and the wheel's turn in seconds.
    public static let defaultWheelBuckets = ExpiryWheel.defaultBucketCount

    /// The huge page size of x86-64 and arm64 Linux (transparent huge pages, PMD level).
    public static let hugePageBytes = 2 << 20

    /// `wheelBuckets` sets the expiry wheel's size (tests shrink it to make turns short).
    /// `regionProvider`, when given, provides the index and the connection slots when they are
    /// large enough to hold a huge page (RegionProvider), so that the index's initialisation
    /// already faults huge pages in: at 1M connections the two arrays span some 44,000 4 KiB
    /// pages, far more than the TLB holds, and nearly every lookup in random order would pay a
    /// page walk on top of its cache misses (BENCHMARKS.md).
    public init(limit: Int, hasher: FlowHasher = FlowHasher(), wheelBuckets: Int = ConnectionTable.defaultWheelBuckets,
                regionProvider: RegionProvider? = nil) {
        precondition(limit > 0, "a table holds at least one connection")
        precondition(limit < Int(UInt32.max), "entry slots are 32-bit in the index")
        self.limit = limit
        var indexCapacity = 16
        while indexCapacity * 3 < limit * 4 { indexCapacity <<= 1 }
        self.indexCapacity = indexCapacity
        self.indexMask = indexCapacity - 1
        self.hasher = hasher
        countStorage = .allocate(capacity: 1)
        countStorage.initialize(to: 0)
        indexRegion = MemoryRegion(IndexEntry.self, count: indexCapacity, provider: regionProvider)
        index = indexRegion.base.bindMemory(to: IndexEntry.self, capacity: indexCapacity)
        index.initialize(repeating: IndexEntry(tag: 0, slot: 0), count: indexCapacity)
        // Connection is a trivial type: slots are written before they are read, and
        // untouched pages of a large table cost no memory until used.
        slotsRegion = MemoryRegion(Connection.self, count: limit, provider: regionProvider)
        slots = slotsRegion.base.bindMemory(to: Connection.self, capacity: limit)
        wheel = ExpiryWheel(slotCount: limit, bucketCount: wheelBuckets)
    }

    deinit {
        countStorage.deallocate()
        indexRegion.release()
        slotsRegion.release()
        wheel.deallocate()
        proxyStates?.deallocate()
    }

    /// Makes the SYN proxy's side table, once: room for a state per slot.
    func makeProxyStates() {
        if proxyStates == nil { proxyStates = .allocate(capacity: limit) }
    }

    /// Bytes the table holds for its `limit` connections once they are all there: the entry
    /// slots, the wheel's links per slot and the index (the wheel's bucket heads aside).
    public var bytes: Int {
        limit * (MemoryLayout<Connection>.stride + MemoryLayout<ExpiryWheel.Links>.stride)
            + indexCapacity * MemoryLayout<IndexEntry>.stride
    }

    public var isFull: Bool { count >= limit }

    func tag(for hash: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: hash) | 0x8000_0000 }

    /// The index position a probe for `tag` starts at.
    func home(of tag: UInt32) -> Int { Int(tag & 0x7FFF_FFFF) & indexMask }

    /// The slot holding the connection a packet with `key` belongs to, and which way the packet
    /// goes in it.
    // Always inlined: every packet looks its connection up; a call would spill the key the caller holds in
    // registers.
    @inline(__always)
    func find(_ key: FlowKey) -> (slot: Int, direction: FlowDirection)? {
        let wanted = tag(for: hasher.hash(key))
        var position = home(of: wanted)
        while true {
            let entry = index[position]
            if entry.tag == 0 { return nil }
            if entry.tag == wanted {
                let slot = Int(entry.slot)
                let stored = slots[slot].key
                if stored == key { return (slot, .original) }
                if stored == key.reversed { return (slot, .reply) }
            }
            position = (position + 1) & indexMask
        }
    }

    /// Where `key`'s probe sequence starts in the index. The entries from here on are the ones
    /// a new connection with this key competes with for room (early drop).
    func homePosition(of key: FlowKey) -> Int { home(of: tag(for: hasher.hash(key))) }

    /// The slot of the connection at index position `position`, nil when the position is empty.
    func slot(atPosition position: Int) -> Int? {
        let entry = index[position]
        return entry.tag == 0 ? nil : Int(entry.slot)
    }

    /// The index position that leads to an occupied `slot`.
    func position(of slot: Int) -> Int {
        var position = home(of: tag(for: hasher.hash(slots[slot].key)))
        while index[position].tag == 0 || Int(index[position].slot) != slot {
            precondition(index[position].tag != 0, "an occupied slot is missing from the index")
            position = (position + 1) & indexMask
        }
        return position
    }

    /// Stores a new connection (its key must not be in the table). Nil when the table is full.
    @discardableResult
    func insert(_ connection: Connection) -> Int? {
        guard count < limit else { return nil }
        let newTag = tag(for: hasher.hash(connection.key))
        var position = home(of: newTag)
        while index[position].tag != 0 { position = (position + 1) & indexMask }
        let slot = count
        index[position] = IndexEntry(tag: newTag, slot: UInt32(truncatingIfNeeded: slot))
        (slots + slot).initialize(to: connection)
        slots[slot].wheelTick = wheel.file(slot, deadline: connection.expiresAt, halfway: true)
        countStorage.pointee += 1
        return slot
    }

    func isOccupied(_ slot: Int) -> Bool { slot < count }

    /// The connection in an occupied slot, for reading and updating in place.
    func connection(at slot: Int) -> UnsafeMutablePointer<Connection> { slots + slot }

    /// Empties a slot: its index position goes, later members of its probe chain shift back
    /// into place, and the last connection moves into the slot (the slot numbers of other
    /// connections stay as they were).
    func remove(at slot: Int) {
        precondition(slot < count, "removing an empty slot")
        wheel.unlink(slot)
        var hole = position(of: slot)
        var next = (hole + 1) & indexMask
        while index[next].tag != 0 {
            let home = home(of: index[next].tag)
            // The entry at `next` may move into the hole only if its home is not in (hole, next].
            let between = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next)
            if !between {
                index[hole] = index[next]
                hole = next
            }
            next = (next + 1) & indexMask
        }
        index[hole].tag = 0
        let last = count - 1
        if slot != last {
            index[position(of: last)].slot = UInt32(truncatingIfNeeded: slot)
            slots[slot] = slots[last]
            wheel.move(from: last, to: slot)
            // A proxied connection's side state moves with it.
            if slots[slot].proxied, let proxyStates { (proxyStates + slot).initialize(to: proxyStates[last]) }
        }
        countStorage.pointee -= 1
    }

    /// Calls `body` with each occupied slot from cursor `start` (0 to begin), up to `limit`
    /// slots examined; returns the cursor to continue from (capacity when done). For listing in
    /// chunks without holding the worker for long, with packets handled between chunks.
    ///
    /// The cursor walks the slots from the last down: a removal moves the last connection into
    /// the hole, so a walk upwards would miss every connection moved from ahead of it into a
    /// slot it had passed. Walking down, a moved connection comes from a slot already passed
    /// (it may be listed twice) or from one still ahead (it is listed once); none is missed.
    func forEachSlot(from start: Int, examining slotLimit: Int, _ body: (Int, Connection) -> Void) -> Int {
        var cursor = start
        let end = min(capacity, start + slotLimit)
        while cursor < end {
            let slot = capacity - 1 - cursor
            if slot < count { body(slot, slots[slot]) }
            cursor += 1
        }
        return cursor
    }

    /// Removes every connection.
    func removeAll() {
        index.update(repeating: IndexEntry(tag: 0, slot: 0), count: indexCapacity)
        countStorage.pointee = 0
        wheel.reset()
    }

    // MARK: Expiry

    /// Call after a packet may have changed the deadline of the connection in `slot`. Nothing
    /// happens unless the deadline moved before the tick the wheel will look at it next (a
    /// later deadline is refiled when that look comes): the packet path stays off the wheel.
    // Always inlined: every tracked packet runs its one comparison, which a call would outweigh.
    @inline(__always)
    func deadlineChanged(at slot: Int) {
        let connection = slots + slot
        if ExpiryWheel.isEarlier(connection.pointee.expiresAt, thanVisit: connection.pointee.wheelTick) {
            refile(slot)
        }
    }

    /// Files the connection in `slot` again, by its current deadline.
    func refile(_ slot: Int) {
        wheel.unlink(slot)
        slots[slot].wheelTick = wheel.file(slot, deadline: slots[slot].expiresAt)
    }

    /// The slot of a connection whose deadline may have come at `now`, nil when none may have.
    /// The caller removes it or, when its deadline turns out to be later, refiles it; either
    /// way it leaves the list of candidates.
    func nextExpiryCandidate(now: UInt64) -> Int? {
        wheel.nextCandidate(now: now)
    }
}
