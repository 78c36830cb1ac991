import SeqwallCore

/// Text output of the CLI.
public enum Formatters {
    /// One connection in the `conntrack -L` layout:
    /// `tcp      6 431999 ESTABLISHED src=... dst=... sport=... dport=... src=... [ASSURED] use=1`.
    public static func conntrackLine(_ record: ConnectionRecord) -> String {
        var line = "tcp      6 \(record.timeout) \(record.state) "
        line += "src=\(record.orig.src) dst=\(record.orig.dst) sport=\(record.orig.sport) dport=\(record.orig.dport) "
        if record.unreplied { line += "[UNREPLIED] " }
        line += "src=\(record.reply.src) dst=\(record.reply.dst) sport=\(record.reply.sport) dport=\(record.reply.dport) "
        if record.assured { line += "[ASSURED] " }
        line += "use=1"
        return line
    }

    /// One event in the `conntrack -E` layout: the tag right-aligned, then the connection;
    /// a destroyed connection has no timeout or state left to show.
    public static func eventLine(_ record: EventRecord) -> String {
        let tag = "[\(record.event.uppercased())]"
        let padded = String(repeating: " ", count: max(0, 9 - tag.count)) + tag
        let c = record.connection
        if record.event == "destroy" {
            var line = "\(padded) tcp      6 "
            line += "src=\(c.orig.src) dst=\(c.orig.dst) sport=\(c.orig.sport) dport=\(c.orig.dport) "
            if c.unreplied { line += "[UNREPLIED] " }
            line += "src=\(c.reply.src) dst=\(c.reply.dst) sport=\(c.reply.sport) dport=\(c.reply.dport)"
            if c.assured { line += " [ASSURED]" }
            return line
        }
        var line = conntrackLine(c)
        if line.hasSuffix(" use=1") { line.removeLast(6) }
        return "\(padded) \(line)"
    }

    /// The summary conntrack prints on stderr after a listing.
    public static func listSummary(count: Int) -> String {
        "seqwall: \(count) flow entr\(count == 1 ? "y has" : "ies have") been shown."
    }

    /// `seqwall stats -o text`.
    public static func statsText(_ stats: StatsRecord) -> String {
        var lines: [String] = []
        lines.append("packets      seen \(stats.packets.seen)  accepted \(stats.packets.accepted)  dropped \(stats.packets.dropped)")
        let c = stats.connections
        lines.append("connections  current \(c.current)  half-open \(c.half_open)  created \(c.created)  destroyed \(c.destroyed)  limit \(c.limit)")
        var limits = "limits       half-open limit \(c.half_open_limit.map(String.init) ?? "none")"
        limits += "  half-open evictions \(c.half_open_evictions ?? 0)  early drops \(c.early_drops ?? 0)"
        if let sources = stats.sources {
            limits += "  sources \(sources.active)/\(sources.capacity)  source evictions \(sources.evictions)"
        }
        lines.append(limits)
        lines.append("drops by reason:")
        let width = DropReason.allCases.map(\.name.count).max() ?? 0
        for reason in DropReason.allCases {
            let count = stats.drops[reason.name] ?? 0
            lines.append("  " + reason.name + String(repeating: " ", count: width - reason.name.count) + "  \(count)")
        }
        for queue in stats.queues {
            var line = "queue \(queue.queue)      seen \(queue.seen)  accepted \(queue.accepted)  dropped \(queue.dropped)  enobufs \(queue.enobufs)  malformed \(queue.malformed_messages)  send-errors \(queue.send_errors)  connections \(queue.connections)"
            if let kernel = queue.kernel {
                line += "  kernel: queue_total \(kernel.queue_total)  queue_dropped \(kernel.queue_dropped)  user_dropped \(kernel.user_dropped)"
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}
