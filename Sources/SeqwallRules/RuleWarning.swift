import SeqwallCore

/// Something in a rule file that is allowed but looks like a mistake, at the place an operator
/// has to look. Unlike a RuleError it does not stop the file from loading.
public struct RuleWarning: Sendable, Equatable, CustomStringConvertible {
    public let location: SourceLocation
    public let message: String

    public init(location: SourceLocation, message: String) {
        self.location = location
        self.message = message
    }

    /// `file:line:column: warning: message`, the form compilers use, so editors can jump to it.
    public var description: String { "\(location): warning: \(message)" }
}
