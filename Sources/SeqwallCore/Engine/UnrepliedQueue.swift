/// Half-open connections that have seen no reply yet, oldest first: where the tracker looks for
/// one to evict when the half-open limit or the table is full. A ring of (key, creation time),
/// allocated once. Entries go stale when their connection gets a reply or goes away; the
/// tracker checks each against the table when it reaches the front, and drops stale ones
/// then (lazy deletion), so nothing ever searches the ring.
final class UnrepliedQueue {
    struct Item {
        var key: FlowKey
        var createdAt: UInt64
    }

    let capacity: Int
    private(set) var count = 0
    private var head = 0
    private let mask: Int
    /// A ring allocated once: remembering a new half-open connection never allocates.
    private let items: UnsafeMutablePointer<Item>

    init(capacity wanted: Int) {
        var capacity = 16
        while capacity < wanted { capacity <<= 1 }
        self.capacity = capacity
        mask = capacity - 1
        items = .allocate(capacity: capacity)
    }

    deinit {
        items.deallocate()
    }

    var isFull: Bool { count == capacity }

    var oldest: Item? { count > 0 ? items[head] : nil }

    func popOldest() {
        guard count > 0 else { return }
        head = (head + 1) & mask
        count -= 1
    }

    /// Appends; the caller makes room first.
    func append(_ item: Item) {
        precondition(count < capacity, "unreplied queue overflow")
        (items + ((head + count) & mask)).initialize(to: item)
        count += 1
    }

    /// Moves every item, oldest first, into `other` (a reload that needs a larger ring); the
    /// oldest are the ones left behind if it does not fit.
    func move(into other: UnrepliedQueue) {
        while count > other.capacity - other.count { popOldest() }
        while let item = oldest {
            other.append(item)
            popOldest()
        }
    }
}
