import SeqwallCore

/// When each entry an overload added with `expire` is to be deleted from its table
/// (seqwall.rules(5), limit conn): a binary min-heap of deadlines, so the daemon finds what is
/// due in O(1) and takes it out in O(log n), with the deadline in force per entry beside it.
/// A source overloaded again before its deadline gets the later one; the heap item of the
/// earlier one is then stale and skipped when it comes up. Deadlines are wall-clock
/// nanoseconds, so that they keep their meaning across a restart (the state file's
/// `.expiries` companion, StatePersistence). Used under the daemon's reload lock.
struct OverloadExpiries {
    struct Key: Hashable {
        let table: String
        let network: IPNetwork
    }

    private struct Item {
        let deadline: UInt64
        let key: Key
    }

    private var heap: [Item] = []
    private var deadlines: [Key: UInt64] = [:]

    /// Entries waiting for their deadline.
    var count: Int { deadlines.count }

    /// The earliest deadline, stale ones included (they only make the daemon look early).
    var next: UInt64? { heap.first?.deadline }

    func deadline(of network: IPNetwork, in table: String) -> UInt64? {
        deadlines[Key(table: table, network: network)]
    }

    /// Every waiting entry with its deadline, for the state file.
    var all: [(key: Key, deadline: UInt64)] {
        deadlines.map { ($0.key, $0.value) }.sorted { ($0.deadline, $0.key.table) < ($1.deadline, $1.key.table) }
    }

    /// Sets the entry's deadline; an entry that already has a later one keeps it.
    mutating func schedule(_ network: IPNetwork, in table: String, at deadline: UInt64) {
        let key = Key(table: table, network: network)
        if let current = deadlines[key], current >= deadline { return }
        deadlines[key] = deadline
        heap.append(Item(deadline: deadline, key: key))
        siftUp(heap.count - 1)
    }

    /// Forgets an entry (deleted by hand, or its table gone); its heap item goes stale.
    mutating func cancel(_ network: IPNetwork, in table: String) {
        deadlines[Key(table: table, network: network)] = nil
    }

    /// Takes out every entry due at `now`, earliest first.
    mutating func popDue(now: UInt64) -> [Key] {
        var due: [Key] = []
        while let first = heap.first, first.deadline <= now {
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                siftDown(0)
            }
            // Stale: rescheduled later, or cancelled.
            guard deadlines[first.key] == first.deadline else { continue }
            deadlines[first.key] = nil
            due.append(first.key)
        }
        return due
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].deadline < heap[parent].deadline else { return }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].deadline < heap[smallest].deadline { smallest = left }
            if right < heap.count && heap[right].deadline < heap[smallest].deadline { smallest = right }
            if smallest == parent { return }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
