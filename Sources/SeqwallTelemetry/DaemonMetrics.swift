import SeqwallControl
import SeqwallCore

/// Everything `/metrics` shows.
public struct DaemonMetrics: Sendable {
    public var queues: [QueueMetrics] = []
    public var reloadsSucceeded: UInt64 = 0
    public var reloadsFailed: UInt64 = 0
    /// The last reload's result; true before any (the rules loaded at start).
    public var lastReloadSucceeded = true
    /// The state file's writes; nil without --state-file.
    public var stateFile: DaemonHealth.StateFile?
    public var uptimeSeconds: UInt64 = 0
    /// The daemon's version and commit, for seqwall_build_info (empty: not shown).
    public var version = ""
    public var commit: String?
    /// When the last pickup grace period ends or ended, in seconds since 1970; 0 when none was
    /// started (docs/design.md, Pickup).
    public var pickupGraceEnds: UInt64 = 0
    /// The address tables and their entry counts now.
    public var tables: [TableSummary] = []
    /// The state sync with the peer, nil without one.
    public var sync: SyncStatus?
    /// The daemon's overload figures (the sources found over a limit are per queue, in the counters).
    public var overload = StatsRecord.Overload()

    public init() {}

    /// The exposition text. Every metric is present from the first scrape (zeros included), so
    /// a rate over it never starts from a missing series; drop reasons come from
    /// `DropReason.allCases`, so a new reason shows up without a change here.
    public var text: String {
        var out = PrometheusText()
        if !version.isEmpty {
            // The build_info convention: a constant 1 whose labels carry the build, so a query
            // can join them to any other series. An empty label value is the same as none.
            out.family("seqwall_build_info", .gauge, help: "1; the labels name the running daemon's version and commit.")
            out.sample("seqwall_build_info", ["version": version, "commit": commit ?? ""], 1)
        }
        func perQueue(_ name: String, _ type: PrometheusText.MetricType, _ help: String,
                      _ value: (QueueMetrics) -> UInt64) {
            out.family(name, type, help: help)
            for queue in queues { out.sample(name, ["queue": String(queue.queue)], value(queue)) }
        }
        perQueue("seqwall_packets_seen_total", .counter, "Packets seqwall decided.") { $0.counters.seen }
        perQueue("seqwall_packets_accepted_total", .counter, "Packets accepted.") { $0.counters.accepted }
        perQueue("seqwall_packets_dropped_total", .counter,
                 "Packets dropped (rejected ones included), all reasons together.") { $0.counters.dropped }

        out.family("seqwall_drops_total", .counter, help: "Packets dropped, by reason.")
        for queue in queues {
            for reason in DropReason.allCases {
                out.sample("seqwall_drops_total", ["queue": String(queue.queue), "reason": reason.name],
                           queue.counters[reason])
            }
        }

        perQueue("seqwall_connections", .gauge, "Connections in the table.") { UInt64($0.connections) }
        perQueue("seqwall_connections_limit", .gauge,
                 "The table's capacity (this queue's share of limit states).") { UInt64($0.connectionLimit) }
        perQueue("seqwall_half_open_connections", .gauge,
                 "Connections that have not completed their handshake.") { UInt64($0.halfOpen) }
        out.family("seqwall_half_open_limit", .gauge,
                   help: "This queue's share of limit half-open (absent when there is none).")
        for queue in queues {
            if let limit = queue.halfOpenLimit { out.sample("seqwall_half_open_limit", ["queue": String(queue.queue)], limit) }
        }
        perQueue("seqwall_connections_created_total", .counter, "Connections added to the table.") { $0.counters.created }
        perQueue("seqwall_connections_destroyed_total", .counter,
                 "Connections removed from the table.") { $0.counters.destroyed }
        perQueue("seqwall_half_open_evictions_total", .counter,
                 "Unreplied half-open connections evicted to admit a SYN at the half-open limit.") {
            $0.counters.halfOpenEvictions
        }
        perQueue("seqwall_early_drops_total", .counter,
                 "Connections evicted to admit one into a full table (the kernel's early_drop).") {
            $0.counters.earlyDrops
        }

        perQueue("seqwall_overloads_total", .counter,
                 "Sources found over a per-source connection limit with overload (limit conn, limit conn-rate).") {
            $0.counters.overloads
        }
        for (name, help, value) in [
            ("seqwall_overload_added_total", "Sources added to their overload table.", overload.added),
            ("seqwall_overload_expired_total", "Overload entries deleted at their expire deadline.", overload.expired),
            ("seqwall_overload_flushed_connections_total", "Connections removed by an overload's flush.", overload.flushed),
            ("seqwall_overload_lost_total", "Overloads lost: a full buffer or ring, or their table gone (queues' losses not included).",
             overload.lost),
        ] {
            out.family(name, .counter, help: help)
            out.sample(name, [:], value)
        }
        out.family("seqwall_overload_pending_expiries", .gauge, help: "Overload entries waiting for their expire deadline.")
        out.sample("seqwall_overload_pending_expiries", [:], UInt64(overload.pending_expiries))
        perQueue("seqwall_connections_picked_up_total", .counter,
                 "Connections first seen mid-stream and picked up (set pickup on, or a grace period).") {
            $0.counters.pickedUp
        }
        out.family("seqwall_pickup_grace_end_timestamp_seconds", .gauge,
                   help: "When the last pickup grace period ends or ended (seconds since 1970); 0 when none was started.")
        out.sample("seqwall_pickup_grace_end_timestamp_seconds", [:], pickupGraceEnds)
        if !tables.isEmpty {
            out.family("seqwall_table_entries", .gauge, help: "Entries of each address table, run-time changes included.")
            for table in tables { out.sample("seqwall_table_entries", ["table": table.name], UInt64(table.entries)) }
        }

        perQueue("seqwall_synproxy_cookies_sent_total", .counter,
                 "SYN-ACKs with a SYN cookie sent for clients' SYNs on synproxy rules.") { $0.counters.synProxyCookiesSent }
        perQueue("seqwall_synproxy_valid_acks_total", .counter,
                 "Clients' ACKs whose SYN cookie was good.") { $0.counters.synProxyValidAcks }
        perQueue("seqwall_synproxy_invalid_acks_total", .counter,
                 "ACKs for no connection on synproxy rules whose SYN cookie was not good (dropped).") {
            $0.counters.synProxyInvalidAcks
        }
        perQueue("seqwall_synproxy_connections_total", .counter,
                 "Proxied connections opened toward servers.") { $0.counters.synProxyConnections }
        perQueue("seqwall_synproxy_server_refused_total", .counter,
                 "Proxied handshakes a server refused with an RST.") { $0.counters.synProxyRefused }
        perQueue("seqwall_synproxy_segments_lost_total", .counter,
                 "SYN proxy segments not sent: the outbox was full, or the raw socket failed.") {
            $0.counters.synProxySegmentsLost &+ $0.synProxySendFailures
        }
        perQueue("seqwall_synproxy_unroutable_total", .counter,
                 "SYN proxy segments not sent for want of a route (cookie SYN-ACKs to spoofed sources).") {
            $0.synProxyUnroutable
        }
        perQueue("seqwall_synproxy_closed_ports_passed_total", .counter,
                 "SYNs a synproxy rule passed to the server unproxied: it had refused their port lately.") {
            $0.counters.synProxyClosedPortsPassed
        }

        perQueue("seqwall_queue_enobufs_total", .counter,
                 "Times the queue's socket overflowed (ENOBUFS): the kernel could not deliver packets.") { $0.enobufs }
        perQueue("seqwall_queue_malformed_messages_total", .counter,
                 "Messages from the kernel that were not well-formed packet messages.") { $0.malformedMessages }
        perQueue("seqwall_queue_send_errors_total", .counter,
                 "Batches of verdicts the kernel refused.") { $0.sendErrors }
        perQueue("seqwall_reject_answers_total", .counter,
                 "TCP resets and port unreachables sent for rejected packets.") { $0.rejectAnswers }
        perQueue("seqwall_reject_answers_limited_total", .counter,
                 "Answers to rejected packets held back by the rate limit (the packet is dropped all the same).") {
            $0.rejectAnswersLimited
        }
        perQueue("seqwall_reject_answers_failed_total", .counter,
                 "Answers to rejected packets that could not be sent (no raw socket, or the kernel refused).") {
            $0.rejectAnswersFailed
        }
        perQueue("seqwall_queue_fail_open", .gauge,
                 "1 with --fail-open: a full queue then accepts packets unchecked, and the kernel counts none of them.") {
            $0.failOpen ? 1 : 0
        }
        func kernel(_ name: String, _ type: PrometheusText.MetricType, _ help: String,
                    _ value: (StatsRecord.KernelQueue) -> UInt64) {
            out.family(name, type, help: help)
            for queue in queues {
                if let figures = queue.kernel { out.sample(name, ["queue": String(queue.queue)], value(figures)) }
            }
        }
        kernel("seqwall_kernel_queue_waiting", .gauge,
               "Packets the kernel holds for a verdict (nfnetlink_queue queue_total).") { $0.queue_total }
        kernel("seqwall_kernel_queue_dropped_total", .counter,
               "Packets the kernel dropped because the queue was full (queue_dropped).") { $0.queue_dropped }
        kernel("seqwall_kernel_queue_user_dropped_total", .counter,
               "Packets the kernel dropped because seqwall's socket was full (user_dropped).") { $0.user_dropped }

        perQueue("seqwall_drop_log_suppressed_total", .counter,
                 "Drop log lines left out by set drop-log sampled.") { $0.dropLogSuppressed }
        perQueue("seqwall_drop_log_lost_total", .counter,
                 "Drop log lines lost because the logging thread fell behind.") { $0.dropLogLost }

        out.family("seqwall_reloads_total", .counter, help: "Rule reloads, by result.")
        out.sample("seqwall_reloads_total", ["result": "success"], reloadsSucceeded)
        out.sample("seqwall_reloads_total", ["result": "failure"], reloadsFailed)
        out.family("seqwall_last_reload_success", .gauge,
                   help: "1 when the last reload succeeded (or none was tried), 0 when it was refused.")
        out.sample("seqwall_last_reload_success", [:], lastReloadSucceeded ? 1 : 0)
        out.family("seqwall_uptime_seconds", .gauge, help: "Seconds since seqwall started.")
        out.sample("seqwall_uptime_seconds", [:], uptimeSeconds)

        if let stateFile {
            out.family("seqwall_state_file_ok", .gauge,
                       help: "1 while the last write of the state file succeeded (or none was due yet), 0 after a failure.")
            out.sample("seqwall_state_file_ok", [:], stateFile.ok ? 1 : 0)
            out.family("seqwall_state_file_write_failures_total", .counter, help: "Writes of the state file that failed.")
            out.sample("seqwall_state_file_write_failures_total", [:], stateFile.failures)
            out.family("seqwall_state_file_last_success_timestamp_seconds", .gauge,
                       help: "Unix time of the last successful write of the state file (absent before the first).")
            if let success = stateFile.last_success_at {
                out.sample("seqwall_state_file_last_success_timestamp_seconds", [:], success)
            }
        }

        if let sync { DaemonMetrics.syncText(sync, into: &out) }

        var processing = LatencyHistogram()
        for queue in queues { processing.merge(queue.processing) }
        out.histogram("seqwall_packet_processing_seconds", help: LatencyHistogram.measuredText, processing)
        return out.text
    }
}
