import Foundation
import SeqwallCore
import SeqwallTestSupport
import Testing

@testable import SeqwallRules

/// pfctl-regress style cases under Golden/: `good/NAME.rules` must load without warnings and print
/// exactly `good/NAME.expected`; `bad/NAME.rules` must fail with exactly the lines of
/// `bad/NAME.expected`; `warn/NAME.rules` must load with exactly the warnings of `warn/NAME.expected`.
/// Files in subfolders are only there to be included. Paths in messages are relative to Golden/.
///
/// `UPDATE_GOLDEN=1 swift test --filter GoldenTests` rewrites the .expected files in the source
/// tree from what the code produces; read the diff before keeping it.
enum Golden {
    /// The copy of Golden/ in the test bundle.
    static let directory: String = {
        guard let url = Bundle.module.url(forResource: "Golden", withExtension: nil) else {
            fatalError("Golden/ is missing from the test bundle; check resources in Package.swift")
        }
        return url.path
    }()

    /// Golden/ in the source tree, where UPDATE_GOLDEN writes.
    static let sourceDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Golden").path

    static var updating: Bool { ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" }

    /// The case names (file names without `.rules`) directly in `kind`, sorted.
    static func cases(_ kind: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory + "/" + kind)) ?? []
        return names.filter { $0.hasSuffix(".rules") }.map { String($0.dropLast(".rules".count)) }.sorted()
    }

    static func expected(_ relativePath: String) throws -> String {
        try String(contentsOfFile: directory + "/" + relativePath, encoding: .utf8)
    }

    /// Compares with the expected file, or in update mode rewrites it in the source tree.
    static func check(_ actual: String, against relativePath: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
        if updating {
            try actual.write(toFile: sourceDirectory + "/" + relativePath, atomically: true, encoding: .utf8)
            return
        }
        let expected = try expected(relativePath)
        #expect(actual == expected, "\(relativePath)", sourceLocation: sourceLocation)
    }
}

/// Rule locations differ between a file and its canonical print; everything else must not.
func withoutLocations(_ policy: Policy) -> Policy {
    var policy = policy
    for index in policy.rules.indices {
        policy.rules[index].location = SeqwallCore.SourceLocation(file: "", line: 0, column: 0)
    }
    return policy
}

@Suite("Golden files")
struct GoldenTests {
    @Test("good file prints its expected canonical form", arguments: Golden.cases("good"))
    func good(name: String) throws {
        let policy = try RuleFile.load(path: "good/\(name).rules", relativeTo: Golden.directory)
        try Golden.check(RuleFile.canonicalText(of: policy), against: "good/\(name).expected")
    }

    @Test("good file loads without warnings", arguments: Golden.cases("good"))
    func goodHasNoWarnings(name: String) throws {
        let (_, warnings) = try RuleFile.loadWithWarnings(path: "good/\(name).rules", relativeTo: Golden.directory)
        #expect(warnings.isEmpty, "\(warnings)")
    }

    @Test("warn file loads with exactly its expected warnings", arguments: Golden.cases("warn"))
    func warn(name: String) throws {
        let (_, warnings) = try RuleFile.loadWithWarnings(path: "warn/\(name).rules", relativeTo: Golden.directory)
        try Golden.check(warnings.map { $0.description + "\n" }.joined(), against: "warn/\(name).expected")
    }

    @Test("canonical form parses back to an equal policy", arguments: Golden.cases("good"))
    func roundTrip(name: String) throws {
        let policy = try RuleFile.load(path: "good/\(name).rules", relativeTo: Golden.directory)
        let text = RuleFile.canonicalText(of: policy)
        let reparsed = try RuleFile.parse(text: text, file: "canonical.rules")
        #expect(withoutLocations(reparsed) == withoutLocations(policy))
        #expect(RuleFile.canonicalText(of: reparsed) == text)
    }

    @Test("bad file fails with exactly its expected errors", arguments: Golden.cases("bad"))
    func bad(name: String) throws {
        do {
            let policy = try RuleFile.load(path: "bad/\(name).rules", relativeTo: Golden.directory)
            Issue.record("bad/\(name).rules loaded without errors:\n\(RuleFile.canonicalText(of: policy))")
        } catch {
            try Golden.check(error.description + "\n", against: "bad/\(name).expected")
        }
    }

    @Test("every case has its expected file and every expected file its case")
    func casesArePaired() throws {
        for kind in ["good", "bad", "warn"] {
            let names = try FileManager.default.contentsOfDirectory(atPath: Golden.directory + "/" + kind)
            let rules = Set(names.filter { $0.hasSuffix(".rules") }.map { $0.dropLast(".rules".count) })
            let expected = Set(names.filter { $0.hasSuffix(".expected") }.map { $0.dropLast(".expected".count) })
            #expect(rules == expected, "\(kind): unpaired \(rules.symmetricDifference(expected).sorted())")
            #expect(rules.count >= (kind == "warn" ? 1 : 10), "\(kind): too few cases found in \(Golden.directory)")
        }
    }
}
