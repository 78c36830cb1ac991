import Foundation

/// A temporary directory removed when the value goes away.
public final class TemporaryDirectory {
    public let path: String

    /// `prefix` names the directory after the tests that made it, for whoever finds one left
    /// behind by a killed run.
    public init(prefix: String = "seqwall-test") throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Writes `bytes` to `name` in the directory; returns its path.
    public func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let file = path + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return file
    }
}
