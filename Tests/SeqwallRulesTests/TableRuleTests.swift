import Foundation
import SeqwallCore
import SeqwallTestSupport
import Testing

@testable import SeqwallRules

@Suite("Tables in rule files")
struct TableRuleTests {
    /// A drop file beside the rule file, named relative to it, read from a base directory.
    @Test("a table file blocks its prefixes but not its exceptions, for both families")
    func dropFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("seqwall-tables-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory + "/lists", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var lines = ["# generated"]
        for third in 0..<40 { lines.append("198.51.\(third).0/24") }
        lines += ["!198.51.7.7", "2001:db8:bad::/48", "!2001:db8:bad::1"]
        try (lines.joined(separator: "\n") + "\n").write(toFile: directory + "/lists/drop.txt", atomically: true, encoding: .utf8)
        try """
            table <drop> file "lists/drop.txt"
            table <admins> { 192.0.2.10 }
            block in tcp from <drop>
            pass in tcp from <admins>, !<drop> to port 22
            default in block
            """.write(toFile: directory + "/main.rules", atomically: true, encoding: .utf8)
        let policy = try RuleFile.load(path: "main.rules", relativeTo: directory)
        #expect(policy.tables.map(\.entries.count) == [43, 1])
        func decide(_ source: String, _ port: UInt16 = 22) -> (RuleAction, Int?) {
            let decision = policy.decide(direction: .inbound, source: ip(source), destination: ip("203.0.113.1"),
                                         destinationPort: port)
            return (decision.action, decision.ruleIndex)
        }
        #expect(decide("198.51.3.1") == (.block, 0))
        #expect(decide("198.51.7.7") == (.pass, 1))
        #expect(decide("198.51.40.1") == (.pass, 1))
        #expect(decide("198.51.40.1", 80) == (.block, nil))
        #expect(decide("2001:db8:bad::2") == (.block, 0))
        #expect(decide("2001:db8:bad::1") == (.pass, 1))
        #expect(decide("192.0.2.10", 22) == (.pass, 1))
    }

    @Test("a table file's bad lines are reported at that file's lines, after its good ones")
    func badLineLocations() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("seqwall-tables-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "198.51.100.0/24\n\n  198.51.100.1/24 # host bits\n".write(toFile: directory + "/t.txt", atomically: true, encoding: .utf8)
        do {
            _ = try RuleFile.parse(text: "table <t> file \"t.txt\"\n", file: "r.rules", relativeTo: directory)
            Issue.record("loaded")
        } catch {
            #expect(error.description == "t.txt:3:3: 198.51.100.1/24 has host bits set; did you mean 198.51.100.0/24?")
        }
    }
}

@Suite("Table line scanner")
struct TableLineScannerTests {
    /// What the lexer, parser and checker make of one table-file line: nil when they refuse it.
    private func slowPath(_ text: String) -> TableEntry?? {
        var lexer = Lexer(bytes: Array(text.utf8), file: "t.txt")
        guard let line = lexer.nextLine(), line.error == nil else { return .some(nil) }
        do throws(RuleError) {
            guard let literal = try Parser.tableFileEntry(line, file: "t.txt") else { return nil }
            var diagnostics = Diagnostics()
            let entry = Checker().tableEntry(literal, &diagnostics)
            return .some(diagnostics.isEmpty ? entry : nil)
        } catch {
            return .some(nil)
        }
    }

    @Test("every line the scanner reads, the parser and checker read as the same entry")
    func agreesWithParser() {
        var random = SplitMix64(seed: 77)
        let pieces = ["0", "1", "9", "25", "255", "256", "01", "00", "198", "51", "100", "7", ".", ".", ".", "/", "/24",
                      "/32", "/33", "/0", "/08", "!", " ", "\t", "#", "# note", ":", "::1", "a", "-", ",", "\r"]
        var scanned = 0
        for _ in 0..<20000 {
            var text = ""
            for _ in 0..<(1 + random.next() % 9) { text += pieces[Int(random.next() % UInt64(pieces.count))] }
            if random.next() % 3 == 0 { text = "198.51.100.\(random.next() % 300)" + text }
            switch TableLineScanner.scan(ArraySlice(Array(text.utf8))) {
            case .blank:
                #expect(slowPath(text) == .none, "\(text)")
            case .entry(let entry):
                scanned += 1
                #expect(slowPath(text) == .some(entry), "\(text)")
            case .other:
                break
            }
        }
        #expect(scanned > 100)
        for text in ["198.51.100.0/24", "!198.51.100.7", "  192.0.2.1   # x", "0.0.0.0/0", "255.255.255.255\r"] {
            guard case .entry(let entry) = TableLineScanner.scan(ArraySlice(Array(text.utf8))) else {
                Issue.record("\(text) not scanned")
                continue
            }
            #expect(slowPath(text) == .some(entry))
        }
    }
}
