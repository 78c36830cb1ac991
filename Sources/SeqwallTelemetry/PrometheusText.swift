import SeqwallControl

/// The Prometheus text exposition format, version 0.0.4
/// (prometheus.io/docs/instrumenting/exposition_formats): for each metric family one `# HELP`
/// and one `# TYPE` line, then its samples, one a line, `name{label="value",...} value`.
public struct PrometheusText: Sendable {
    /// What the endpoint answers with; Prometheus picks the parser by it.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public enum MetricType: String, Sendable {
        case counter, gauge, histogram
    }

    public typealias Labels = KeyValuePairs<String, String>

    public private(set) var text = ""

    public init() {}

    /// Starts a family: its help text and type. Its samples follow.
    public mutating func family(_ name: String, _ type: MetricType, help: String) {
        text += "# HELP \(name) \(PrometheusText.escapedHelp(help))\n"
        text += "# TYPE \(name) \(type.rawValue)\n"
    }

    public mutating func sample(_ name: String, _ labels: Labels, _ value: UInt64) {
        sample(name, labels, formatted: String(value))
    }

    public mutating func sample(_ name: String, _ labels: Labels, _ value: Int) {
        sample(name, labels, formatted: String(value))
    }

    /// A sample whose value is already text (for `+Inf`, or exact decimal seconds).
    public mutating func sample(_ name: String, _ labels: Labels, formatted value: String) {
        text += name
        if !labels.isEmpty {
            text += "{"
            var first = true
            for (label, labelValue) in labels {
                if !first { text += "," }
                first = false
                text += "\(label)=\"\(PrometheusText.escapedLabelValue(labelValue))\""
            }
            text += "}"
        }
        text += " \(value)\n"
    }

    /// A whole histogram family in seconds: cumulative `_bucket` samples with `le`, then
    /// `_sum` and `_count` (the format's histogram rules: buckets are cumulative, the `+Inf`
    /// bucket equals the count).
    public mutating func histogram(_ name: String, help: String, _ histogram: LatencyHistogram) {
        family(name, .histogram, help: help)
        var cumulative: UInt64 = 0
        for (index, bound) in LatencyHistogram.boundsNanoseconds.enumerated() {
            cumulative += histogram.counts[index]
            sample(name + "_bucket", ["le": PrometheusText.seconds(nanoseconds: bound)], cumulative)
        }
        sample(name + "_bucket", ["le": "+Inf"], histogram.count)
        sample(name + "_sum", [:], formatted: PrometheusText.seconds(nanoseconds: histogram.sumNanoseconds))
        sample(name + "_count", [:], histogram.count)
    }

    /// Nanoseconds as exact decimal seconds: 250 is `0.00000025`, 1_500_000_000 is `1.5`, 0 is
    /// `0`. Exact, so bucket bounds print the same on every scrape and compare equal in tests.
    public static func seconds(nanoseconds: UInt64) -> String {
        let whole = nanoseconds / 1_000_000_000
        var fraction = nanoseconds % 1_000_000_000
        guard fraction > 0 else { return String(whole) }
        var digits = 9
        while fraction % 10 == 0 {
            fraction /= 10
            digits -= 1
        }
        let text = String(fraction)
        return "\(whole)." + String(repeating: "0", count: digits - text.count) + text
    }

    /// Label values escape backslash, double quote and line feed (the format's only escapes).
    static func escapedLabelValue(_ value: String) -> String { escaped(value, quotes: true) }

    /// Help text escapes backslash and line feed.
    static func escapedHelp(_ help: String) -> String { escaped(help, quotes: false) }

    private static func escaped(_ text: String, quotes: Bool) -> String {
        var result = ""
        for character in text.unicodeScalars {
            switch character {
            case "\\": result += "\\\\"
            case "\"" where quotes: result += "\\\""
            case "\n": result += "\\n"
            default: result.unicodeScalars.append(character)
            }
        }
        return result
    }
}
