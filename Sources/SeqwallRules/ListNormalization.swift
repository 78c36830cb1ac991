import SeqwallCore

/// The canonical order of address and port lists. Order inside a list never changes what a rule
/// matches, so the checker stores lists this way and the printer prints them this way; then two
/// files that mean the same thing print the same, and print-then-parse gives back an equal Policy.
enum ListNormalization {
    /// IPv4 before IPv6, ascending by address then by prefix length; duplicates and networks
    /// inside another network of the same list are dropped (they could never change a match).
    static func networks(_ list: [IPNetwork]) -> [IPNetwork] {
        let sorted = list.sorted { a, b in
            if a.isIPv4 != b.isIPv4 { return a.isIPv4 }
            if a.address != b.address { return a.address < b.address }
            return a.prefixLength < b.prefixLength
        }
        // CIDR blocks are either nested or disjoint. In this order a block that covers another
        // comes before it, and everything between the two lies inside the cover too, so the cover
        // is always the last block kept.
        var kept: [IPNetwork] = []
        for network in sorted {
            if let last = kept.last, covers(last, network) { continue }
            kept.append(network)
        }
        return kept
    }

    /// Ascending; overlapping and adjacent ranges merged (`22, 23, 80-90, 85` is `22-23, 80-90`).
    static func ports(_ list: [PortRange]) -> [PortRange] {
        var merged: [PortRange] = []
        for range in list.sorted(by: { ($0.lower, $0.upper) < ($1.lower, $1.upper) }) {
            if let last = merged.last, Int(range.lower) <= Int(last.upper) + 1 {
                merged[merged.count - 1] = PortRange(last.lower, max(last.upper, range.upper))
            } else {
                merged.append(range)
            }
        }
        return merged
    }

    /// Whether every address in `inner` is also in `outer`.
    static func covers(_ outer: IPNetwork, _ inner: IPNetwork) -> Bool {
        outer.isIPv4 == inner.isIPv4 && outer.prefixLength <= inner.prefixLength
            && inner.address.masked(prefixLength: outer.prefixLength) == outer.address
    }
}
