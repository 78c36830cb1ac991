/// What a sync message carries (docs/sync-protocol.md, Message kinds). The data kinds travel
/// in the reliable stream (a data sequence number, held for resend until acknowledged); the
/// control kinds do not.
public enum SyncMessageKind: UInt8, Sendable, CaseIterable {
    case connections = 1
    case bulkRequest = 2
    case bulkChunk = 3
    case bulkEnd = 4
    case nack = 5
    case alive = 6
    case skip = 7

    public var isData: Bool { self == .connections || self == .bulkChunk || self == .bulkEnd }

    public var name: String {
        switch self {
        case .connections: "connections"
        case .bulkRequest: "bulk-request"
        case .bulkChunk: "bulk-chunk"
        case .bulkEnd: "bulk-end"
        case .nack: "nack"
        case .alive: "alive"
        case .skip: "skip"
        }
    }
}
