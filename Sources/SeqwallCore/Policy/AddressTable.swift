/// A named set of prefixes with exceptions (`table <name> ...`, seqwall.rules(5), Tables).
/// Immutable: a class so that every rule and worker shares one copy however large, and so that
/// a changed table is a new object put in place of the old one between packets.
public final class AddressTable: Sendable, Equatable, CustomStringConvertible {
    public let name: String
    /// `persist`: kept even when empty and, later, filled at run time.
    public let persist: Bool
    /// In canonical order (TableEntry's `<`), without repeats.
    public let entries: [TableEntry]
    /// Internal for the batch warm-up (BatchLookahead), which reads ahead what a lookup will.
    let matcher: PrefixMatcher
    /// Provides the matcher's arrays (LookupRegion); kept so that the tables live changes make
    /// from this one get their memory the same way.
    private let regionProvider: RegionProvider?

    /// `regionProvider`: the daemon's fresh mappings on huge pages, as for the connection table.
    public init(name: String, persist: Bool = false, entries: [TableEntry], regionProvider: RegionProvider? = nil) {
        self.name = name
        self.persist = persist
        var sorted = entries.sorted()
        var kept = 0
        for index in sorted.indices where kept == 0 || sorted[index] != sorted[kept - 1] {
            sorted[kept] = sorted[index]
            kept += 1
        }
        sorted.removeLast(sorted.count - kept)
        self.entries = sorted
        self.regionProvider = regionProvider
        matcher = PrefixMatcher(sorted, regionProvider: regionProvider)
    }

    /// Whether the most specific entry that contains `address` is not an exception.
    public func contains(_ address: IPAddress) -> Bool { matcher.contains(address) }

    /// Bytes of the lookup structures, for `stats` and measurements.
    public var lookupByteCount: Int { matcher.byteCount }

    public static func == (lhs: AddressTable, rhs: AddressTable) -> Bool {
        lhs === rhs || (lhs.name == rhs.name && lhs.persist == rhs.persist && lhs.entries == rhs.entries)
    }

    /// `<name>`, as rules write it.
    public var description: String { "<\(name)>" }
}

/// Live changes (`seqwall table NAME add|delete|replace`, docs/operations.md): each makes a new
/// table, built off the packet path, that the workers put in place of this one between packets.
extension AddressTable {
    /// This table with `added` in it too, and how many of them were not in it already (pfctl
    /// -T add's count).
    public func adding(_ added: [TableEntry]) -> (table: AddressTable, changed: Int) {
        var kept = Set(entries)
        let changed = added.reduce(0) { $0 + (kept.insert($1).inserted ? 1 : 0) }
        return (changed == 0 ? self : withEntries(Array(kept)), changed)
    }

    /// This table without `removed`, and how many of them it held (pfctl -T delete's count).
    /// An entry goes only when written the same way: `198.51.100.7` does not take away
    /// `198.51.100.0/24`, as in pf.
    public func removing(_ removed: [TableEntry]) -> (table: AddressTable, changed: Int) {
        var kept = Set(entries)
        let changed = removed.reduce(0) { $0 + (kept.remove($1) != nil ? 1 : 0) }
        return (changed == 0 ? self : withEntries(Array(kept)), changed)
    }

    /// The same table (name, `persist`) holding exactly `entries`.
    public func withEntries(_ entries: [TableEntry]) -> AddressTable {
        AddressTable(name: name, persist: persist, entries: entries, regionProvider: regionProvider)
    }
}
