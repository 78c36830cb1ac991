import ArgumentParser
import Foundation

/// How stats, `rules show` and replay print their report.
enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json

    /// `-o json` of a whole answer: indented, keys sorted.
    static func prettyJSON<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
