import SeqwallCore

/// One address table in `stats`, `rules show` and the metrics: its name and how many entries
/// it holds now, run-time changes (`seqwall table`) included.
public struct TableSummary: Codable, Sendable, Equatable {
    public var name: String
    public var persist: Bool
    public var entries: Int

    public init(name: String, persist: Bool, entries: Int) {
        self.name = name
        self.persist = persist
        self.entries = entries
    }

    public init(_ table: AddressTable) {
        self.init(name: table.name, persist: table.persist, entries: table.entries.count)
    }
}
