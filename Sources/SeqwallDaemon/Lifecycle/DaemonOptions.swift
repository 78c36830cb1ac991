import SeqwallControl
import SeqwallTelemetry

public struct DaemonOptions: Sendable {
    public var rulesPath: String
    public var queues: [UInt16] = [0]
    public var controlPath: String = ControlLimits.defaultSocketPath
    public var settings = QueueSettings()
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
}
