import SeqwallCore

/// Counters for `seqwall stats`.
public struct StatsRecord: Codable, Sendable, Equatable {
    public struct Packets: Codable, Sendable, Equatable {
        public var seen: UInt64
        public var accepted: UInt64
        public var dropped: UInt64
    }

    public struct Connections: Codable, Sendable, Equatable {
        public var current: Int
        public var half_open: Int
        public var created: UInt64
        public var destroyed: UInt64
        public var limit: Int
        /// Unreplied half-open connections evicted to admit a SYN at the half-open limit.
        public var half_open_evictions: UInt64?
        /// Connections evicted to admit one into a full table (the kernel's early_drop).
        public var early_drops: UInt64?
        /// `limit half-open` (the sum of the queues' shares); absent when there is none.
        public var half_open_limit: Int?
    }

    /// Automatic blocking (`limit conn`/`conn-rate ... overload`); absent when nothing was
    /// ever overloaded and no deadline is pending.
    public struct Overload: Codable, Sendable, Equatable {
        /// Sources the workers found over a limit with overload (one may be counted again
        /// until its table blocks it).
        public var sources: UInt64 = 0
        /// Entries added to their table (the source was not there yet).
        public var added: UInt64 = 0
        /// Entries deleted at their `expire` deadline.
        public var expired: UInt64 = 0
        /// Connections removed by `flush`.
        public var flushed: UInt64 = 0
        /// Entries waiting for their deadline.
        public var pending_expiries: Int = 0
        /// Overloads lost: a worker's buffer or ring was full, or their table was gone.
        public var lost: UInt64 = 0

        public init() {}
    }

    /// The SYN proxy (docs/synproxy.md); absent when it never did anything.
    public struct SynProxy: Codable, Sendable, Equatable {
        /// SYN-ACKs with a cookie sent for clients' SYNs.
        public var cookies_sent: UInt64 = 0
        /// Clients' ACKs whose cookie was good, and those whose cookie was not (dropped,
        /// `synproxy-bad-cookie`).
        public var valid_acks: UInt64 = 0
        public var invalid_acks: UInt64 = 0
        /// Proxied connections opened toward servers.
        public var connections: UInt64 = 0
        /// Handshakes a server refused (an RST to seqwall's SYN; the client got an RST).
        public var server_refused: UInt64 = 0
        /// seqwall's own segments not sent: the outbox was full, or the raw socket failed, or
        /// no route led to the destination (cookie SYN-ACKs to spoofed sources).
        public var segments_lost: UInt64 = 0
        public var send_failures: UInt64 = 0
        public var unroutable: UInt64 = 0
        /// SYNs passed to the server unproxied: it had refused their port lately.
        public var closed_ports_passed: UInt64 = 0

        public init() {}
    }

    /// The per-source limiter's table, as the tracker reports it (ConnectionTracker.sourceTableUsage).
    public typealias Sources = SourceTableUsage

    /// The kernel's own figures for a queue, from /proc/net/netfilter/nfnetlink_queue.
    public struct KernelQueue: Codable, Sendable, Equatable {
        public var queue_total: UInt64
        public var queue_dropped: UInt64
        public var user_dropped: UInt64

        public init(queue_total: UInt64, queue_dropped: UInt64, user_dropped: UInt64) {
            self.queue_total = queue_total
            self.queue_dropped = queue_dropped
            self.user_dropped = user_dropped
        }
    }

    public struct Queue: Codable, Sendable, Equatable {
        public var queue: UInt16
        public var seen: UInt64
        public var accepted: UInt64
        public var dropped: UInt64
        /// Times the socket overflowed (ENOBUFS): the kernel dropped packets it could not deliver.
        public var enobufs: UInt64
        /// Netlink messages from the kernel that were not well-formed packet messages.
        public var malformed_messages: UInt64
        /// Batches of verdicts the kernel refused (their packets wait until the queue times out).
        public var send_errors: UInt64
        /// Answers to rejected packets: sent, held back by the rate limit, not sent.
        public var reject_answers: UInt64
        public var reject_answers_limited: UInt64
        public var reject_answers_failed: UInt64
        public var connections: Int
        public var kernel: KernelQueue?
    }

    /// Connections first seen mid-stream, and the grace period in which they are picked up
    /// with pickup off (docs/design.md, Pickup).
    public struct Pickup: Codable, Sendable, Equatable {
        /// Connections picked up since the start (by `set pickup on` or in a grace period).
        public var picked_up: UInt64
        /// When the last grace period ends or ended, in seconds since 1970 (UTC); absent when
        /// none was started since the start (or a reload set `set pickup grace 0`).
        public var grace_ends: UInt64?
        /// Seconds left of it: 0 once it is over; absent with `grace_ends`.
        public var grace_seconds_left: UInt64?

        public init(picked_up: UInt64, grace_ends: UInt64? = nil, grace_seconds_left: UInt64? = nil) {
            self.picked_up = picked_up
            self.grace_ends = grace_ends
            self.grace_seconds_left = grace_seconds_left
        }
    }

    public var packets: Packets
    public var drops: [String: UInt64]
    public var connections: Connections
    public var queues: [Queue]
    /// Absent when no per-source limit is (or was) in force.
    public var sources: Sources?
    /// Seconds since the daemon started (absent from a daemon that predates it).
    public var uptime_seconds: UInt64?
    public var last_reload: DaemonHealth.Reload?
    /// The rules and defaults that dropped new connections, in `rules show` order (every rule
    /// with its counters: `seqwall rules show`).
    public var rule_drops: [DaemonHealth.RuleDrops]?
    public var state_file: DaemonHealth.StateFile?
    /// What makes the figures above untrustworthy, such as a queue no packet is sent to.
    public var warnings: [String]?
    /// The daemon's version (BuildVersion) and the commit it was built from; absent from
    /// figures that no daemon made (replay), and the commit from a build outside git.
    public var version: String?
    public var commit: String?
    /// Optional only so that the answer of an older daemon still decodes.
    public var pickup: Pickup?
    /// The address tables with their entry counts, in rule-file order.
    public var tables: [TableSummary]?
    /// The state sync with the peer (`seqwall sync status`), absent without one.
    public var sync: SyncStatus?
    public var overload: Overload?
    public var synproxy: SynProxy?

    /// Sums the per-queue figures.
    public init(queues inputs: [QueueMetrics]) {
        var total = TrackerCounters()
        for input in inputs { total.add(input.counters) }
        packets = Packets(seen: total.seen, accepted: total.accepted, dropped: total.dropped)
        var drops: [String: UInt64] = [:]
        for reason in DropReason.allCases { drops[reason.name] = total[reason] }
        self.drops = drops
        connections = Connections(current: inputs.reduce(0) { $0 + $1.connections },
                                  half_open: inputs.reduce(0) { $0 + $1.halfOpen },
                                  created: total.created, destroyed: total.destroyed,
                                  limit: inputs.reduce(0) { $0 + $1.connectionLimit },
                                  half_open_evictions: total.halfOpenEvictions, early_drops: total.earlyDrops,
                                  half_open_limit: inputs.contains { $0.halfOpenLimit != nil }
                                      ? inputs.reduce(0) { $0 + ($1.halfOpenLimit ?? 0) } : nil)
        let sourceTables = inputs.compactMap(\.sources)
        sources = sourceTables.isEmpty ? nil
            : Sources(active: sourceTables.reduce(0) { $0 + $1.active },
                      capacity: sourceTables.reduce(0) { $0 + $1.capacity },
                      evictions: sourceTables.reduce(0) { $0 + $1.evictions })
        pickup = Pickup(picked_up: total.pickedUp)
        if total.overloads > 0 || total.overloadsLost > 0 {
            var overload = Overload()
            overload.sources = total.overloads
            overload.lost = total.overloadsLost
            self.overload = overload
        }
        let sendFailures = inputs.reduce(0) { $0 + $1.synProxySendFailures }
        let unroutable = inputs.reduce(0) { $0 + $1.synProxyUnroutable }
        if total.synProxyCookiesSent + total.synProxyValidAcks + total.synProxyInvalidAcks + sendFailures
            + unroutable > 0 {
            var synproxy = SynProxy()
            synproxy.cookies_sent = total.synProxyCookiesSent
            synproxy.valid_acks = total.synProxyValidAcks
            synproxy.invalid_acks = total.synProxyInvalidAcks
            synproxy.connections = total.synProxyConnections
            synproxy.server_refused = total.synProxyRefused
            synproxy.segments_lost = total.synProxySegmentsLost
            synproxy.send_failures = sendFailures
            synproxy.unroutable = unroutable
            synproxy.closed_ports_passed = total.synProxyClosedPortsPassed
            self.synproxy = synproxy
        }
        queues = inputs.map {
            Queue(queue: $0.queue, seen: $0.counters.seen, accepted: $0.counters.accepted,
                  dropped: $0.counters.dropped, enobufs: $0.enobufs, malformed_messages: $0.malformedMessages,
                  send_errors: $0.sendErrors, reject_answers: $0.rejectAnswers,
                  reject_answers_limited: $0.rejectAnswersLimited, reject_answers_failed: $0.rejectAnswersFailed,
                  connections: $0.connections,
                  kernel: $0.kernel)
        }
    }
}
