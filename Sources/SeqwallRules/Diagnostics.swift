import SeqwallCore

/// One problem in a rule file, at the place an operator has to look.
public struct RuleError: Error, Sendable, Equatable, CustomStringConvertible {
    public let location: SourceLocation
    public let message: String

    public init(location: SourceLocation, message: String) {
        self.location = location
        self.message = message
    }

    /// `file:line:column: message`, the form compilers use, so editors can jump to it.
    public var description: String { "\(location): \(message)" }
}

/// Every problem found in one load, in the order they were met (includes in place).
public struct RuleErrors: Error, Sendable, Equatable, CustomStringConvertible {
    public let errors: [RuleError]

    public init(errors: [RuleError]) {
        self.errors = errors
    }

    /// One `file:line:column: message` line per error, joined by newlines (no trailing newline).
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// Collects errors while a load keeps going, so one check shows all of them; stops collecting
/// after `limit` so that a file of garbage gives a screenful rather than millions of lines.
struct Diagnostics {
    static let limit = 50

    private(set) var errors: [RuleError] = []
    /// Set once the limit is reached; the loader stops reading when it sees this.
    private(set) var isFull = false

    var isEmpty: Bool { errors.isEmpty }

    mutating func report(_ error: RuleError) {
        guard !isFull else { return }
        if errors.count == Diagnostics.limit {
            errors.append(RuleError(location: error.location,
                                    message: "too many errors (more than \(Diagnostics.limit)); stopping here"))
            isFull = true
            return
        }
        errors.append(error)
    }

    mutating func report(at location: SourceLocation, _ message: String) {
        report(RuleError(location: location, message: message))
    }
}
