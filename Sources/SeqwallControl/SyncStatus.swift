/// What `seqwall sync status` shows of the sync with the peer (docs/ha.md), the same in
/// `stats -o json` and the metrics; kept by the sync session (SeqwallSync).
public struct SyncStatus: Sendable, Equatable, Codable {
    public var peer = ""
    public var listen = ""
    /// A bulk from the peer's current incarnation has completed, and nothing was lost since.
    public var in_sync = false
    public var peer_alive = false
    /// Milliseconds since the last authentic message from the peer (nil: never heard).
    public var last_heard_ms: UInt64?
    public var messages_sent: UInt64 = 0
    public var messages_received: UInt64 = 0
    public var bytes_sent: UInt64 = 0
    public var entries_sent: UInt64 = 0
    public var entries_applied: UInt64 = 0
    public var resends: UInt64 = 0
    public var nacks_sent: UInt64 = 0
    public var nacks_received: UInt64 = 0
    public var resend_dropped: UInt64 = 0
    public var unacknowledged = 0
    public var coalescing = 0
    /// TCP connections that were over (TIME_WAIT, CLOSE) before the peer heard of them: not
    /// sent (docs/sync-protocol.md, Coalescing).
    public var closed_unsent: UInt64 = 0
    public var bulk_requests_sent: UInt64 = 0
    public var bulks_sent: UInt64 = 0
    public var bulks_received: UInt64 = 0
    /// Records of the bulk being received, nil when none is.
    public var bulk_progress: UInt64?
    /// Records of the bulk being sent still to go.
    public var bulk_remaining = 0
    /// Changes the workers could not hand over (their ring was full).
    public var changes_lost: UInt64 = 0
    public var send_errors: UInt64 = 0
    /// Refused messages by reason (SyncRefusal.name).
    public var refused: [String: UInt64] = [:]

    public init() {}

    public var refused_total: UInt64 { refused.values.reduce(0, +) }
}
