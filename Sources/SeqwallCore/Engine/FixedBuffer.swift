/// Records of one tracker since they were last collected: preallocated, fixed capacity, so
/// recording one is a store, never an allocation. When it is full, records are counted as
/// lost. The owner's thread collects them between packet batches.
public final class FixedBuffer<Element> {
    public let capacity: Int
    public private(set) var count = 0
    /// Records that did not fit since the counter was last taken.
    public private(set) var lost: UInt64 = 0
    /// Allocated once at `capacity`: recording is a store, with no copy-on-write check.
    @usableFromInline let storage: UnsafeMutablePointer<Element>

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        storage = .allocate(capacity: self.capacity)
    }

    deinit {
        storage.deinitialize(count: count)
        storage.deallocate()
    }

    public func append(_ element: Element) {
        guard count < capacity else {
            lost &+= 1
            return
        }
        (storage + count).initialize(to: element)
        count += 1
    }

    /// Inlinable: the owner's thread reads the records from another module (the daemon's
    /// worker, for its watchers and the state sync), and a generic class's subscript called
    /// across modules copies each record through the type's value witnesses, not as plain
    /// stores of a known size.
    @inlinable
    public subscript(index: Int) -> Element {
        precondition(index >= 0 && index < count, "record index out of range")
        return storage[index]
    }

    /// Forgets the collected records; returns how many were lost since the last call.
    @discardableResult
    public func reset() -> UInt64 {
        storage.deinitialize(count: count)
        count = 0
        defer { lost = 0 }
        return lost
    }
}
