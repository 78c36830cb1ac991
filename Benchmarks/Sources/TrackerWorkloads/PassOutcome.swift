/// What one pass of a workload did, checked after the measured region.
public struct PassOutcome {
    public var packets: Int
    public var accepted: Int
}
