extension Formatters {
    /// `seqwall sync status`: one line that says whether this node can take over, then the
    /// figures, one per line.
    public static func syncText(_ status: SyncStatus) -> String {
        var lines: [String] = []
        let heard = status.last_heard_ms.map { "last heard \($0) ms ago" } ?? "never heard"
        lines.append("peer \(status.peer) (listening on \(status.listen)): \(status.in_sync ? "in sync" : "NOT in sync"), "
                     + "\(status.peer_alive ? "alive" : "down"), \(heard)")
        if let progress = status.bulk_progress { lines.append("bulk from the peer: \(progress) records so far") }
        if status.bulk_remaining > 0 { lines.append("bulk to the peer: \(status.bulk_remaining) records to go") }
        lines.append("messages: \(status.messages_sent) sent (\(status.bytes_sent) bytes), \(status.messages_received) received")
        lines.append("records: \(status.entries_sent) sent, \(status.entries_applied) applied, \(status.coalescing) coalescing, "
                     + "\(status.closed_unsent) closed before sent (not sent)")
        lines.append("reliability: \(status.resends) resends, \(status.nacks_sent) NACKs sent, \(status.nacks_received) received, "
                     + "\(status.unacknowledged) unacknowledged, \(status.resend_dropped) dropped from the resend queue")
        lines.append("bulks: \(status.bulks_received) received, \(status.bulks_sent) sent, \(status.bulk_requests_sent) requested")
        lines.append("lost: \(status.changes_lost) changes (worker ring full), \(status.send_errors) send errors")
        let refused = status.refused.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }
        lines.append("refused: \(refused.isEmpty ? "none" : refused.joined(separator: ", "))")
        return lines.joined(separator: "\n")
    }
}
