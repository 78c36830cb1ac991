import SeqwallControl

/// The state sync's metrics (docs/ha.md), beside the daemon's others.
extension DaemonMetrics {
    static func syncText(_ sync: SyncStatus, into out: inout PrometheusText) {
        func one(_ name: String, _ type: PrometheusText.MetricType, _ help: String, _ value: UInt64) {
            out.family(name, type, help: help)
            out.sample(name, ["peer": sync.peer], value)
        }
        one("seqwall_sync_in_sync", .gauge, "1 when a bulk from the peer's current start has completed and nothing was lost since.",
            sync.in_sync ? 1 : 0)
        one("seqwall_sync_peer_alive", .gauge, "1 while the peer was heard within the last 3 s.", sync.peer_alive ? 1 : 0)
        one("seqwall_sync_messages_sent_total", .counter, "Sync messages sent.", sync.messages_sent)
        one("seqwall_sync_messages_received_total", .counter, "Authentic sync messages received.", sync.messages_received)
        one("seqwall_sync_bytes_sent_total", .counter, "Bytes of sync messages sent.", sync.bytes_sent)
        one("seqwall_sync_entries_sent_total", .counter, "Connection records sent.", sync.entries_sent)
        one("seqwall_sync_entries_applied_total", .counter, "Connection records received and applied.", sync.entries_applied)
        one("seqwall_sync_closed_unsent_total", .counter,
            "TCP connections closed before their first record went: not sent.", sync.closed_unsent)
        one("seqwall_sync_resends_total", .counter, "Messages sent again after the peer's NACK.", sync.resends)
        one("seqwall_sync_nacks_sent_total", .counter, "Gaps asked for.", sync.nacks_sent)
        one("seqwall_sync_resend_dropped_total", .counter, "Messages dropped from a full resend queue.", sync.resend_dropped)
        one("seqwall_sync_changes_lost_total", .counter, "Table changes lost because a worker's ring was full.", sync.changes_lost)
        one("seqwall_sync_bulks_received_total", .counter, "Bulks received whole.", sync.bulks_received)
        out.family("seqwall_sync_refused_total", .counter, help: "Sync messages refused, by reason.")
        for (reason, count) in sync.refused.sorted(by: { $0.key < $1.key }) {
            out.sample("seqwall_sync_refused_total", ["peer": sync.peer, "reason": reason], count)
        }
    }
}
