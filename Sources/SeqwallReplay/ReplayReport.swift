import SeqwallControl
import SeqwallCore

/// Writes a replay's report as the replay goes, so that a large capture is never held in
/// memory: a line (or JSON object) per frame, then the table and the counters.
///
/// `text`: `  12 0.003412 198.51.100.10:40000 > 203.0.113.10:8080 [S.] seq=1 ack=0 win=64240 len=0 ACCEPT SYN_SENT`
/// per frame, then the table in the `conntrack -L` layout, then the counters as `seqwall stats`
/// prints them. `json`: one document `{"packets":[...],"capture":{...},"connections":[...],
/// "stats":{...},"verdicts":{...}}` whose connections and stats are the objects `conntrack list
/// -o json` and `stats -o json` print.
public struct ReplayReport {
    public enum Format: Sendable {
        case text
        case json
    }

    public let format: Format
    private let write: (String) -> Void
    private var packets = 0

    /// `write` gets whole lines without their newline.
    public init(format: Format, write: @escaping (String) -> Void) {
        self.format = format
        self.write = write
        if format == .json { write("{\"packets\":[") }
    }

    public mutating func packet(_ record: PacketRecord) throws {
        switch format {
        case .text:
            write(ReplayReport.line(record))
        case .json:
            // The separating comma goes at the end of the line before: the last line must not
            // have one, and it is not known to be the last until the capture ends.
            write((packets == 0 ? "" : ",") + (try ControlJSON.line(record)))
        }
        packets += 1
    }

    /// `interfaces`: each interface's link type and snap length, for a capture of several.
    public func finish(_ summary: ReplaySummary, file: String, linkType: String, snapLength: Int,
                       interfaces: [InterfaceRecord]? = nil) throws {
        switch format {
        case .text:
            write("")
            write("connections:")
            for connection in summary.connections { write(Formatters.conntrackLine(connection)) }
            let count = summary.connections.count
            write("\(count) flow entr\(count == 1 ? "y" : "ies") left in the table.")
            write("")
            write("counters:")
            for line in ReplayReport.counterLines(summary) { write(line) }
        case .json:
            let capture = CaptureRecord(
                file: file, link_type: linkType, snap_length: snapLength, frames: summary.frames,
                skipped: Dictionary(uniqueKeysWithValues: SkipReason.allCases.map { ($0.rawValue, summary.skipped[$0] ?? 0) }),
                clock_went_back: summary.clockWentBack, interfaces: interfaces)
            write("],")
            write("\"capture\":" + (try ControlJSON.line(capture)) + ",")
            write("\"connections\":" + (try ControlJSON.line(summary.connections)) + ",")
            write("\"stats\":" + (try ControlJSON.line(summary.stats)) + ",")
            write("\"verdicts\":" + (try ControlJSON.line(summary.verdicts)) + "}")
        }
    }

    // MARK: Text

    /// One frame: number, time, tuple, TCP fields, verdict.
    public static func line(_ record: PacketRecord) -> String {
        var line = String(repeating: " ", count: max(0, 4 - String(record.number).count)) + "\(record.number) "
        line += seconds(record.relativeNanoseconds) + " "
        if let src = record.src, let dst = record.dst {
            if let sport = record.sport, let dport = record.dport {
                line += "\(endpoint(src, sport)) > \(endpoint(dst, dport))"
            } else {
                line += "\(src) > \(dst)"
            }
        } else if let detail = record.detail {
            line += detail
        } else {
            line += "IP"
        }
        if let flags = record.tcpFlags, let seq = record.seq, let ack = record.ack, let win = record.win, let len = record.len {
            line += " [\(tcpdumpFlags(flags))] seq=\(seq) ack=\(ack) win=\(win) len=\(len)"
        } else if let proto = record.proto, let wireLength = record.wireLength {
            line += " proto \(proto) len=\(wireLength)"
        }
        line += " " + record.verdict.uppercased()
        switch record.verdict {
        case "accept":
            if let state = record.state { line += " \(state)" }
        case "skip":
            line += " " + (record.reason ?? "")
            if record.src != nil, let detail = record.detail { line += " (\(detail))" }
        default:
            line += " " + (record.reason ?? "")
        }
        return line
    }

    static func counterLines(_ summary: ReplaySummary) -> [String] {
        let skipped = summary.skipped.values.reduce(0, +)
        var frames = "frames       read \(summary.frames)  replayed \(summary.frames - skipped)  skipped \(skipped)"
        let reasons = SkipReason.allCases.compactMap { reason in
            summary.skipped[reason].map { "\(reason.rawValue) \($0)" }
        }
        if !reasons.isEmpty { frames += " (" + reasons.joined(separator: ", ") + ")" }
        var lines = [frames]
        if summary.clockWentBack > 0 {
            lines.append("clock        went back \(Counted.text(summary.clockWentBack, "time")) (held still until the capture caught up)")
        }
        let v = summary.verdicts
        lines.append("verdicts     accept \(v.accept)  drop \(v.drop)  reject \(v.reject)")
        lines += Formatters.statsText(summary.stats).split(separator: "\n").map(String.init)
        return lines
    }

    /// "198.51.100.10:40000", "[2001:db8:1::10]:40000".
    static func endpoint(_ address: String, _ port: UInt16) -> String {
        address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    /// "-1.000250" style: seconds with microseconds, from integer nanoseconds.
    static func seconds(_ nanoseconds: Int64) -> String {
        let magnitude = nanoseconds.magnitude
        let micros = String(magnitude % 1_000_000_000 / 1000)
        return (nanoseconds < 0 ? "-" : "") + "\(magnitude / 1_000_000_000)."
            + String(repeating: "0", count: 6 - micros.count) + micros
    }

    /// tcpdump's flag letters in its order (print-tcp.c tcp_flag_values): F S R P . U E W,
    /// "none" when no flag is set.
    static func tcpdumpFlags(_ flags: TCPFlags) -> String {
        let letters: [(TCPFlags, Character)] = [(.fin, "F"), (.syn, "S"), (.rst, "R"), (.psh, "P"),
                                                (.ack, "."), (.urg, "U"), (.ece, "E"), (.cwr, "W")]
        let text = String(letters.filter { flags.contains($0.0) }.map(\.1))
        return text.isEmpty ? "none" : text
    }
}
