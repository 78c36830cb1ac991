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
