/// One line of a table: a prefix, or with `!` an exception carved out of the prefixes around it
/// (seqwall.rules(5), Tables). The most specific prefix that contains an address decides, as in
/// pf's radix tables with negated entries (pfr_match_addr).
public struct TableEntry: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let network: IPNetwork
    public let negated: Bool

    public init(_ network: IPNetwork, negated: Bool = false) {
        self.network = network
        self.negated = negated
    }

    /// IPv4 before IPv6, then by address, then by prefix length, then the plain entry before its
    /// exception: the canonical order the printer writes.
    public static func < (lhs: TableEntry, rhs: TableEntry) -> Bool {
        let (a, b) = (lhs.network, rhs.network)
        if a.isIPv4 != b.isIPv4 { return a.isIPv4 }
        if a.address != b.address { return a.address < b.address }
        if a.prefixLength != b.prefixLength { return a.prefixLength < b.prefixLength }
        return !lhs.negated && rhs.negated
    }

    public var description: String { (negated ? "!" : "") + network.description }
}
