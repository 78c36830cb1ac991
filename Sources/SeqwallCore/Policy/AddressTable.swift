/// A named set of prefixes with exceptions (`table <name> ...`, seqwall.rules(5), Tables).
/// Immutable: a class so that every rule and worker shares one copy however large, and so that
/// a changed table is a new object put in place of the old one between packets.
public final class AddressTable: Sendable, Equatable, CustomStringConvertible {
    public let name: String
    /// `persist`: kept even when empty and, later, filled at run time.
    public let persist: Bool
    /// In canonical order (TableEntry's `<`), without repeats.
    public let entries: [TableEntry]
    private let matcher: PrefixMatcher

    public init(name: String, persist: Bool = false, entries: [TableEntry]) {
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
        matcher = PrefixMatcher(sorted)
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
