/// Events of one tracker for `conntrack watch` since they were last collected.
public typealias ConnectionEventBuffer = FixedBuffer<ConnectionEvent>

extension FixedBuffer where Element == ConnectionEvent {
    public func append(_ kind: ConnectionEventKind, _ connection: Connection) {
        append(ConnectionEvent(kind: kind, connection: connection))
    }
}
