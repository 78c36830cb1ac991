/// How many dropped packets get a log line (`set drop-log`). The daemon writes the lines; the
/// tracker only carries the setting, so a reload changes it like any other part of the policy.
public enum DropLogMode: String, Sendable, CaseIterable {
    /// No line per dropped packet (the counters still count every drop).
    case off
    /// Lines at a bounded rate; what the rate leaves out is counted and summarised.
    case sampled
    /// A line for every dropped packet.
    case full
}
