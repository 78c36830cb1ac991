/// `limit conn N per-source` (pf's max-src-conn: at most N established TCP connections per
/// source) or `limit conn-rate N/DURATION per-source` (pf's max-src-conn-rate: at most N new
/// connections per source in any DURATION), with what happens to a source that goes over:
/// `overload <table> [expire DURATION] [flush]`. Global (in `Limits`, inbound connections) or
/// on a pass rule (`Rule`, in the rule's direction). Enforced when a connection completes its
/// handshake (ConnectionTracker+Overload.swift).
///
/// A class, immutable: a `Rule` and the `Limits` hold it by reference, one word that is nil
/// unless a limit is set, because the SYN path copies rules and the policy's limits, and an
/// inline value with a table name in it would make every such copy longer for every rule
/// set, limits or not.
public final class SourceConnectionLimit: Sendable, Equatable {
    /// N: established connections, or connections per `seconds`.
    public let count: Int
    /// The DURATION of `conn-rate`, in seconds; 0 for `conn`.
    public let seconds: UInt32
    public let overload: Overload?

    public init(count: Int, seconds: UInt32 = 0, overload: Overload? = nil) {
        self.count = count
        self.seconds = seconds
        self.overload = overload
    }

    public var isRate: Bool { seconds != 0 }

    public static func == (lhs: SourceConnectionLimit, rhs: SourceConnectionLimit) -> Bool {
        lhs.count == rhs.count && lhs.seconds == rhs.seconds && lhs.overload == rhs.overload
    }
}
