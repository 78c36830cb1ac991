import SeqwallCore

/// The rule language's front door: files in, `Policy` or every error out, and the canonical text
/// back. See docs/seqwall.rules.5 and the grammar on `Parser`.
public enum RuleFile {
    /// Reads `path` and its includes from disk and builds the policy. Throws every problem found
    /// (up to a limit), each as `file:line:column: message`; a file that cannot be read at all is
    /// `path:1:1: cannot read file: <reason>`.
    public static func load(path: String) throws(RuleErrors) -> Policy {
        try load(path: path, relativeTo: nil)
    }

    /// As `load(path:)`, but a relative `path` (and the includes under it) is opened relative to
    /// `base` instead of the working directory, while messages show paths as written. Lets a
    /// caller choose how file names read without changing the process's working directory.
    public static func load(path: String, relativeTo base: String?) throws(RuleErrors) -> Policy {
        try loadWithWarnings(path: path, relativeTo: base).policy
    }

    /// As `load(path:relativeTo:)`, with the warnings of the files (RuleWarning), which do not
    /// stop them from loading. `tableRegionProvider` provides the tables' lookup arrays
    /// (AddressTable), as the daemon's does.
    public static func loadWithWarnings(path: String, relativeTo base: String? = nil,
                                        tableRegionProvider: RegionProvider? = nil)
        throws(RuleErrors) -> (policy: Policy, warnings: [RuleWarning]) {
        var loader = SourceLoader(baseDirectory: base, tableRegionProvider: tableRegionProvider)
        loader.load(path: path)
        let policy = try loader.policy()
        return (policy, loader.warnings)
    }

    /// Same over text in memory, named `file` in messages; includes are read from disk relative
    /// to the directory of `file`.
    public static func parse(text: String, file: String) throws(RuleErrors) -> Policy {
        try parse(text: text, file: file, relativeTo: nil)
    }

    /// As `parse(text:file:)`, with `file` (and so the includes) relative to `base`.
    public static func parse(text: String, file: String, relativeTo base: String?) throws(RuleErrors) -> Policy {
        try parse(bytes: Array(text.utf8), file: file, relativeTo: base)
    }

    /// Raw bytes, which need not be UTF-8 (tests feed it arbitrary input).
    static func parse(bytes: [UInt8], file: String, relativeTo base: String? = nil) throws(RuleErrors) -> Policy {
        var loader = SourceLoader(baseDirectory: base)
        loader.load(bytes: bytes, displayPath: file)
        return try loader.policy()
    }

    /// The entries of a table file (`seqwall table NAME replace FILE`), read and checked as a
    /// `table <name> file "FILE"` line reads it; every bad line at its file:line:column.
    public static func tableEntries(path: String) throws(RuleErrors) -> [TableEntry] {
        var loader = SourceLoader(baseDirectory: nil)
        let entries = loader.loadTable(path: path)
        guard loader.diagnostics.isEmpty else { throw RuleErrors(errors: loader.diagnostics.errors) }
        return entries
    }

    /// Addresses given one by one (`seqwall table NAME add ADDR...`), each as a table line;
    /// a bad one is reported as `address N:1:column: message`, N counting from 1.
    public static func tableEntries(addresses: [String]) throws(RuleErrors) -> [TableEntry] {
        var loader = SourceLoader(baseDirectory: nil)
        var entries: [TableEntry] = []
        for (index, address) in addresses.enumerated() {
            // One line each: a newline inside an argument must not make a second entry.
            guard !address.contains(where: \.isNewline) else {
                throw RuleErrors(errors: [RuleError(location: SourceLocation(file: "address \(index + 1)", line: 1, column: 1),
                                                    message: "expected one address or network, found a line break")])
            }
            let before = entries.count
            loader.scanTable(Array(address.utf8), displayPath: "address \(index + 1)", firstLineDecides: false,
                             into: &entries)
            if entries.count == before && loader.diagnostics.isEmpty {
                throw RuleErrors(errors: [RuleError(location: SourceLocation(file: "address \(index + 1)", line: 1, column: 1),
                                                    message: "expected an address or network")])
            }
        }
        guard loader.diagnostics.isEmpty else { throw RuleErrors(errors: loader.diagnostics.errors) }
        return entries
    }

    /// The canonical text of a whole policy (`rules check --print`), ending in a newline.
    public static func canonicalText(of policy: Policy) -> String {
        RulePrinter.text(of: policy)
    }

    /// One rule as a rule-file line, without a newline: for logs and for naming the rule that
    /// decided a connection.
    public static func canonicalText(of rule: Rule) -> String {
        RulePrinter.text(of: rule)
    }

    /// Every timeout in force, set or not, in the order `rules check --print` writes them: what
    /// follows `timeout` (`tcp syn-sent`), the seconds, the whole statement, and whether it is
    /// the kernel's default (for `seqwall rules show`).
    public static func timeouts(of policy: Policy)
        -> [(name: String, seconds: UInt32, statement: String, isDefault: Bool)] {
        let defaults = Policy()
        return TimeoutName.allCases.map { name in
            let seconds = policy[keyPath: name.keyPath]
            return (name.statementText, seconds, "timeout \(name.statementText) \(RulePrinter.duration(seconds))",
                    seconds == defaults[keyPath: name.keyPath])
        }
    }
}
