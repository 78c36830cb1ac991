import SeqwallCore

/// How a workload hands its packets to the tracker.
public enum Feeding: String, CaseIterable, Sendable {
    /// `process(batch:verdicts:now:)`, `ConnectionTracker.batchCapacity` packets a call, as
    /// the daemon does.
    case batches
    /// `process(_:wireLength:hook:now:)`, one packet a call.
    case oneByOne = "one-by-one"
}
