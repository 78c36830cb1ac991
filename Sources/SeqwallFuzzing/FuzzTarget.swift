/// The fuzz targets by the name of their corpus directory (FuzzTargets/Corpus/NAME) and of their
/// libFuzzer executable in FuzzTargets/Package.swift.
public enum FuzzTarget: String, CaseIterable, Sendable {
    case packetTracking = "packet-tracking"
    case ruleFile = "rule-file"
    case controlRequest = "control-request"
    case syncMessage = "sync-message"

    /// Runs one input through the target.
    public func run(_ data: UnsafeRawBufferPointer) throws(FuzzFailure) {
        switch self {
        case .packetTracking: try PacketTrackingFuzz.run(data)
        case .ruleFile: try RuleFileFuzz.run(data)
        case .controlRequest: try ControlRequestFuzz.run(data)
        case .syncMessage: try SyncMessageFuzz.run(data)
        }
    }

    /// The libFuzzer entry (LLVMFuzzerTestOneInput) of each executable: a broken invariant
    /// traps, so that libFuzzer reports it as a crash and saves the input.
    public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
        let bytes = UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size)
        do throws(FuzzFailure) {
            try run(bytes)
        } catch {
            fatalError("fuzz target \(rawValue): \(error.description)")
        }
        return 0
    }
}
