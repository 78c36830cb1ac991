/// The connection table's deadlines on a hashed timing wheel (Varghese and Lauck, "Hashed and
/// Hierarchical Timing Wheels", scheme 6): one bucket per tick of one second, `bucketCount`
/// buckets, each a circular doubly-linked list of table slots. The links live in an array
/// beside the table, indexed by slot, so a slot costs 8 bytes more and Connection itself does
/// not grow; the table keeps them right when its backward-shift deletion moves an entry. A
/// node's two links share one 8-byte cell: unlinking touches three cache lines, not four.
///
/// Every node is an index: 0..<slotCount are the table's slots, then one list head per bucket,
/// then the head of the `taken` list, which holds a bucket that has come due while the tracker
/// works through it. Heads make every list circular, so linking and unlinking have no special
/// cases. Everything is allocated once; untouched pages of a large table cost nothing.
///
/// Filing is lazy. A connection is filed for its visit tick (Connection.wheelTick), the tick at
/// which the wheel will next look at it: its deadline's tick when that is within one turn of
/// the wheel, else the tick in the coming turn that shares its bucket (a long timeout comes
/// round again, once per turn); a new connection's first look is halfway to its deadline.
/// A packet that pushes the deadline later does not touch the wheel; the look refiles the
/// connection. Only a deadline moved earlier than its visit (a FIN or RST after a long idle
/// ESTABLISHED stretch) refiles it at once, so nothing outlives its deadline by more than a tick.
struct ExpiryWheel {
    static let tickNanoseconds: UInt64 = 1_000_000_000
    /// 4096 one-second buckets: a turn of 68 minutes holds every timeout but ESTABLISHED's, so
    /// an idle established connection is looked at once every 68 minutes (1M connections cost
    /// about 250 visits a second), and every other deadline is met on its own tick.
    static let defaultBucketCount = 4096

    let slotCount: Int
    let bucketCount: Int
    let bucketMask: UInt64
    struct Links {
        var next: UInt32
        var previous: UInt32
    }

    /// One region for the life of the table (a link per slot, then the bucket heads): every new
    /// and every removed connection relinks here, with no copy-on-write or exclusivity check.
    let links: UnsafeMutablePointer<Links>
    /// The first tick whose bucket has not been taken yet. Every filed connection has a visit
    /// tick in nextTick ..< nextTick + bucketCount, or is in the taken list.
    private(set) var nextTick: UInt64 = 1

    init(slotCount: Int, bucketCount: Int = ExpiryWheel.defaultBucketCount) {
        precondition(bucketCount > 0 && bucketCount & (bucketCount - 1) == 0, "bucket count is a power of two")
        precondition(slotCount + bucketCount + 1 <= Int(UInt32.max), "too many slots for 32-bit links")
        self.slotCount = slotCount
        self.bucketCount = bucketCount
        bucketMask = UInt64(bucketCount - 1)
        links = .allocate(capacity: slotCount + bucketCount + 1)
        // Slot links are written when a slot is filed, before they are read.
        reset()
    }

    func deallocate() {
        links.deallocate()
    }

    /// Empties every list (the table was emptied).
    mutating func reset() {
        for head in slotCount...(slotCount + bucketCount) {
            links[head] = Links(next: UInt32(head), previous: UInt32(head))
        }
    }

    var takenHead: Int { slotCount + bucketCount }

    func head(ofTick tick: UInt64) -> Int { slotCount + Int(tick & bucketMask) }

    /// The tick a deadline falls due on: the first whole tick at or after it.
    static func tick(of deadline: UInt64) -> UInt64 {
        deadline / tickNanoseconds + (deadline % tickNanoseconds == 0 ? 0 : 1)
    }

    /// Whether a connection filed for `visitTick` must be refiled because its deadline is now
    /// earlier than that visit.
    // Always inlined: on every tracked packet (ConnectionTable.deadlineChanged).
    @inline(__always)
    static func isEarlier(_ deadline: UInt64, thanVisit visitTick: UInt32) -> Bool {
        // tick(of: deadline) < visitTick, without dividing. Visit ticks are at least 1.
        deadline <= UInt64(visitTick &- 1) &* tickNanoseconds
    }

    /// Links `slot` into the bucket for `deadline`; returns its visit tick. With `halfway`, the
    /// first look comes halfway to the deadline: a new connection's deadline is about to move
    /// (the kernel's SYN_RECV timeout is half SYN_SENT's, and the SYN-ACK comes within a round
    /// trip), and a look that the wheel takes in its stride is cheaper than a refile from the
    /// packet path.
    mutating func file(_ slot: Int, deadline: UInt64, halfway: Bool = false) -> UInt32 {
        let current = nextTick - 1
        var due = ExpiryWheel.tick(of: deadline)
        if halfway && due > current { due = current + (due - current + 1) / 2 }
        // A deadline at or before the current tick is looked at on the next one.
        let visit = due <= current ? current + 1 : current + 1 + ((due - current - 1) & bucketMask)
        link(slot, before: head(ofTick: visit))
        return UInt32(truncatingIfNeeded: visit)
    }

    func next(_ node: Int) -> Int { Int(links[node].next) }

    func previous(_ node: Int) -> Int { Int(links[node].previous) }

    func link(_ node: Int, before successor: Int) {
        let predecessor = previous(successor)
        links[node] = Links(next: UInt32(truncatingIfNeeded: successor), previous: UInt32(truncatingIfNeeded: predecessor))
        links[predecessor].next = UInt32(truncatingIfNeeded: node)
        links[successor].previous = UInt32(truncatingIfNeeded: node)
    }

    func unlink(_ slot: Int) {
        let cell = links[slot]
        links[Int(cell.previous)].next = cell.next
        links[Int(cell.next)].previous = cell.previous
    }

    /// The table moved an entry from slot `source` to the empty slot `destination`: the entry
    /// keeps its place in its list.
    func move(from source: Int, to destination: Int) {
        let cell = links[source]
        links[destination] = cell
        links[Int(cell.previous)].next = UInt32(truncatingIfNeeded: destination)
        links[Int(cell.next)].previous = UInt32(truncatingIfNeeded: destination)
    }

    /// The first connection of the taken list, taking the next due bucket when that list is
    /// empty; nil when no bucket is due at `now`. The caller removes or refiles it.
    mutating func nextCandidate(now: UInt64) -> Int? {
        let taken = takenHead
        while next(taken) == taken {
            let dueTick = now / ExpiryWheel.tickNanoseconds
            if nextTick > dueTick { return nil }
            // After a pause of a whole turn or more, each bucket needs one look, not one a tick.
            if dueTick - nextTick >= UInt64(bucketCount) { nextTick = dueTick - UInt64(bucketCount) + 1 }
            let bucket = head(ofTick: nextTick)
            nextTick += 1
            let first = next(bucket)
            if first != bucket {
                // Splice the whole bucket into the taken list: connections refiled while it is
                // worked through go to the bucket's next turn, never into this one again.
                let last = previous(bucket)
                links[taken] = Links(next: UInt32(truncatingIfNeeded: first), previous: UInt32(truncatingIfNeeded: last))
                links[first].previous = UInt32(truncatingIfNeeded: taken)
                links[last].next = UInt32(truncatingIfNeeded: taken)
                links[bucket] = Links(next: UInt32(truncatingIfNeeded: bucket), previous: UInt32(truncatingIfNeeded: bucket))
            }
        }
        return next(taken)
    }
}
