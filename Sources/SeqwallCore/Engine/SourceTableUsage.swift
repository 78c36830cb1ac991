/// How full the per-source limiter's table is (SourceLimiter): what `stats` and the metrics
/// show of it.
public struct SourceTableUsage: Codable, Sendable, Equatable {
    /// Sources (and source-rule pairs) it holds state for.
    public var active: Int
    /// How many it can hold.
    public var capacity: Int
    /// Partly drained SYN-rate buckets forgotten to make room for another source.
    public var evictions: UInt64

    public init(active: Int, capacity: Int, evictions: UInt64) {
        self.active = active
        self.capacity = capacity
        self.evictions = evictions
    }
}
