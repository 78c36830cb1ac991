/// The policy the daemon enforces, as `seqwall rules show` prints it (control command
/// `rules`): its statements in rule-file form, each rule and default with what it decided, and
/// every limit and timeout in force, defaults included.
public struct RulesRecord: Codable, Sendable, Equatable {
    /// What a rule decided, summed over the queues (RuleCounter).
    public struct Counters: Codable, Sendable, Equatable {
        public var passed: UInt64
        public var blocked: UInt64
        public var rejected: UInt64
        /// Seconds since the rule last decided a connection; absent when it never has.
        public var last_match_seconds_ago: UInt64?

        public init(passed: UInt64, blocked: UInt64, rejected: UInt64, last_match_seconds_ago: UInt64?) {
            self.passed = passed
            self.blocked = blocked
            self.rejected = rejected
            self.last_match_seconds_ago = last_match_seconds_ago
        }
    }

    /// A rule (numbered from 1 in evaluation order) or a default (no number).
    public struct Entry: Codable, Sendable, Equatable {
        public var number: Int?
        /// The statement in canonical rule-file form.
        public var text: String
        /// file:line:column where it was written; absent for a default left unwritten.
        public var location: String?
        public var counters: Counters

        public init(number: Int?, text: String, location: String?, counters: Counters) {
            self.number = number
            self.text = text
            self.location = location
            self.counters = counters
        }
    }

    public struct Limits: Codable, Sendable, Equatable {
        public var states: Int
        /// Absent: no such limit.
        public var half_open: Int?
        public var half_open_per_source: Int?
        public var syn_rate_per_source: Int?
        public var syn_rate_burst: Int?

        public init(states: Int, half_open: Int?, half_open_per_source: Int?, syn_rate_per_source: Int?,
                    syn_rate_burst: Int?) {
            self.states = states
            self.half_open = half_open
            self.half_open_per_source = half_open_per_source
            self.syn_rate_per_source = syn_rate_per_source
            self.syn_rate_burst = syn_rate_burst
        }
    }

    public struct Timeout: Codable, Sendable, Equatable {
        /// What follows `timeout` in a statement: `tcp syn-sent`, `udp stream`, `icmp`.
        public var name: String
        public var seconds: UInt32
        /// The whole statement, `timeout tcp syn-sent 2m`.
        public var text: String
        /// True when the rule files leave it at the kernel's default.
        public var is_default: Bool

        public init(name: String, seconds: UInt32, text: String, is_default: Bool) {
            self.name = name
            self.seconds = seconds
            self.text = text
            self.is_default = is_default
        }
    }

    /// The rule file the daemon loaded (`seqwall run --rules`).
    public var file: String
    /// When this policy was loaded (at start or by the last successful reload), Unix seconds.
    public var loaded_at: UInt64
    public var inside: [String]
    /// `default in`, then `default out`.
    public var defaults: [Entry]
    public var rules: [Entry]
    public var limits: Limits
    public var timeouts: [Timeout]
    public var pickup: Bool
    public var drop_log: String
    /// The address tables with their entry counts now, in rule-file order.
    public var tables: [TableSummary]?

    public init(file: String, loaded_at: UInt64, inside: [String], defaults: [Entry], rules: [Entry], limits: Limits,
                timeouts: [Timeout], pickup: Bool, drop_log: String) {
        self.file = file
        self.loaded_at = loaded_at
        self.inside = inside
        self.defaults = defaults
        self.rules = rules
        self.limits = limits
        self.timeouts = timeouts
        self.pickup = pickup
        self.drop_log = drop_log
    }
}
