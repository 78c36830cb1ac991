/// How the daemon itself is doing, for `seqwall stats` (StatsRecord's `uptime_seconds`,
/// `last_reload`, `rule_drops`, `state_file` and `warnings`): what an operator checks before
/// trusting the counters.
public enum DaemonHealth {
    /// The last reload since the start; absent from stats before the first.
    public struct Reload: Codable, Sendable, Equatable {
        /// Unix seconds.
        public var at: UInt64
        public var ok: Bool
        /// The first line of what was wrong (the log has every line).
        public var error: String?

        public init(at: UInt64, ok: Bool, error: String?) {
            self.at = at
            self.ok = ok
            self.error = error
        }
    }

    /// A rule (or default) that dropped new connections: the rule-show line's number and text.
    public struct RuleDrops: Codable, Sendable, Equatable {
        public var number: Int?
        public var rule: String
        public var blocked: UInt64
        public var rejected: UInt64

        public init(number: Int?, rule: String, blocked: UInt64, rejected: UInt64) {
            self.number = number
            self.rule = rule
            self.blocked = blocked
            self.rejected = rejected
        }
    }

    /// The state file's writes (`--state-file`): absent from stats when there is none.
    public struct StateFile: Codable, Sendable, Equatable {
        public var path: String
        /// False while the last write failed.
        public var ok: Bool
        /// Unix seconds of the last write that succeeded; absent when none has yet.
        public var last_success_at: UInt64?
        /// The last failure, kept after a recovery so it can still be read.
        public var last_error: String?
        public var last_error_at: UInt64?
        public var failures: UInt64

        public init(path: String, ok: Bool = true, last_success_at: UInt64? = nil, last_error: String? = nil,
                    last_error_at: UInt64? = nil, failures: UInt64 = 0) {
            self.path = path
            self.ok = ok
            self.last_success_at = last_success_at
            self.last_error = last_error
            self.last_error_at = last_error_at
            self.failures = failures
        }
    }

    /// The first line of a message (error texts can hold one line per problem).
    public static func firstLine(_ text: String) -> String {
        text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: true).first.map(String.init) ?? text
    }
}
