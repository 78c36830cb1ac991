import SeqwallCore

/// Text output of the CLI.
public enum Formatters {
    /// One connection in the `conntrack -L` layout:
    /// `tcp      6 431999 ESTABLISHED src=... dst=... sport=... dport=... src=... [ASSURED] use=1`,
    /// `udp      17 29 src=... dport=53 [UNREPLIED] src=... use=1`,
    /// `icmp     1 29 src=... dst=... type=8 code=0 id=... src=... type=0 code=0 id=... use=1`.
    public static func conntrackLine(_ record: ConnectionRecord) -> String {
        var line = protocolColumns(record) + " \(record.timeout) "
        if !record.state.isEmpty { line += "\(record.state) " }
        line += tupleText(record.orig) + " "
        if record.unreplied { line += "[UNREPLIED] " }
        line += tupleText(record.reply) + " "
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
            var line = "\(padded) \(protocolColumns(c)) "
            line += tupleText(c.orig) + " "
            if c.unreplied { line += "[UNREPLIED] " }
            line += tupleText(c.reply)
            if c.assured { line += " [ASSURED]" }
            return line
        }
        var line = conntrackLine(c)
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
            if queue.reject_answers + queue.reject_answers_limited + queue.reject_answers_failed > 0 {
                line += "  reject-answers \(queue.reject_answers) (rate-limited \(queue.reject_answers_limited), failed \(queue.reject_answers_failed))"
            }
            if let kernel = queue.kernel {
                line += "  kernel: queue_total \(kernel.queue_total)  queue_dropped \(kernel.queue_dropped)  user_dropped \(kernel.user_dropped)"
            }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }
}
