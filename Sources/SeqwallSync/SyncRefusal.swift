/// Why a received sync message was not used. Each is counted under its name
/// (`seqwall sync status`, metrics) and logged at a bounded rate.
public enum SyncRefusal: Int, Error, Sendable, CaseIterable {
    /// Shorter than a header and a tag.
    case truncated
    /// Not a seqwall sync message (bad magic).
    case notSync
    /// Another version of the protocol.
    case version
    /// The authentication tag does not match: another key, or forged or damaged bytes.
    case authentication
    /// Authentic but not well formed (a record that fails its checks, a bad count).
    case malformed
    /// From an incarnation of the peer older than the one already heard.
    case oldEpoch
    /// A sequence number already seen, or too old for the window.
    case replay
    /// The sender's clock is too far from ours: an old message replayed to a node that
    /// restarted since (docs/sync-protocol.md, Replay).
    case stale
    /// Our own node number: a loop.
    case ownMessage
    /// From an address that is not the configured peer.
    case unknownPeer

    public var name: String {
        switch self {
        case .truncated: "truncated"
        case .notSync: "not-sync"
        case .version: "version"
        case .authentication: "authentication"
        case .malformed: "malformed"
        case .oldEpoch: "old-epoch"
        case .replay: "replay"
        case .stale: "stale"
        case .ownMessage: "own-message"
        case .unknownPeer: "unknown-peer"
        }
    }
}
