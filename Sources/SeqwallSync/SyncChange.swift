import SeqwallCore

/// A change a worker saw in its table, on its way to the sync thread through a ring: plain
/// values only, copied in and out, so pushing one allocates nothing.
public struct SyncChange: Sendable {
    public enum Kind: UInt8, Sendable {
        /// Opened, or its state or status changed (a table event).
        case changed
        /// Closed by the protocol or deleted by an operator (a destroy event outside expiry).
        case removed
        /// The periodic sweep's look at a connection (SyncSweep): sent only when its packets
        /// moved since it was last sent, to carry its deadline and windows forward.
        case refresh
    }

    public var kind: Kind
    public var connection: Connection

    /// Inlinable: a worker makes one for each of its table's events, on its way into the
    /// ring (WorkerSync.take), and a call into this module returned each through a copy.
    @inlinable
    public init(_ kind: Kind, _ connection: Connection) {
        self.kind = kind
        self.connection = connection
    }
}
