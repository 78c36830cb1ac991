import SeqwallCore

/// Text output of the CLI.
public enum Formatters {
    /// One connection in the `conntrack -L` layout:
    /// `tcp      6 431999 ESTABLISHED src=... dst=... sport=... dport=... src=... [ASSURED] use=1`,
    /// `udp      17 29 src=... dport=53 [UNREPLIED] src=... use=1`,
    /// `icmp     1 29 src=... dst=... type=8 code=0 id=... src=... type=0 code=0 id=... use=1`.
    ///
    /// `extended` is `conntrack -L -o extended` with accounting on: the family's columns first
    /// (`ipv4     2 tcp      6 ...`), and each direction's `packets=N bytes=N` after its tuple.
    public static func conntrackLine(_ record: ConnectionRecord, extended: Bool = false) -> String {
        var line = (extended ? familyColumns(record) + " " : "") + protocolColumns(record) + " \(record.timeout) "
        if !record.state.isEmpty { line += "\(record.state) " }
        line += tuples(record, extended: extended) + " "
        if let flag = statusFlag(record) { line += flag + " " }
        if record.proxied == true { line += "[PROXIED] " }
        line += "use=1"
        return line
    }

    /// Both tuples, `[UNREPLIED]` after the original one, and with `counters` each tuple's
    /// packets and bytes after it (the order conntrack prints them in).
    static func tuples(_ record: ConnectionRecord, extended counters: Bool) -> String {
        var text = tupleText(record.orig)
        if counters { text += " packets=\(record.packets.orig) bytes=\(record.bytes.orig)" }
        if record.unreplied { text += " [UNREPLIED]" }
        text += " " + tupleText(record.reply)
        if counters { text += " packets=\(record.packets.reply) bytes=\(record.bytes.reply)" }
        return text
    }

    /// The family's name padded to 8 columns and its number (AF_INET 2, AF_INET6 10), as
    /// conntrack -o extended prints them.
    static func familyColumns(_ record: ConnectionRecord) -> String {
        record.family == "ipv6" ? "ipv6     10" : "ipv4     2"
    }

    /// The flag after the reply tuple: `[ASSURED]` as conntrack prints it, or `[REJECTED]` for
    /// a flow a `reject` rule refused (conntrack has no such entry: the kernel keeps none for
    /// a rejected packet), which would otherwise look like any flow still waiting for a reply.
    static func statusFlag(_ record: ConnectionRecord) -> String? {
        if record.rejected == true { return "[REJECTED]" }
        return record.assured ? "[ASSURED]" : nil
    }

    /// One event in the `conntrack -E` layout: the tag right-aligned, then the connection;
    /// a destroyed connection has no timeout or state left to show.
    public static func eventLine(_ record: EventRecord, extended: Bool = false) -> String {
        let tag = "[\(record.event.uppercased())]"
        let padded = String(repeating: " ", count: max(0, 9 - tag.count)) + tag
        let c = record.connection
        if record.event == "destroy" {
            var line = "\(padded) " + (extended ? familyColumns(c) + " " : "") + "\(protocolColumns(c)) "
            line += tuples(c, extended: extended)
            if let flag = statusFlag(c) { line += " " + flag }
            return line
        }
        var line = conntrackLine(c, extended: extended)
        if line.hasSuffix(" use=1") { line.removeLast(6) }
        return "\(padded) \(line)"
    }

    /// The protocol's name padded to 8 columns and its number, as conntrack prints them
    /// ("%-8s %u").
    static func protocolColumns(_ record: ConnectionRecord) -> String {
        let number: UInt8 = switch record.proto {
        case "udp": TrackedProtocol.udpNumber
        case "icmp": TrackedProtocol.icmpNumber
        case "icmpv6": TrackedProtocol.icmp6Number
        default: TrackedProtocol.tcpNumber
        }
        return record.proto + String(repeating: " ", count: max(0, 8 - record.proto.count)) + " \(number)"
    }

    /// `src=... dst=... sport=... dport=...`, or `... type=... code=... id=...` for ICMP.
    static func tupleText(_ tuple: ConnectionRecord.Tuple) -> String {
        var text = "src=\(tuple.src) dst=\(tuple.dst)"
        if let type = tuple.type, let code = tuple.code, let id = tuple.id {
            text += " type=\(type) code=\(code) id=\(id)"
        } else {
            text += " sport=\(tuple.sport ?? 0) dport=\(tuple.dport ?? 0)"
        }
        return text
    }

    /// The summary conntrack prints on stderr after a listing.
    public static func listSummary(count: Int) -> String {
        "seqwall: \(count) flow entr\(count == 1 ? "y has" : "ies have") been shown."
    }

    /// `2026-12-03T14:05:00Z`: seconds since 1970 as a UTC time (RFC 3339). Days to a civil
    /// date by the proleptic Gregorian calendar (Howard Hinnant's civil_from_days).
    public static func utcTime(_ unixSeconds: UInt64) -> String {
        let days = Int(unixSeconds / 86_400) + 719_468
        let secondOfDay = Int(unixSeconds % 86_400)
        let era = days / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(year)-\(two(month))-\(two(day))T\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))Z"
    }

    /// `seqwall stats -o text`.
    public static func statsText(_ stats: StatsRecord) -> String {
        var lines: [String] = []
        if let version = stats.version {
            lines.append("version      \(version)" + (stats.commit.map { "  commit \($0)" } ?? ""))
        }
        lines.append("packets      seen \(stats.packets.seen)  accepted \(stats.packets.accepted)  dropped \(stats.packets.dropped)")
        let c = stats.connections
        lines.append("connections  current \(c.current)  half-open \(c.half_open)  created \(c.created)  destroyed \(c.destroyed)  limit \(c.limit)")
        var limits = "limits       half-open limit \(c.half_open_limit.map(String.init) ?? "none")"
        limits += "  half-open evictions \(c.half_open_evictions ?? 0)  early drops \(c.early_drops ?? 0)"
        if let sources = stats.sources {
            limits += "  sources \(sources.active)/\(sources.capacity)  source evictions \(sources.evictions)"
        }
        lines.append(limits)
        if let o = stats.overload {
            lines.append("overload     sources \(o.sources)  added \(o.added)  expired \(o.expired)  flushed \(o.flushed)"
                         + "  pending expiries \(o.pending_expiries)  lost \(o.lost)")
        }
        if let s = stats.synproxy {
            lines.append("synproxy     cookies sent \(s.cookies_sent)  valid acks \(s.valid_acks)  invalid acks \(s.invalid_acks)"
                         + "  proxied \(s.connections)  server refused \(s.server_refused)"
                         + "  segments lost \(s.segments_lost)  send failures \(s.send_failures)"
                         + "  unroutable \(s.unroutable)  closed ports passed \(s.closed_ports_passed)")
        }
        if let pickup = stats.pickup {
            var line = "pickup       picked up \(pickup.picked_up)"
            if let ends = pickup.grace_ends, let left = pickup.grace_seconds_left {
                line += left > 0 ? "  grace period until \(utcTime(ends)) (\(left) s left)"
                                 : "  grace period over since \(utcTime(ends))"
            } else {
                line += "  no grace period"
            }
            lines.append(line)
        }
        for table in stats.tables ?? [] { lines.append("table        " + String(tableLine(table).dropFirst("table ".count))) }
        lines.append("drops by reason:")
        let width = DropReason.allCases.map(\.name.count).max() ?? 0
        for reason in DropReason.allCases {
            let count = stats.drops[reason.name] ?? 0
            lines.append("  " + reason.name + String(repeating: " ", count: width - reason.name.count) + "  \(count)")
        }
        for queue in stats.queues {
            var line = "queue \(queue.queue)      seen \(queue.seen)  accepted \(queue.accepted)  dropped \(queue.dropped)  enobufs \(queue.enobufs)  malformed \(queue.malformed_messages)  send-errors \(queue.send_errors)  connections \(queue.connections)"
            if queue.reject_answers + queue.reject_answers_limited + queue.reject_answers_failed > 0 {
                line += "  reject-answers \(queue.reject_answers) (rate-limited \(queue.reject_answers_limited), failed \(queue.reject_answers_failed))"
            }
            if let kernel = queue.kernel {
                line += "  kernel: queue_total \(kernel.queue_total)  queue_dropped \(kernel.queue_dropped)  user_dropped \(kernel.user_dropped)"
            }
            lines.append(line)
        }
        lines += healthLines(stats)
        return lines.joined(separator: "\n")
    }
}
