/// What a rule or a default does with the first packet of a new connection.
public enum RuleAction: UInt8, Sendable, CustomStringConvertible {
    case pass
    case block
    /// Refuse at once: the client gets a TCP RST (see the daemon for how the RST is made).
    case reject

    public var description: String {
        switch self {
        case .pass: "pass"
        case .block: "block"
        case .reject: "reject"
        }
    }
}
