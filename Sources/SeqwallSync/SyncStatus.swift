/// What `seqwall sync status` shows of one peer, and the metrics endpoint too.
public struct SyncStatus: Sendable, Equatable, Codable {
    public var peer = ""
    public var listen = ""
    /// A bulk from the peer's current incarnation has completed, and nothing was lost since.
    public var inSync = false
    public var peerAlive = false
    /// Milliseconds since the last authentic message from the peer (nil: never heard).
    public var lastHeardMilliseconds: UInt64?
    public var messagesSent: UInt64 = 0
    public var messagesReceived: UInt64 = 0
    public var bytesSent: UInt64 = 0
    public var entriesSent: UInt64 = 0
    public var entriesApplied: UInt64 = 0
    public var resends: UInt64 = 0
    public var nacksSent: UInt64 = 0
    public var nacksReceived: UInt64 = 0
    public var resendDropped: UInt64 = 0
    public var unacknowledged = 0
    public var coalescing = 0
    public var bulkRequestsSent: UInt64 = 0
    public var bulksSent: UInt64 = 0
    public var bulksReceived: UInt64 = 0
    /// Records of the bulk being received, nil when none is.
    public var bulkProgress: UInt64?
    /// Records of the bulk being sent still to go.
    public var bulkRemaining = 0
    /// Changes the workers could not hand over (their ring was full).
    public var changesLost: UInt64 = 0
    public var sendErrors: UInt64 = 0
    /// Refused messages by reason (SyncRefusal.name).
    public var refused: [String: UInt64] = [:]

    public init() {}

    public var refusedTotal: UInt64 { refused.values.reduce(0, +) }
}
