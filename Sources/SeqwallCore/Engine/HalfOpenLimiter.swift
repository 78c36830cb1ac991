/// The limits on new connections (seqwall.rules(5), Limits: `limit half-open`, `limit syn-rate`,
/// per-rule `limit half-open N per-source`, `limit states`, and `limit conn`/`conn-rate`, global
/// and per rule) in the form the tracker checks them on each new SYN or completed handshake,
/// and the fixed-size structures behind them. The checks themselves are in
/// ConnectionTracker+Limits.swift and ConnectionTracker+Overload.swift, since they need the
/// connection table.

/// The limits as one tracker enforces them: the policy's values, its worker's share of the
/// global ones, precomputed rates, stable ids for per-rule limits, and the structures.
final class HalfOpenLimiter {
    /// The global half-open limit for this tracker (its share of `limit half-open`).
    private(set) var halfOpenLimit: Int?
    private(set) var halfOpenPerSource: Int?
    /// GCRA parameters of `limit syn-rate R/s burst B per-source`, in nanoseconds: the time a
    /// token takes to come back, and how far ahead the bucket may be drawn ((B - 1) tokens).
    /// Zero interval: no SYN-rate limit.
    private(set) var synInterval: UInt64 = 0
    private(set) var synTolerance: UInt64 = 0
    /// Per rule of the current policy: its stable id if it has a per-source limit, else 0.
    /// Ids follow from the sequence of policies alone, which every worker's tracker is given
    /// alike, so an id names the same rule in every worker (`removeConnections(overloadedBy:)`).
    private(set) var ruleIDs: [UInt32] = []
    /// The global `limit conn` and `limit conn-rate`.
    private(set) var globalConnection = ConnectionLimits()
    /// The per-rule ones, by rule id: a connection names its rule by id (`chargedRule`) when
    /// its handshake completes, and by then a reload may have moved the rule.
    private(set) var ruleConnection: [UInt32: ConnectionLimits] = [:]
    /// Whether any connection limit is set: a SYN looks no further when none is.
    private(set) var limitsConnections = false
    /// Rules keep their id across reloads as long as what they match stays the same (see
    /// `RuleIdentity`), so a reload that only moves or adds rules keeps their counts.
    private var idsByRule: [RuleIdentity: UInt32] = [:]
    private var nextRuleID: UInt32 = 1

    private(set) var sources: SourceLimiter?
    /// Established counts and connection-rate buckets (`limit conn`, `limit conn-rate`), kept
    /// apart from `sources` so that neither kind of entry can crowd out the other's sets.
    private(set) var established: SourceLimiter?
    private(set) var unreplied: UnrepliedQueue?
    /// Queues (workers) sharing the global limits.
    let shares: Int
    let seeds: (UInt64, UInt64, UInt64)

    /// How long an unreplied inbound half-open connection is safe from eviction. Inbound SYNs
    /// are answered by a protected server behind this firewall (in host mode by this host),
    /// so the reply takes a LAN round trip plus our own queueing: 100 ms is generous. It lets
    /// a flood of up to (half-open limit / 0.1 s) SYNs a second rotate through the limit while
    /// every legitimate SYN still gets in and keeps its entry long enough for the SYN-ACK;
    /// past that rate a legitimate SYN gets in with odds of about that rate over the flood's,
    /// and again on each retransmission. Only inbound connections are evicted this way:
    /// spoofed floods come from outside, while outbound SYNs come from the protected side and
    /// wait for far-away servers, whose replies may take longer than any such age.
    var minimumEvictionAge: UInt64 = 100_000_000
    /// The clock as of the last new connection (for reloads, which have none of their own).
    var now: UInt64 = 0

    /// pf's adaptive timeouts (pf.conf(5) `adaptive.start`, `adaptive.end`), with pf's default
    /// fractions of the limit: from 60% full, half-open timeouts shrink linearly, reaching
    /// zero at 120%. Counts never pass 100%, so at the limit they are a third of their setting.
    static let adaptiveStart = (numerator: 3, denominator: 5)
    static let adaptiveEnd = (numerator: 6, denominator: 5)

    init(policy: Policy, tableLimit: Int, shares: Int, seeds: (UInt64, UInt64, UInt64)) {
        self.shares = max(1, shares)
        self.seeds = seeds
        configure(policy, tableLimit: tableLimit, now: 0)
    }

    /// Takes a new policy's limits. Structures are made when a limit first needs them and
    /// replaced by larger ones when a new limit needs more; they never shrink, so connections
    /// charged under the old policy still find their counts.
    func configure(_ policy: Policy, tableLimit: Int, now: UInt64) {
        halfOpenLimit = policy.limits.halfOpen.map { max(1, ($0 + shares - 1) / shares) }
        halfOpenPerSource = policy.limits.halfOpenPerSource
        if let synRate = policy.limits.synRatePerSource {
            synInterval = max(1, 1_000_000_000 / UInt64(synRate.rate))
            synTolerance = synInterval * UInt64(synRate.burst - 1)
        } else {
            (synInterval, synTolerance) = (0, 0)
        }

        var ids: [RuleIdentity: UInt32] = [:]
        ruleIDs = policy.rules.map { rule in
            guard rule.countsPerSource else { return 0 }
            let identity = RuleIdentity(rule)
            if let id = ids[identity] ?? idsByRule[identity] {
                ids[identity] = id
                return id
            }
            let id = nextRuleID
            nextRuleID &+= 1
            ids[identity] = id
            return id
        }
        idsByRule = ids
        globalConnection = ConnectionLimits(count: policy.limits.connPerSource, rate: policy.limits.connRatePerSource)
        ruleConnection = [:]
        for (index, rule) in policy.rules.enumerated() where rule.connPerSource != nil || rule.connRatePerSource != nil {
            ruleConnection[ruleIDs[index]] = ConnectionLimits(count: rule.connPerSource, rate: rule.connRatePerSource)
        }
        limitsConnections = !globalConnection.isEmpty || !ruleConnection.isEmpty

        // Half-open connections never outnumber the half-open limit or the table, and each is
        // charged to at most two source entries; a table four times that size keeps sets
        // from filling with entries that must not be taken. At least 4096 entries (128 KiB)
        // for the SYN-rate buckets alone; at most 2^21 (64 MiB).
        let needsSources = policy.limits.halfOpenPerSource != nil || policy.limits.synRatePerSource != nil
            || policy.rules.contains { $0.halfOpenPerSource != nil }
        if needsSources {
            let bound = min(halfOpenLimit ?? tableLimit, tableLimit)
            let perConnection = policy.rules.contains { $0.halfOpenPerSource != nil } ? 2 : 1
            let wanted = min(max(4096, 4 * bound * perConnection), 1 << 21)
            if (sources?.capacity ?? 0) < wanted {
                let larger = SourceLimiter(entries: wanted, hasher: seeds)
                _ = sources?.move(into: larger, now: now)
                sources = larger
            }
        }
        // Established connections never outnumber the table, and each holds at most two
        // entries; four entries per possible count keep sets from filling with entries that
        // must stay (the bounds of `sources`).
        if limitsConnections {
            let perConnection = !globalConnection.isEmpty && !ruleConnection.isEmpty ? 2 : 1
            let wanted = min(max(4096, 4 * tableLimit * perConnection), 1 << 21)
            if (established?.capacity ?? 0) < wanted {
                let larger = SourceLimiter(entries: wanted, hasher: (seeds.2, seeds.0, seeds.1))
                _ = established?.move(into: larger, now: now)
                established = larger
            }
        }
        // Every unreplied inbound half-open connection has at most one live item; twice the
        // limit leaves room for stale ones waiting to reach the front.
        if let halfOpenLimit, (unreplied?.capacity ?? 0) < 2 * halfOpenLimit {
            let larger = UnrepliedQueue(capacity: 2 * halfOpenLimit)
            unreplied?.move(into: larger)
            unreplied = larger
        }
    }

    var limitsSynRate: Bool { synInterval != 0 }

    /// How much half-open timeouts shrink at this much pressure, as a fraction
    /// (numerator, denominator); nil when they keep their setting. Pressure is the fuller of
    /// the half-open count against its limit and the table against its limit.
    func adaptiveScale(halfOpen: Int, tableCount: Int, tableLimit: Int) -> (Int, Int)? {
        let byHalfOpen = HalfOpenLimiter.scale(count: halfOpen, limit: halfOpenLimit ?? 0)
        let byTable = HalfOpenLimiter.scale(count: tableCount, limit: tableLimit)
        guard let byHalfOpen else { return byTable }
        guard let byTable else { return byHalfOpen }
        return byTable.0 * byHalfOpen.1 < byHalfOpen.0 * byTable.1 ? byTable : byHalfOpen
    }

    /// (end - count) / (end - start) once `count` is past `start`, else nil.
    static func scale(count: Int, limit: Int) -> (Int, Int)? {
        let start = limit * adaptiveStart.numerator / adaptiveStart.denominator
        let end = limit * adaptiveEnd.numerator / adaptiveEnd.denominator
        guard limit > 0, count > start, end > start else { return nil }
        return (end - min(count, limit), end - start)
    }

    /// `timeouts` with the half-open ones scaled, never below one second.
    static func scaled(_ timeouts: TCPTimeouts, by scale: (Int, Int)) -> TCPTimeouts {
        var result = timeouts
        func shrink(_ seconds: UInt32) -> UInt32 {
            UInt32(max(1, UInt64(seconds) * UInt64(scale.0) / UInt64(scale.1)))
        }
        result.synSent = shrink(timeouts.synSent)
        result.synSent2 = shrink(timeouts.synSent2)
        result.synRecv = shrink(timeouts.synRecv)
        return result
    }
}
