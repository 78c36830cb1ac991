/// The tracker's fields that change packet by packet (ConnectionTracker.hot).
struct TrackerHotState {
    var counters = TrackerCounters()
    var halfOpenCount = 0
    var recordsEvents = false
    /// The timeouts in force (ConnectionTracker.currentTimeouts), and the (half-open count,
    /// table count) they were worked out for; nil until they are.
    var timeouts: TCPTimeouts
    var timeoutsPressure: (halfOpen: Int, tableCount: Int)?
    /// What each rule decided (RuleCounterTable); replaced, never resized, by a reload.
    var rules: RuleCounterTable
    /// Until when (tracker clock, nanoseconds) connections first seen mid-stream are picked up
    /// with pickup off (ConnectionTracker+Pickup.swift); 0 when no grace period was started.
    var pickupGraceEnds: UInt64 = 0
    /// Whether the policy has a `synproxy` rule: only then does a SYN or an ACK for no
    /// connection look for one (ConnectionTracker+SynProxy.swift).
    var synProxyRules = false
    /// Whether this queue is not the one that proxies: `seqwall run --synproxy-queue` named
    /// other queues for the `synproxy` rules' ports, and this one copies headers only, so a
    /// connection proxied here could not be sent back (ConnectionTracker+SynProxy.swift).
    var synProxyElsewhere = false
    /// The table answers the batch warm-up found for the packet being decided (TableAnswers),
    /// set by `process(batch:verdicts:now:)` for that packet only; nil one by one.
    var tableAnswers: UnsafePointer<TableAnswers>?
}
