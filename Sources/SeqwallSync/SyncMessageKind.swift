/// What a sync message carries (docs/sync-protocol.md, Message kinds). The data kinds travel
/// in the reliable stream (a data sequence number, held for resend until acknowledged); the
/// control kinds do not. `proxies` is neither: a node sends its proxied connections' states
/// again at every sweep, so one lost is made up for without the stream (and a node that does
/// not know the kind refuses it as malformed without losing its place in the stream).
public enum SyncMessageKind: UInt8, Sendable, CaseIterable {
    case connections = 1
    case bulkRequest = 2
    case bulkChunk = 3
    case bulkEnd = 4
    case nack = 5
    case alive = 6
    case skip = 7
    case proxies = 8

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
        case .proxies: "proxies"
        }
    }
}
