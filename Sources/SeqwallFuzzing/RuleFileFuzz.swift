import SeqwallCore
import SeqwallRules

/// Fuzz target (b): the rule-file parser and the canonical printer.
///
/// Any bytes must either parse or fail with messages (never crash), and what parses must print
/// as canonical text that parses again to the very same text: `rules check --print` output is
/// a rule file an operator can load (the printer and the parser agree).
public enum RuleFileFuzz {
    /// Where the text claims to come from. Includes resolve against its directory, which does
    /// not exist, so a relative include fails as "No such file or directory" instead of reading
    /// whatever lies around the fuzzer (absolute paths still read real files: bounded in size
    /// by the loader, and the targets run with stdin from /dev/null).
    static let file = "/nonexistent-seqwall-fuzz/fuzz.rules"

    public static func run(_ data: UnsafeRawBufferPointer) throws(FuzzFailure) {
        let text = String(decoding: data, as: UTF8.self)
        let policy: Policy
        do {
            policy = try RuleFile.parse(text: text, file: file)
        } catch {
            guard !error.description.isEmpty else { throw FuzzFailure("a refused rule file with no message") }
            return
        }
        let canonical = RuleFile.canonicalText(of: policy)
        let reparsed: Policy
        do {
            reparsed = try RuleFile.parse(text: canonical, file: file)
        } catch {
            throw FuzzFailure("canonical text does not parse again:\n\(canonical)\nerrors:\n\(error.description)")
        }
        let again = RuleFile.canonicalText(of: reparsed)
        guard again == canonical else {
            throw FuzzFailure("canonical text changes when parsed and printed again:\n\(canonical)\nbecame:\n\(again)")
        }
    }
}
