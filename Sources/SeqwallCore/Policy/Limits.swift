/// `limit ...` statements, enforced by ConnectionTracker+Limits.swift on every new SYN.
public struct Limits: Sendable, Equatable {
    public var states: Int = 262_144
    public var halfOpen: Int?
    public var halfOpenPerSource: Int?
    public var synRatePerSource: (rate: Int, burst: Int)?
    /// `limit conn N per-source` and `limit conn-rate N/DURATION per-source` for every inbound
    /// connection, beside any a rule has.
    public var connPerSource: SourceConnectionLimit?
    public var connRatePerSource: SourceConnectionLimit?

    public init() {}

    public static func == (lhs: Limits, rhs: Limits) -> Bool {
        lhs.states == rhs.states && lhs.halfOpen == rhs.halfOpen && lhs.halfOpenPerSource == rhs.halfOpenPerSource
            && lhs.synRatePerSource?.rate == rhs.synRatePerSource?.rate
            && lhs.synRatePerSource?.burst == rhs.synRatePerSource?.burst
            && lhs.connPerSource == rhs.connPerSource && lhs.connRatePerSource == rhs.connRatePerSource
    }
}
