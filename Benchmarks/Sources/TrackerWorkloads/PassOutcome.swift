/// What one pass of a workload did, checked after the measured region.
public struct PassOutcome {
    public var packets: Int
    public var accepted: Int
    /// How many the workload's policy lets through: all but for the SYN decisions, whose
    /// scenarios block some on purpose.
    public var expected: Int

    public init(packets: Int, accepted: Int, expected: Int? = nil) {
        self.packets = packets
        self.accepted = accepted
        self.expected = expected ?? packets
    }
}
