import Foundation
import SeqwallFuzzing
import Testing

/// The fuzz corpus as a regression suite: every seed and every crash reproducer under
/// FuzzTargets/Corpus/TARGET goes through the same entry point the libFuzzer executable calls, without
/// the fuzzer's instrumentation. A reproducer that crashes again crashes this test.
@Suite struct CorpusReplayTests {
    static let corpusRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FuzzTargets/Corpus")

    static func inputs(of target: FuzzTarget) throws -> [URL] {
        let directory = corpusRoot.appendingPathComponent(target.rawValue)
        return try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { !$0.lastPathComponent.hasPrefix(".") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    @Test(arguments: FuzzTarget.allCases)
    func replay(_ target: FuzzTarget) throws {
        let inputs = try Self.inputs(of: target)
        // A corpus that went missing would make this test pass on nothing.
        #expect(inputs.count >= 5, "FuzzTargets/Corpus/\(target.rawValue) holds \(inputs.count) inputs")
        for input in inputs {
            let data = try Data(contentsOf: input)
            let failure = data.withUnsafeBytes { bytes -> FuzzFailure? in
                do throws(FuzzFailure) {
                    try target.run(bytes)
                    return nil
                } catch {
                    return error
                }
            }
            if let failure { Issue.record("\(target.rawValue)/\(input.lastPathComponent): \(failure.description)") }
        }
    }
}
