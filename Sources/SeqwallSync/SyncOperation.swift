/// What a synced record asks of the receiver's table.
public enum SyncOperation: UInt8, Sendable, CaseIterable {
    /// A new connection, or a change to one (the receiver cannot tell, nor need to: both are
    /// "make the table hold this").
    case upsert = 1
    /// The connection is gone (closed by the protocol or deleted by an operator).
    case delete = 2
}
