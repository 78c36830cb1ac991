/// The connection table: open addressing with linear probing, connections stored inline, a
/// seeded hash that is the same for both directions, and backward-shift deletion (no
/// tombstones, so probe chains never rot). Sized once; never grows, never allocates after init.
///
/// Every entry is also filed on an expiry wheel by its deadline (ExpiryWheel): the tracker asks
/// the table for the connections that have come due, at a cost that follows their number, not
/// the table's size.
///
/// Single-owner: a table belongs to one worker thread and is never shared.
public final class ConnectionTable {
    /// The most connections it holds (`limit states`).
    public let limit: Int
    /// Slots: a power of two with the load kept at or under 3/4.
    public let capacity: Int
    /// How many connections it holds. Kept behind a pointer, as ConnectionTracker.hot is, so
    /// that the packet path reads it without a run-time exclusivity check.
    public var count: Int { countStorage.pointee }
    let countStorage: UnsafeMutablePointer<Int>
    let mask: Int
    let hasher: FlowHasher
    /// Per slot: 0 when empty, else the flow hash with the top bit set.
    let tags: UnsafeMutablePointer<UInt32>
    let slots: UnsafeMutablePointer<Connection>
    var wheel: ExpiryWheel

    /// One-second buckets on the expiry wheel: a power of two, and the wheel's turn in seconds.
    public static let defaultWheelBuckets = ExpiryWheel.defaultBucketCount

    /// `wheelBuckets` sets the expiry wheel's size (tests shrink it to make turns short).
    public init(limit: Int, hasher: FlowHasher = FlowHasher(), wheelBuckets: Int = ConnectionTable.defaultWheelBuckets) {
        precondition(limit > 0, "a table holds at least one connection")
        self.limit = limit
        var capacity = 16
        while capacity * 3 < limit * 4 { capacity <<= 1 }
        self.capacity = capacity
        self.mask = capacity - 1
        self.hasher = hasher
        countStorage = .allocate(capacity: 1)
        countStorage.initialize(to: 0)
        tags = .allocate(capacity: capacity)
        tags.initialize(repeating: 0, count: capacity)
        // Connection is a trivial type: slots are written before they are read, and
        // untouched pages of a large table cost no memory until used.
        slots = .allocate(capacity: capacity)
        wheel = ExpiryWheel(slotCount: capacity, bucketCount: wheelBuckets)
    }

    deinit {
        countStorage.deallocate()
        tags.deallocate()
        slots.deallocate()
        wheel.deallocate()
    }

    @inline(__always)
    public var isFull: Bool { count >= limit }

    @inline(__always)
    func tag(for hash: UInt64) -> UInt32 { UInt32(truncatingIfNeeded: hash) | 0x8000_0000 }

    @inline(__always)
    func home(of tag: UInt32) -> Int { Int(tag & 0x7FFF_FFFF) & mask }

    /// The slot holding the connection a packet with `key` belongs to, and which way the packet
    /// goes in it.
    @inline(__always)
    public func find(_ key: FlowKey) -> (slot: Int, direction: FlowDirection)? {
        let wanted = tag(for: hasher.hash(key))
        var index = home(of: wanted)
        while true {
            let found = tags[index]
            if found == 0 { return nil }
            if found == wanted {
                let stored = slots[index].key
                if stored == key { return (index, .original) }
                if stored == key.reversed { return (index, .reply) }
            }
            index = (index + 1) & mask
        }
    }

    /// Where `key`'s probe sequence starts. The entries from here on are the ones a new
    /// connection with this key competes with for room (early drop).
    @inline(__always)
    public func homeSlot(of key: FlowKey) -> Int { home(of: tag(for: hasher.hash(key))) }

    /// Stores a new connection (its key must not be in the table). Nil when the table is full.
    @discardableResult
    public func insert(_ connection: Connection) -> Int? {
        guard count < limit else { return nil }
        let newTag = tag(for: hasher.hash(connection.key))
        var index = home(of: newTag)
        while tags[index] != 0 { index = (index + 1) & mask }
        tags[index] = newTag
        (slots + index).initialize(to: connection)
        slots[index].wheelTick = wheel.file(index, deadline: connection.expiresAt, halfway: true)
        countStorage.pointee += 1
        return index
    }

    @inline(__always)
    public func isOccupied(_ slot: Int) -> Bool { tags[slot] != 0 }

    /// The connection in an occupied slot, for reading and updating in place.
    @inline(__always)
    public func connection(at slot: Int) -> UnsafeMutablePointer<Connection> { slots + slot }

    /// Empties a slot and shifts later members of its probe chain back into place.
    public func remove(at slot: Int) {
        precondition(tags[slot] != 0, "removing an empty slot")
        wheel.unlink(slot)
        var hole = slot
        var next = (slot + 1) & mask
        while tags[next] != 0 {
            let home = home(of: tags[next])
            // The entry at `next` may move into the hole only if its home is not in (hole, next].
            let between = hole <= next ? (home > hole && home <= next) : (home > hole || home <= next)
            if !between {
                tags[hole] = tags[next]
                slots[hole] = slots[next]
                wheel.move(from: next, to: hole)
                hole = next
            }
            next = (next + 1) & mask
        }
        tags[hole] = 0
        countStorage.pointee -= 1
    }

    /// Calls `body` with each occupied slot from `start`, up to `limit` slots examined; returns
    /// where to continue (capacity when done). For listing in chunks without holding the
    /// worker for long.
    public func forEachSlot(from start: Int, examining slotLimit: Int, _ body: (Int, Connection) -> Void) -> Int {
        var index = start
        let end = min(capacity, start + slotLimit)
        while index < end {
            if tags[index] != 0 { body(index, slots[index]) }
            index += 1
        }
        return index
    }

    /// Removes every connection.
    public func removeAll() {
        tags.update(repeating: 0, count: capacity)
        countStorage.pointee = 0
        wheel.reset()
    }

    // MARK: Expiry

    /// Call after a packet may have changed the deadline of the connection in `slot`. Nothing
    /// happens unless the deadline moved before the tick the wheel will look at it next (a
    /// later deadline is refiled when that look comes): the packet path stays off the wheel.
    @inline(__always)
    public func deadlineChanged(at slot: Int) {
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
