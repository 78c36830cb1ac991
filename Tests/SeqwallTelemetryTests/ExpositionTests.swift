import SeqwallControl
import SeqwallCore
import Testing

@testable import SeqwallTelemetry

/// The samples of `text` as `name{labels}` -> value, checking on the way that every line is a
/// comment or a well-formed sample and that each family's HELP and TYPE come before its samples.
private func samples(_ text: String) -> [String: String] {
    var result: [String: String] = [:]
    var typed: Set<String> = []
    for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
        if line.hasPrefix("# TYPE ") {
            typed.insert(String(line.split(separator: " ")[2]))
            continue
        }
        if line.hasPrefix("# HELP ") { continue }
        guard let space = line.lastIndex(of: " ") else {
            Issue.record("not a sample: \(line)")
            continue
        }
        let key = String(line[..<space])
        let name = String(key.prefix { $0 != "{" })
        let family = ["_bucket", "_sum", "_count"].reduce(name) { name, suffix in
            typed.contains(name) ? name : (name.hasSuffix(suffix) ? String(name.dropLast(suffix.count)) : name)
        }
        #expect(typed.contains(family), "sample before its # TYPE line: \(line)")
        #expect(result[key] == nil, "sample twice: \(key)")
        result[key] = String(line[line.index(after: space)...])
    }
    #expect(text.hasSuffix("\n"))
    return result
}

@Suite("Prometheus exposition")
struct ExpositionTests {
    @Test("seconds print exactly, without exponent or rounding")
    func seconds() {
        #expect(PrometheusText.seconds(nanoseconds: 0) == "0")
        #expect(PrometheusText.seconds(nanoseconds: 250) == "0.00000025")
        #expect(PrometheusText.seconds(nanoseconds: 1_000) == "0.000001")
        #expect(PrometheusText.seconds(nanoseconds: 2_500_000) == "0.0025")
        #expect(PrometheusText.seconds(nanoseconds: 1_500_000_000) == "1.5")
        #expect(PrometheusText.seconds(nanoseconds: 3_000_000_000) == "3")
        #expect(PrometheusText.seconds(nanoseconds: 12_000_000_001) == "12.000000001")
    }

    @Test("label values and help text are escaped as the format says")
    func escaping() {
        var text = PrometheusText()
        text.family("x_total", .counter, help: "a \\ b\nc \"q\"")
        text.sample("x_total", ["path": "C:\\dir\n\"quoted\""], UInt64(3))
        #expect(text.text == """
            # HELP x_total a \\\\ b\\nc "q"
            # TYPE x_total counter
            x_total{path="C:\\\\dir\\n\\"quoted\\""} 3

            """)
    }

    @Test("a histogram prints cumulative buckets, +Inf equal to the count, sum in seconds")
    func histogramText() {
        var histogram = LatencyHistogram()
        histogram.record(nanoseconds: 200)                // first bucket (<= 250 ns)
        histogram.record(nanoseconds: 250)                // first bucket: bounds are inclusive
        histogram.record(nanoseconds: 3_000, times: 4)    // <= 5 us
        histogram.record(nanoseconds: 20_000_000)         // above every bound
        var text = PrometheusText()
        text.histogram("t_seconds", help: "h", histogram)
        let lines = text.text.split(separator: "\n").map(String.init)
        #expect(lines == [
            "# HELP t_seconds h",
            "# TYPE t_seconds histogram",
            "t_seconds_bucket{le=\"0.00000025\"} 2",
            "t_seconds_bucket{le=\"0.0000005\"} 2",
            "t_seconds_bucket{le=\"0.000001\"} 2",
            "t_seconds_bucket{le=\"0.0000025\"} 2",
            "t_seconds_bucket{le=\"0.000005\"} 6",
            "t_seconds_bucket{le=\"0.00001\"} 6",
            "t_seconds_bucket{le=\"0.000025\"} 6",
            "t_seconds_bucket{le=\"0.00005\"} 6",
            "t_seconds_bucket{le=\"0.0001\"} 6",
            "t_seconds_bucket{le=\"0.00025\"} 6",
            "t_seconds_bucket{le=\"0.0005\"} 6",
            "t_seconds_bucket{le=\"0.001\"} 6",
            "t_seconds_bucket{le=\"0.0025\"} 6",
            "t_seconds_bucket{le=\"0.01\"} 6",
            "t_seconds_bucket{le=\"+Inf\"} 7",
            "t_seconds_sum 0.02001245",
            "t_seconds_count 7",
        ])
    }

    static func queue(_ number: UInt16) -> QueueMetrics {
        var queue = QueueMetrics(queue: number)
        queue.counters.seen = 100 + UInt64(number)
        queue.counters.accepted = 90
        queue.counters.dropped = 10 + UInt64(number)
        queue.counters.drops[Int(DropReason.rule.rawValue)] = 7
        queue.counters.drops[Int(DropReason.badFlags.rawValue)] = 3 + UInt64(number)
        queue.counters.created = 12
        queue.counters.destroyed = 4
        queue.counters.halfOpenEvictions = 2
        queue.counters.earlyDrops = 1
        queue.connections = 8
        queue.connectionLimit = 1024
        queue.halfOpen = 3
        queue.halfOpenLimit = number == 0 ? 64 : nil
        queue.enobufs = 5
        queue.sendErrors = 6
        queue.malformedMessages = 9
        queue.rejectAnswers = 14
        queue.rejectAnswersLimited = 15
        queue.rejectAnswersFailed = 16
        queue.kernel = number == 0 ? StatsRecord.KernelQueue(queue_total: 2, queue_dropped: 11, user_dropped: 13) : nil
        queue.failOpen = true
        queue.dropLogSuppressed = 40
        queue.dropLogLost = 41
        queue.processing.record(nanoseconds: 1_000, times: queue.counters.seen)
        return queue
    }

    @Test("the daemon's metrics: every family, every reason, per queue, with the right values")
    func daemonMetrics() {
        var metrics = DaemonMetrics()
        metrics.queues = [Self.queue(0), Self.queue(3)]
        metrics.reloadsSucceeded = 2
        metrics.reloadsFailed = 1
        metrics.lastReloadSucceeded = false
        metrics.version = "1.2.3"
        metrics.commit = "0123456789ab"
        let values = samples(metrics.text)
        #expect(values["seqwall_build_info{version=\"1.2.3\",commit=\"0123456789ab\"}"] == "1")

        #expect(values["seqwall_packets_seen_total{queue=\"0\"}"] == "100")
        #expect(values["seqwall_packets_seen_total{queue=\"3\"}"] == "103")
        #expect(values["seqwall_packets_accepted_total{queue=\"3\"}"] == "90")
        #expect(values["seqwall_packets_dropped_total{queue=\"3\"}"] == "13")
        for queue in ["0", "3"] {
            for reason in DropReason.allCases {
                let expected = reason == .rule ? "7" : reason == .badFlags ? (queue == "0" ? "3" : "6") : "0"
                #expect(values["seqwall_drops_total{queue=\"\(queue)\",reason=\"\(reason.name)\"}"] == expected)
            }
        }
        #expect(values.keys.filter { $0.hasPrefix("seqwall_drops_total{") }.count == 2 * DropReason.allCases.count)
        #expect(values["seqwall_connections{queue=\"0\"}"] == "8")
        #expect(values["seqwall_connections_limit{queue=\"0\"}"] == "1024")
        #expect(values["seqwall_half_open_connections{queue=\"3\"}"] == "3")
        #expect(values["seqwall_half_open_limit{queue=\"0\"}"] == "64")
        #expect(values["seqwall_half_open_limit{queue=\"3\"}"] == nil)
        #expect(values["seqwall_connections_created_total{queue=\"0\"}"] == "12")
        #expect(values["seqwall_connections_destroyed_total{queue=\"0\"}"] == "4")
        #expect(values["seqwall_half_open_evictions_total{queue=\"0\"}"] == "2")
        #expect(values["seqwall_early_drops_total{queue=\"0\"}"] == "1")
        #expect(values["seqwall_queue_enobufs_total{queue=\"0\"}"] == "5")
        #expect(values["seqwall_queue_send_errors_total{queue=\"0\"}"] == "6")
        #expect(values["seqwall_queue_malformed_messages_total{queue=\"0\"}"] == "9")
        #expect(values["seqwall_queue_fail_open{queue=\"3\"}"] == "1")
        #expect(values["seqwall_reject_answers_total{queue=\"0\"}"] == "14")
        #expect(values["seqwall_reject_answers_limited_total{queue=\"3\"}"] == "15")
        #expect(values["seqwall_reject_answers_failed_total{queue=\"0\"}"] == "16")
        #expect(values["seqwall_kernel_queue_waiting{queue=\"0\"}"] == "2")
        #expect(values["seqwall_kernel_queue_dropped_total{queue=\"0\"}"] == "11")
        #expect(values["seqwall_kernel_queue_user_dropped_total{queue=\"0\"}"] == "13")
        #expect(values["seqwall_kernel_queue_dropped_total{queue=\"3\"}"] == nil)
        #expect(values["seqwall_drop_log_suppressed_total{queue=\"0\"}"] == "40")
        #expect(values["seqwall_drop_log_lost_total{queue=\"0\"}"] == "41")
        #expect(values["seqwall_reloads_total{result=\"success\"}"] == "2")
        #expect(values["seqwall_reloads_total{result=\"failure\"}"] == "1")
        #expect(values["seqwall_last_reload_success"] == "0")
        // The two queues' histograms merged: 203 packets of 1 us each.
        #expect(values["seqwall_packet_processing_seconds_count"] == "203")
        #expect(values["seqwall_packet_processing_seconds_bucket{le=\"+Inf\"}"] == "203")
        #expect(values["seqwall_packet_processing_seconds_bucket{le=\"0.000001\"}"] == "203")
        #expect(values["seqwall_packet_processing_seconds_bucket{le=\"0.0000005\"}"] == "0")
        #expect(values["seqwall_packet_processing_seconds_sum"] == "0.000203")
    }

    @Test("pickup: connections picked up per queue, and the grace period's end (0 when none)")
    func pickupMetrics() {
        var metrics = DaemonMetrics()
        var first = QueueMetrics(queue: 0)
        first.counters.pickedUp = 4
        metrics.queues = [first, QueueMetrics(queue: 1)]
        var values = samples(metrics.text)
        #expect(values["seqwall_connections_picked_up_total{queue=\"0\"}"] == "4")
        #expect(values["seqwall_connections_picked_up_total{queue=\"1\"}"] == "0")
        #expect(values["seqwall_pickup_grace_end_timestamp_seconds"] == "0")
        metrics.pickupGraceEnds = 1_796_317_323
        values = samples(metrics.text)
        #expect(values["seqwall_pickup_grace_end_timestamp_seconds"] == "1796317323")
    }

    @Test("with no reload yet the last result reads as success, and the counters are zero")
    func noReloadYet() {
        let values = samples(DaemonMetrics().text)
        #expect(values["seqwall_last_reload_success"] == "1")
        #expect(values["seqwall_reloads_total{result=\"success\"}"] == "0")
        #expect(values["seqwall_reloads_total{result=\"failure\"}"] == "0")
        #expect(values["seqwall_packet_processing_seconds_count"] == "0")
        #expect(!values.keys.contains { $0.hasPrefix("seqwall_build_info") })
        #expect(values["seqwall_state_file_ok"] == nil, "no --state-file, no state file metrics")
    }

    @Test("the state file's health and the uptime")
    func stateFileHealth() {
        var metrics = DaemonMetrics()
        metrics.uptimeSeconds = 42
        metrics.stateFile = DaemonHealth.StateFile(path: "/var/lib/seqwall/state")
        var values = samples(metrics.text)
        #expect(values["seqwall_uptime_seconds"] == "42")
        #expect(values["seqwall_state_file_ok"] == "1")
        #expect(values["seqwall_state_file_write_failures_total"] == "0")
        #expect(values["seqwall_state_file_last_success_timestamp_seconds"] == nil, "never written yet")
        metrics.stateFile = DaemonHealth.StateFile(path: "/var/lib/seqwall/state", ok: false, last_success_at: 1_796_305_900,
                                                   last_error: "cannot write", last_error_at: 1_796_305_963, failures: 3)
        values = samples(metrics.text)
        #expect(values["seqwall_state_file_ok"] == "0")
        #expect(values["seqwall_state_file_write_failures_total"] == "3")
        #expect(values["seqwall_state_file_last_success_timestamp_seconds"] == "1796305900")
    }

    @Test("a build outside git: build_info with an empty commit")
    func buildInfoWithoutCommit() {
        var metrics = DaemonMetrics()
        metrics.version = "1.2.3"
        #expect(samples(metrics.text)["seqwall_build_info{version=\"1.2.3\",commit=\"\"}"] == "1")
    }
}

@Suite("Processing-time histogram")
struct LatencyHistogramTests {
    @Test("merging adds bucket by bucket, and the count and sum")
    func merging() {
        var first = LatencyHistogram()
        first.record(nanoseconds: 100, times: 3)
        first.record(nanoseconds: 7_000)
        var second = LatencyHistogram()
        second.record(nanoseconds: 400, times: 2)
        second.record(nanoseconds: 7_000, times: 5)
        second.record(nanoseconds: 1_000_000_000)
        var merged = LatencyHistogram()
        merged.merge(first)
        merged.merge(second)
        var expected = [UInt64](repeating: 0, count: LatencyHistogram.boundsNanoseconds.count + 1)
        expected[0] = 3          // <= 250 ns
        expected[1] = 2          // <= 500 ns
        expected[5] = 6          // <= 10 us
        expected[expected.count - 1] = 1
        #expect(merged.counts == expected)
        #expect(merged.count == 12)
        #expect(merged.sumNanoseconds == 300 + 7_000 + 800 + 35_000 + 1_000_000_000)
        #expect(merged.count == merged.counts.reduce(0, +))
    }

    @Test("a snapshot is independent of the histogram it was taken from")
    func snapshot() {
        var live = LatencyHistogram()
        live.record(nanoseconds: 1_000)
        let taken = live.snapshot()
        live.record(nanoseconds: 1_000)
        #expect(taken.count == 1)
        #expect(live.count == 2)
        #expect(taken.counts[2] == 1 && live.counts[2] == 2)
    }

    @Test("the bounds ascend strictly")
    func bounds() {
        let bounds = LatencyHistogram.boundsNanoseconds
        #expect(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 })
    }
}
