import SeqwallCore

/// One connection in a sync message: what to do and the connection, its deadline on the
/// clock of whoever holds the value (sender: its own; receiver: put on its own by decoding).
public struct SyncEntry: Sendable, Equatable {
    public var operation: SyncOperation
    public var connection: Connection

    public init(_ operation: SyncOperation, _ connection: Connection) {
        self.operation = operation
        self.connection = connection
    }

    /// Bytes on the wire: the operation, then the state file's record (StateSnapshot).
    public static let encodedLength = 1 + StateSnapshot.recordLength
}
