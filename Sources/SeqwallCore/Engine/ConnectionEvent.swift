/// A change in the table, as `conntrack -E` reports it.
public enum ConnectionEventKind: UInt8, Sendable, CaseIterable {
    case new
    /// The state changed, or the connection was answered or became assured.
    case update
    case destroy

    public var name: String {
        switch self {
        case .new: "new"
        case .update: "update"
        case .destroy: "destroy"
        }
    }
}

public struct ConnectionEvent: Sendable, Equatable {
    public var kind: ConnectionEventKind
    /// The connection as it was right after the change (before removal, for destroy).
    public var connection: Connection

    public init(kind: ConnectionEvent.Kind, connection: Connection) {
        self.kind = kind
        self.connection = connection
    }

    public typealias Kind = ConnectionEventKind
}

/// Events of one tracker since they were last collected: preallocated, fixed capacity, so
/// recording one is a store, never an allocation. When it is full, events are counted as lost.
public final class ConnectionEventBuffer {
    public let capacity: Int
    public private(set) var count = 0
    /// Events that did not fit since the counter was last taken.
    public private(set) var lost: UInt64 = 0
    let storage: UnsafeMutablePointer<ConnectionEvent>

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        storage = .allocate(capacity: self.capacity)
    }

    deinit { storage.deallocate() }

    @inline(__always)
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
