import Foundation
import SeqwallCore

extension Formatters {
    /// `seqwall rules show`: the policy in force in rule-file form (as `rules check --print`,
    /// but with every limit and timeout, defaults included), each rule numbered `@N` as
    /// pfctl -vsr numbers them and followed by its counters.
    public static func rulesText(_ record: RulesRecord) -> String {
        var lines = ["# \(record.file), loaded \(timestamp(record.loaded_at))"]
        if !record.inside.isEmpty { lines.append("inside " + record.inside.joined(separator: ", ")) }
        for table in record.tables ?? [] { lines.append(tableLine(table)) }
        for entry in record.defaults + record.rules {
            var line = entry.number.map { "@\($0) " } ?? ""
            line += entry.text
            if let location = entry.location { line += "  # \(location)" }
            lines.append(line)
            lines.append("  [ " + countersText(entry.counters) + " ]")
        }
        let limits = record.limits
        lines.append("limit states \(limits.states)")
        lines.append("limit half-open " + (limits.half_open.map(String.init) ?? "none"))
        lines.append("limit half-open " + (limits.half_open_per_source.map(String.init) ?? "none") + " per-source")
        if let rate = limits.syn_rate_per_source {
            lines.append("limit syn-rate \(rate)/s burst \(limits.syn_rate_burst ?? 1) per-source")
        } else {
            lines.append("limit syn-rate none per-source")
        }
        for timeout in record.timeouts {
            lines.append(timeout.text + (timeout.is_default ? "  # default" : ""))
        }
        lines.append("set pickup \(record.pickup ? "on" : "off")")
        lines.append("set drop-log \(record.drop_log)")
        return lines.joined(separator: "\n")
    }

    /// A table as `rules show` and `stats` name it, with its size now.
    static func tableLine(_ table: TableSummary) -> String {
        "table <\(table.name)>" + (table.persist ? " persist" : "") + "  # " + Counted.text(table.entries, "entry", "entries")
    }

    static func countersText(_ counters: RulesRecord.Counters) -> String {
        "passed \(counters.passed)  blocked \(counters.blocked)  rejected \(counters.rejected)  last match "
            + (counters.last_match_seconds_ago.map { duration($0) + " ago" } ?? "never")
    }

    /// The lines `seqwall stats` adds about the daemon itself (DaemonHealth), after the
    /// counters; empty for a daemon that reports none of it.
    static func healthLines(_ stats: StatsRecord) -> [String] {
        var lines: [String] = []
        if let uptime = stats.uptime_seconds { lines.append("uptime       \(duration(uptime))") }
        if let reload = stats.last_reload {
            lines.append("last reload  \(timestamp(reload.at)) " + (reload.ok ? "ok" : "failed: \(reload.error ?? "")"))
        } else if stats.uptime_seconds != nil {
            lines.append("last reload  none since the start")
        }
        if let ruleDrops = stats.rule_drops {
            if ruleDrops.isEmpty {
                lines.append("rule drops   none (every rule's counters: seqwall rules show)")
            } else {
                lines.append("rule drops   (every rule's counters: seqwall rules show)")
                for drops in ruleDrops {
                    let rule = (drops.number.map { "@\($0) " } ?? "") + drops.rule
                    lines.append("  \(rule)  blocked \(drops.blocked)  rejected \(drops.rejected)")
                }
            }
        }
        if let state = stats.state_file {
            var line = "state file   \(state.path) " + (state.ok ? "ok" : "FAILING")
            line += ", last written " + (state.last_success_at.map(timestamp) ?? "never")
            if state.failures > 0 { line += ", \(state.failures) failed writes" }
            if let error = state.last_error, let at = state.last_error_at {
                line += ", last error at \(timestamp(at)): \(error)"
            }
            lines.append(line)
        }
        for warning in stats.warnings ?? [] { lines.append("WARNING: \(warning)") }
        return lines
    }

    /// `1h2m3s`, `45s`, `2d3h0m0s`.
    public static func duration(_ seconds: UInt64) -> String {
        let days = seconds / 86_400, hours = seconds / 3600 % 24, minutes = seconds / 60 % 60, rest = seconds % 60
        if days > 0 { return "\(days)d\(hours)h\(minutes)m\(rest)s" }
        if hours > 0 { return "\(hours)h\(minutes)m\(rest)s" }
        if minutes > 0 { return "\(minutes)m\(rest)s" }
        return "\(rest)s"
    }

    /// Unix seconds as `2026-12-03T13:48:28Z`.
    public static func timestamp(_ unixSeconds: UInt64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(unixSeconds)))
    }
}
