/// What a sync message carries (docs/sync-protocol.md, Message kinds). The data kinds travel
/// in the reliable stream (a data sequence number, held for resend until acknowledged); the
/// control kinds do not. `proxies` is neither: a node sends its proxied connections' states
/// again at every sweep, so one lost is made up for without the stream (and a node that does
/// not know the kind refuses it as malformed without losing its place in the stream).
/// `compactConnections` and `compactBulkChunk` are `connections` and `bulkChunk` in the compact
/// entry encoding (SyncCompactRecord), sent only to a peer whose `features` said it reads them.
public enum SyncMessageKind: UInt8, Sendable, CaseIterable {
    case connections = 1
    case bulkRequest = 2
    case bulkChunk = 3
    case bulkEnd = 4
    case nack = 5
    case alive = 6
    case skip = 7
    case proxies = 8
    case compactConnections = 9
    case compactBulkChunk = 10
    case features = 11

    public var isData: Bool { carriesEntries || self == .bulkEnd }

    /// The kinds whose body is a list of entries.
    public var carriesEntries: Bool {
        self == .connections || self == .bulkChunk || self == .compactConnections || self == .compactBulkChunk
    }

    public var isCompact: Bool { self == .compactConnections || self == .compactBulkChunk }

    /// The kind that carries the same entries in the compact encoding.
    public var compact: SyncMessageKind {
        switch self {
        case .connections: .compactConnections
        case .bulkChunk: .compactBulkChunk
        default: self
        }
    }

    public var name: String {
        switch self {
        case .connections: "connections"
        case .bulkRequest: "bulk-request"
        case .bulkChunk: "bulk-chunk"
        case .bulkEnd: "bulk-end"
        case .nack: "nack"
        case .alive: "alive"
        case .skip: "skip"
        case .proxies: "proxies"
        case .compactConnections: "compact-connections"
        case .compactBulkChunk: "compact-bulk-chunk"
        case .features: "features"
        }
    }
}
