/// Events of one tracker for `conntrack watch` since they were last collected.
public typealias ConnectionEventBuffer = FixedBuffer<ConnectionEvent>

extension FixedBuffer where Element == ConnectionEvent {
    public func append(_ kind: ConnectionEventKind, _ connection: Connection) {
        append(ConnectionEvent(kind: kind, connection: connection))
    }

    /// Marks the last event proxied when it is the opening of `key`'s connection (a cookie
    /// ACK's, ConnectionTracker.cookieAck); nothing when that event was lost to a full buffer.
    func markProxied(openingOf key: FlowKey) {
        guard count > 0, storage[count - 1].kind == .new, storage[count - 1].connection.key == key else { return }
        storage[count - 1].connection.proxied = true
    }
}
