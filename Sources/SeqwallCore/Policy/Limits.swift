/// `limit ...` statements, enforced by ConnectionTracker+Limits.swift on every new SYN.
public struct Limits: Sendable, Equatable {
    public var states: Int = 262_144
    public var halfOpen: Int?
    public var halfOpenPerSource: Int?
    public var synRatePerSource: (rate: Int, burst: Int)?

    public init() {}

    public static func == (lhs: Limits, rhs: Limits) -> Bool {
        lhs.states == rhs.states && lhs.halfOpen == rhs.halfOpen && lhs.halfOpenPerSource == rhs.halfOpenPerSource
            && lhs.synRatePerSource?.rate == rhs.synRatePerSource?.rate
            && lhs.synRatePerSource?.burst == rhs.synRatePerSource?.burst
    }
}
