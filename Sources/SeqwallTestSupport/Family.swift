import SeqwallCore

/// The address family a parameterized test runs in, with documentation-range addresses
/// (docs/design.md, Test lab addresses): outside 198.51.100.0/24 and 2001:db8:1::/64, inside
/// 203.0.113.0/24 and 2001:db8:2::/64.
public enum Family: String, CaseIterable, Sendable, CustomStringConvertible {
    case ipv4
    case ipv6

    public var client: IPAddress { self == .ipv4 ? ip("198.51.100.10") : ip("2001:db8:1::10") }
    public var server: IPAddress { self == .ipv4 ? ip("203.0.113.10") : ip("2001:db8:2::10") }
    public var otherClient: IPAddress { self == .ipv4 ? ip("198.51.100.66") : ip("2001:db8:1::66") }
    public var insideNetwork: IPNetwork {
        self == .ipv4 ? IPNetwork(address: ip("203.0.113.0"), prefixLength: 24)
            : IPNetwork(address: ip("2001:db8:2::"), prefixLength: 64)
    }
    /// IP header bytes ahead of the TCP header (no options, no extension headers).
    public var ipHeaderLength: Int { self == .ipv4 ? 20 : 40 }

    public var description: String { rawValue }
}
