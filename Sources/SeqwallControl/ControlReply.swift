import Foundation
import SeqwallCore

/// The final line of every answer.
public struct ControlReply: Codable, Sendable, Equatable {
    public var ok: Bool
    public var error: String?
    public var count: Int?
    public var stats: StatsRecord?
    public var message: String?
    public var rules: RulesRecord?
    /// For table show: the entries, in canonical order (IPv4 first, exceptions with `!`).
    public var entries: [String]?
    /// For sync: the state sync's figures (absent when the daemon runs without a peer).
    public var sync: SyncStatus?

    public init(ok: Bool, error: String? = nil, count: Int? = nil, stats: StatsRecord? = nil, message: String? = nil,
                rules: RulesRecord? = nil, entries: [String]? = nil) {
        self.entries = entries
        self.ok = ok
        self.error = error
        self.count = count
        self.stats = stats
        self.message = message
        self.rules = rules
    }

    public static func failure(_ message: String) -> ControlReply { ControlReply(ok: false, error: message) }
}
