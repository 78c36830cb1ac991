/// Events of one tracker since they were last collected: preallocated, fixed capacity, so
/// recording one is a store, never an allocation. When it is full, events are counted as lost.
public final class ConnectionEventBuffer {
    public let capacity: Int
    public private(set) var count = 0
    /// Events that did not fit since the counter was last taken.
    public private(set) var lost: UInt64 = 0
    /// Allocated once at `capacity`: recording an event is a store, with no copy-on-write check.
    let storage: UnsafeMutablePointer<ConnectionEvent>

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        storage = .allocate(capacity: self.capacity)
    }

    deinit { storage.deallocate() }

    public func append(_ kind: ConnectionEventKind, _ connection: Connection) {
        guard count < capacity else {
            lost &+= 1
            return
        }
        (storage + count).initialize(to: ConnectionEvent(kind: kind, connection: connection))
        count += 1
    }

    public subscript(index: Int) -> ConnectionEvent {
        precondition(index >= 0 && index < count, "event index out of range")
        return storage[index]
    }

    /// Forgets the collected events; returns how many were lost since the last call.
    @discardableResult
    public func reset() -> UInt64 {
        count = 0
        defer { lost = 0 }
        return lost
    }
}
