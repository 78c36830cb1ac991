/// A change in the table, as `conntrack -E` reports it.
public enum ConnectionEventKind: UInt8, Sendable, CaseIterable {
    case new
    /// The state changed, or the connection was answered or became assured.
    case update
    case destroy

    public var name: String {
        switch self {
        case .new: "new"
        case .update: "update"
        case .destroy: "destroy"
        }
    }
}
