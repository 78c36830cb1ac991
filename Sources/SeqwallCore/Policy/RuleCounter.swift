/// What one rule (or one direction's default) did with the new connections it decided, as a
/// tracker counts them (ConnectionTracker.ruleCounters). pf keeps the same per rule
/// (pfctl -vsr: evaluations, packets, states); here a rule only ever sees first packets.
public struct RuleCounter: Sendable, Equatable {
    /// New connections the rule let in (a pass rule whose connection went into the table).
    public var passed: UInt64 = 0
    /// New connections the rule refused by dropping: a block rule, or a pass rule whose
    /// connection a limit (half-open, SYN rate, full table) or the state machine refused.
    public var blocked: UInt64 = 0
    /// New connections a reject rule answered with a RST or a port unreachable.
    public var rejected: UInt64 = 0
    /// When the rule last decided a connection (monotonic nanoseconds); 0: never.
    public var lastMatch: UInt64 = 0

    public init(passed: UInt64 = 0, blocked: UInt64 = 0, rejected: UInt64 = 0, lastMatch: UInt64 = 0) {
        self.passed = passed
        self.blocked = blocked
        self.rejected = rejected
        self.lastMatch = lastMatch
    }

    /// Every new connection the rule decided.
    public var matches: UInt64 { passed &+ blocked &+ rejected }

    /// Counts one decision by its verdict.
    mutating func count(_ verdict: Verdict, now: UInt64) {
        switch verdict {
        case .accept, .acceptRewritten: passed &+= 1
        case .drop: blocked &+= 1
        case .reject: rejected &+= 1
        }
        lastMatch = now
    }

    /// Adds another tracker's counts of the same rule (one per queue worker).
    public mutating func add(_ other: RuleCounter) {
        passed &+= other.passed
        blocked &+= other.blocked
        rejected &+= other.rejected
        lastMatch = max(lastMatch, other.lastMatch)
    }
}
