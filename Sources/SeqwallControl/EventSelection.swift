import SeqwallCore

/// Which table changes a watcher wants (`conntrack watch -e NEW,DESTROY`), with conntrack -E's
/// names: NEW, UPDATE (or UPDATES) and DESTROY, in any case, or ALL.
public struct EventSelection: Sendable, Equatable {
    public private(set) var kinds: Set<ConnectionEventKind>

    public static let all = EventSelection(kinds: Set(ConnectionEventKind.allCases))

    public init(kinds: Set<ConnectionEventKind>) { self.kinds = kinds }

    /// Parses names as a request carries them; errors name the one that is wrong.
    public init(names: [String]) throws(FilterError) {
        var kinds: Set<ConnectionEventKind> = []
        for name in names {
            switch name.lowercased() {
            case "new": kinds.insert(.new)
            case "update", "updates": kinds.insert(.update)
            case "destroy": kinds.insert(.destroy)
            case "all": kinds.formUnion(ConnectionEventKind.allCases)
            default: throw FilterError("unknown event '\(name)': use NEW, UPDATE, DESTROY or ALL")
            }
        }
        guard !kinds.isEmpty else { throw FilterError("no event named: use NEW, UPDATE, DESTROY or ALL") }
        self.kinds = kinds
    }

    /// `-e NEW,DESTROY` as typed: comma-separated names.
    public init(list: String) throws(FilterError) {
        try self.init(names: list.split(separator: ",", omittingEmptySubsequences: false).map(String.init))
    }

    /// The names in a fixed order, for a request.
    public var names: [String] { ConnectionEventKind.allCases.filter(kinds.contains).map(\.name) }

    public func contains(_ name: String) -> Bool { kinds.contains { $0.name == name } }
}
