import SeqwallControl
import SeqwallTelemetry

public struct DaemonOptions: Sendable {
    public var rulesPath: String
    public var queues: [UInt16] = [0]
    public var controlPath: String = ControlLimits.defaultSocketPath
    public var settings = QueueSettings()
    /// The queues (among `queues`) the diversion sends the `synproxy` rules' ports to
    /// (`--synproxy-queue`): only they copy whole packets. Empty: every queue does when the
    /// policy has a `synproxy` rule (Daemon+SynProxy.swift).
    public var synProxyQueues: [UInt16] = []
    /// Where the connection table is kept across restarts (nil: it is not).
    public var stateFile: String?
    /// Seconds between snapshots of the table to `stateFile` while running; 0: only at exit.
    public var stateInterval: UInt32 = 10
    /// Where to serve Prometheus metrics (nil: nowhere).
    public var metricsAddress: MetricsAddress?
    /// Seconds a queue may go without a packet before the rulesets are read again for a rule
    /// that sends to it (DiversionWatch); 0: never look.
    public var idleWarningSeconds: UInt32 = 60
    /// The state sync with a peer (docs/ha.md); nil: none.
    public var sync: SyncOptions?

    public init(rulesPath: String) {
        self.rulesPath = rulesPath
    }

    /// `seqwall run`'s `--queue`s and `--synproxy-queue`s: every one is bound, the `--queue`s
    /// first (0 when none is given), then each `--synproxy-queue` not among them.
    public mutating func bindQueues(_ given: [UInt16], synProxyQueues: [UInt16]) {
        let general = given.isEmpty ? [0] : given
        queues = general + synProxyQueues.filter { !general.contains($0) }
        self.synProxyQueues = synProxyQueues
    }
}
