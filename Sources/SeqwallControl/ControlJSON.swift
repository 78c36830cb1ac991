import Foundation
import SeqwallCore

/// The protocol's JSON: one compact object a line, keys sorted, so daemon, client and CLI
/// print the same bytes for the same value.
public enum ControlJSON {
    public static func line<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
