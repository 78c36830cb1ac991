import SeqwallCore

/// The canonical text of a policy: what `seqwall rules check --print` shows. One statement per
/// line in a fixed order: inside, the tables in order (every entry written out in braces, those
/// read from files too, so the text stands alone), both defaults, the rules in order, the limits (states always,
/// the others when set), the timeouts that differ from the kernel's defaults, pickup (its grace
/// period and ephemeral ports when not the defaults), the drop log when it is not the
/// default (`sampled`), and the synproxy mode when it is not the default (`always`).
/// Parsing this text gives back an equal policy (apart from rule locations).
enum RulePrinter {
    static func text(of policy: Policy) -> String {
        var lines: [String] = []
        let inside = ListNormalization.networks(policy.inside)
        if !inside.isEmpty {
            lines.append("inside " + list(inside))
        }
        for table in policy.tables {
            lines.append(text(of: table))
        }
        lines.append("default in \(policy.defaultInbound)")
        lines.append("default out \(policy.defaultOutbound)")
        // A line without a protocol prints once, as written: its tcp rule without the protocol.
        for rule in policy.rules where !rule.anyProtocol || rule.protocolName == .tcp {
            lines.append(text(of: rule, asWritten: true))
        }
        lines.append("limit states \(policy.limits.states)")
        if let count = policy.limits.halfOpen {
            lines.append("limit half-open \(count)")
        }
        if let count = policy.limits.halfOpenPerSource {
            lines.append("limit half-open \(count) per-source")
        }
        if let synRate = policy.limits.synRatePerSource {
            lines.append("limit syn-rate \(synRate.rate)/s burst \(synRate.burst) per-source")
        }
        for limit in [policy.limits.connPerSource, policy.limits.connRatePerSource] {
            if let limit { lines.append("limit " + text(of: limit)) }
        }
        let defaults = Policy()
        for name in TimeoutName.allCases where policy[keyPath: name.keyPath] != defaults[keyPath: name.keyPath] {
            lines.append("timeout \(name.statementText) \(duration(policy[keyPath: name.keyPath]))")
        }
        lines.append("set pickup \(policy.pickup ? "on" : "off")")
        if policy.pickupGrace != defaults.pickupGrace {
            lines.append("set pickup grace \(duration(policy.pickupGrace))")
        }
        if policy.ephemeralPorts != defaults.ephemeralPorts {
            lines.append("set pickup ephemeral-ports \(policy.ephemeralPorts.lower)-\(policy.ephemeralPorts.upper)")
        }
        if policy.dropLog != Policy().dropLog {
            lines.append("set drop-log \(policy.dropLog.rawValue)")
        }
        if case .adaptive(let start, let end) = policy.synProxyMode {
            lines.append("set synproxy adaptive start \(start)% end \(end)%")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `pass in tcp from 198.51.100.0/25 to port 5432`, `pass in icmp echo`: `any` left out, `to port` when only the
    /// port is given (as the spec writes it), lists normalized. `asWritten`: the tcp rule of a line
    /// without a protocol prints that line (no protocol); otherwise every rule names its own.
    static func text(of rule: Rule, asWritten: Bool = false) -> String {
        let protocolText = switch rule.protocolName {
        case .tcp: "tcp"
        case .udp: "udp"
        case .icmp: "icmp echo"
        case .icmp6: "icmp6 echo"
        }
        var text = "\(rule.action) \(rule.direction)"
        if !(asWritten && rule.anyProtocol) { text += " " + protocolText }
        if !rule.from.isEmpty || !rule.fromTables.isEmpty {
            text += " from " + list(ListNormalization.networks(rule.from), rule.fromTables)
        }
        if !rule.to.isEmpty || !rule.toTables.isEmpty {
            text += " to " + list(ListNormalization.networks(rule.to), rule.toTables)
        }
        if !rule.ports.isEmpty {
            text += (rule.to.isEmpty && rule.toTables.isEmpty ? " to port " : " port ")
                + ListNormalization.ports(rule.ports).map(\.description).joined(separator: ", ")
        }
        if let count = rule.halfOpenPerSource {
            text += " limit half-open \(count) per-source"
        }
        for limit in [rule.connPerSource, rule.connRatePerSource] {
            if let limit { text += " limit " + self.text(of: limit) }
        }
        if let synProxy = rule.synProxy {
            text += " synproxy"
            if let mss = synProxy.mss { text += " mss \(mss)" }
            if let shift = synProxy.windowScale { text += " wscale \(shift)" }
        }
        return text
    }

    /// `conn 3 per-source overload <bruteforce> expire 10m flush`, `conn-rate 5/10s per-source`:
    /// what follows `limit`.
    static func text(of limit: SourceConnectionLimit) -> String {
        var text = limit.isRate ? "conn-rate \(limit.count)/\(duration(limit.seconds)) per-source" : "conn \(limit.count) per-source"
        if let overload = limit.overload {
            text += " overload <\(overload.table.name)>"
            if let expire = overload.expireSeconds { text += " expire \(duration(expire))" }
            if overload.flush { text += " flush" }
        }
        return text
    }

    /// `table <drop> persist { 198.51.100.0/24, !198.51.100.7 }`: `persist` when set, the entries
    /// in canonical order (`{ }` for none).
    static func text(of table: AddressTable) -> String {
        let entries = table.entries.map(\.description).joined(separator: ", ")
        return "table \(table)" + (table.persist ? " persist" : "") + (entries.isEmpty ? " { }" : " { \(entries) }")
    }

    /// In the largest unit that divides it exactly: 432000 is `5d`, 90 is `90s`, 7200 is `2h`.
    static func duration(_ seconds: UInt32) -> String {
        for (unit, suffix) in [(DurationUnit.days, "d"), (.hours, "h"), (.minutes, "m")]
        where seconds > 0 && Int(seconds) % unit.rawValue == 0 {
            return "\(Int(seconds) / unit.rawValue)\(suffix)"
        }
        return "\(seconds)s"
    }

    private static func list(_ networks: [IPNetwork], _ tables: [TableReference] = []) -> String {
        (networks.map(\.description) + tables.map(\.description)).joined(separator: ", ")
    }
}
