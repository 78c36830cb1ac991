/// Per-source state of the half-open and SYN-rate limits: how many half-open connections each
/// source has (as a whole, and under each rule with its own per-source limit), and each
/// source's SYN-rate bucket.
///
/// A fixed-size, set-associative table (like a CPU cache) with two choices: a seeded hash
/// picks two sets of `ways` entries, and a source lives in one of their entries or nowhere.
/// Allocated once, never grows, never allocates per packet, and every operation looks at two
/// sets only: O(1) whatever the size. Two choices instead of one keep any set from filling
/// with entries that must stay (the "power of two choices": the fullest set holds about
/// log log n more than the average instead of log n / log log n more). A flood from millions
/// of spoofed sources cannot grow it; it can only make the table forget what it may forget:
///
/// - An entry with no half-open connections and a full bucket carries no state at all (a full
///   bucket is what a source that was never seen has), so it is free: any newcomer may take it,
///   and it is never removed explicitly.
/// - When a set has no free entry, the newcomer takes the entry with no half-open connections
///   whose bucket is closest to full; that source gets a few tokens back early (`evictions`
///   counts these). A source being rate-limited has an empty bucket, so it is the last to go.
/// - An entry with half-open connections is never taken: its count must stay exact, or a
///   connection would release a count it never took. The table is sized so that such entries
///   cannot fill a set in practice: there are never more of them than half-open connections
///   (each connection is charged to at most one source entry and one rule entry), and the
///   tracker sizes the table from the bound on those (the half-open limit, else the table
///   limit). If a set is full of them all the same, the SYN is dropped (`half-open-limit`):
///   the limiter fails closed for that one source.
///
/// The SYN-rate bucket is kept as GCRA (the generic cell rate algorithm, ITU-T I.371), which
/// is exactly a token bucket of depth `burst` filled at `rate`, stored as one time: the moment
/// the bucket will be full again. No division and no refill step per packet.
final class SourceLimiter {
    /// Entries examined per lookup: a set.
    static let ways = 8

    struct Entry {
        /// The source's prefix: an IPv4 address whole, an IPv6 address's /64.
        var prefix: IPAddress
        /// 0 for the source as a whole, else the stable id of a rule with a per-source limit.
        var scope: UInt32
        var halfOpen: UInt32
        /// GCRA's theoretical arrival time, in tracker nanoseconds: the bucket is full from
        /// this moment on.
        var fullAt: UInt64

        func isFree(now: UInt64) -> Bool { halfOpen == 0 && fullAt <= now }
    }

    /// How many sources (and source-rule pairs) it can hold.
    let capacity: Int
    /// Times a source's partly drained bucket was forgotten to make room for another source.
    private(set) var evictions: UInt64 = 0
    let setMask: Int
    let seeds: (UInt64, UInt64, UInt64)
    /// Allocated once at `capacity`: a SYN's lookup reads two sets with no copy-on-write or
    /// exclusivity check.
    let entries: UnsafeMutablePointer<Entry>

    /// Room for at least `entries` entries (rounded up to whole sets, a power of two of them).
    init(entries wanted: Int, hasher seeds: (UInt64, UInt64, UInt64)) {
        var sets = 1
        while sets * SourceLimiter.ways < wanted { sets <<= 1 }
        capacity = sets * SourceLimiter.ways
        setMask = sets - 1
        self.seeds = (seeds.0 | 1, seeds.1 | 1, seeds.2 | 1)
        entries = .allocate(capacity: capacity)
        // All zeros is "no state": prefix ::, scope 0, nothing half-open, bucket full since 0.
        entries.initialize(repeating: Entry(prefix: IPAddress(high: 0, low: 0), scope: 0, halfOpen: 0, fullAt: 0),
                           count: capacity)
    }

    deinit {
        entries.deallocate()
    }

    /// What a source is counted by: IPv4 the whole address; IPv6 its /64, since one host
    /// usually owns a whole /64 and can pick any address in it.
    static func prefix(of address: IPAddress) -> IPAddress {
        address.isIPv4 ? address : IPAddress(high: address.high, low: 0)
    }

    /// The first slots of the two sets `prefix`/`scope` may live in.
    func sets(_ prefix: IPAddress, _ scope: UInt32) -> (Int, Int) {
        var h = FlowHasher.fold(prefix.high ^ seeds.0, prefix.low ^ seeds.1)
        h = FlowHasher.fold(h ^ UInt64(scope) ^ seeds.2, seeds.0 ^ 0x9E37_79B9_7F4A_7C15)
        let first = Int(truncatingIfNeeded: h) & setMask
        let second = Int(truncatingIfNeeded: h >> 32) & setMask
        return (first * SourceLimiter.ways, second * SourceLimiter.ways)
    }

    /// The slot holding `prefix`/`scope`, if any.
    func find(_ prefix: IPAddress, _ scope: UInt32) -> Int? {
        let (first, second) = sets(prefix, scope)
        for choice in 0..<2 {
            let set = choice == 0 ? first : second
            for slot in set..<set + SourceLimiter.ways
            where entries[slot].prefix == prefix && entries[slot].scope == scope {
                return slot
            }
        }
        return nil
    }

    /// The slot holding `prefix`/`scope`, making room for it when it has none; nil when its
    /// set is full of entries with half-open connections. `keeping` is an entry the caller is
    /// about to use, which must not be taken.
    func slot(for prefix: IPAddress, _ scope: UInt32, now: UInt64, keeping kept: Int? = nil) -> Int? {
        if let slot = find(prefix, scope) { return slot }
        let (first, second) = sets(prefix, scope)
        // A free entry before one with a partly drained bucket; then the set with fewer entries
        // that must stay (this is where the two choices pay); then the fullest bucket.
        var victim: Int?
        var victimRank = (Int.max, Int.max, UInt64.max)
        for choice in 0..<2 {
            let set = choice == 0 ? first : second
            var staying = 0
            for slot in set..<set + SourceLimiter.ways where entries[slot].halfOpen != 0 { staying += 1 }
            for slot in set..<set + SourceLimiter.ways {
                let entry = entries[slot]
                if slot == kept || entry.halfOpen != 0 { continue }
                let rank = (entry.isFree(now: now) ? 0 : 1, staying, entry.fullAt)
                if rank < victimRank {
                    victim = slot
                    victimRank = rank
                }
            }
        }
        guard let victim else { return nil }
        if !entries[victim].isFree(now: now) { evictions += 1 }
        entries[victim] = Entry(prefix: prefix, scope: scope, halfOpen: 0, fullAt: 0)
        return victim
    }

    /// Half-open connections counted for `prefix`/`scope`.
    func halfOpen(_ prefix: IPAddress, scope: UInt32) -> Int {
        find(prefix, scope).map { Int(entries[$0].halfOpen) } ?? 0
    }

    /// GCRA: takes a token from the slot's bucket, or says there is none. `interval` is the
    /// time one token takes to come back (1/rate); `tolerance` is (burst - 1) intervals: how
    /// far ahead of now the bucket may be drawn.
    func takeToken(slot: Int, now: UInt64, interval: UInt64, tolerance: UInt64) -> Bool {
        let fullAt = max(entries[slot].fullAt, now)
        if fullAt - now > tolerance { return false }
        entries[slot].fullAt = fullAt &+ interval
        return true
    }

    func charge(slot: Int) {
        entries[slot].halfOpen += 1
    }

    /// Gives back one half-open count. Tolerant of a missing entry, which only a table too
    /// small after a reload could cause (see ConnectionTracker.resizeLimiters).
    func release(_ prefix: IPAddress, scope: UInt32) {
        guard let slot = find(prefix, scope), entries[slot].halfOpen > 0 else { return }
        entries[slot].halfOpen -= 1
    }

    /// Entries holding state at `now` (for `stats`; looks at every entry).
    func activeEntries(now: UInt64) -> Int {
        var active = 0
        for slot in 0..<capacity where !entries[slot].isFree(now: now) { active += 1 }
        return active
    }

    /// Copies every entry that holds state into `other` (a reload that needs a larger table).
    /// Returns how many did not fit.
    func move(into other: SourceLimiter, now: UInt64) -> Int {
        var lost = 0
        for index in 0..<capacity where !entries[index].isFree(now: now) {
            let entry = entries[index]
            if let slot = other.slot(for: entry.prefix, entry.scope, now: now) {
                other.entries[slot] = entry
            } else {
                lost += 1
            }
        }
        return lost
    }
}
