/// What `seqwall table` changed in a `persist` table relative to the rule files' definition of
/// it: kept across reloads and, in the state file, across restarts (docs/operations.md, Live
/// table changes). A reload applies it to the table as the files now define it, so an edit of
/// the file and a run-time add both hold, as pf keeps a persist table's contents.
public struct TableChanges: Sendable, Equatable {
    /// Entries in the live table that the definition lacks, in canonical order.
    public private(set) var added: [TableEntry]
    /// Entries of the definition that the live table lacks, in canonical order.
    public private(set) var deleted: [TableEntry]

    public init(added: [TableEntry], deleted: [TableEntry]) {
        self.added = Array(Set(added)).sorted()
        self.deleted = Array(Set(deleted)).sorted()
    }

    /// The difference between a live table and its definition.
    public init(from definition: AddressTable, to live: AddressTable) {
        let defined = Set(definition.entries), current = Set(live.entries)
        self.init(added: Array(current.subtracting(defined)), deleted: Array(defined.subtracting(current)))
    }

    public var isEmpty: Bool { added.isEmpty && deleted.isEmpty }

    /// `definition` with these changes made: its entries, less the deleted, plus the added.
    public func applied(to definition: AddressTable) -> AddressTable {
        guard !isEmpty else { return definition }
        var entries = Set(definition.entries)
        entries.subtract(deleted)
        entries.formUnion(added)
        return definition.withEntries(Array(entries))
    }
}
