/// An IPv4 or IPv6 address held in 128 bits, IPv4 as an IPv4-mapped IPv6 address (::ffff:a.b.c.d),
/// so that one fixed-size key serves both families without an enum or an allocation.
public struct IPAddress: Hashable, Sendable, Comparable {
    /// The high and low 64 bits in network (big-endian) order, as numbers.
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// An IPv4 address from its 32-bit value in host order (198.51.100.1 is 0xC6336401).
    public init(ipv4 value: UInt32) {
        self.high = 0
        self.low = 0x0000_FFFF_0000_0000 | UInt64(value)
    }

    public var isIPv4: Bool { high == 0 && (low >> 32) == 0x0000_FFFF }

    public var ipv4Value: UInt32 { UInt32(truncatingIfNeeded: low) }

    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        lhs.high != rhs.high ? lhs.high < rhs.high : lhs.low < rhs.low
    }

    /// The address with every bit after the first `prefixLength` cleared. For IPv4 the prefix
    /// counts from the start of the IPv4 address, not of the mapped IPv6 form.
    public func masked(prefixLength: Int) -> IPAddress {
        let bits = isIPv4 ? prefixLength + 96 : prefixLength
        if bits <= 0 { return IPAddress(high: 0, low: 0) }
        if bits >= 128 { return self }
        if bits <= 64 {
            let mask: UInt64 = bits == 64 ? ~0 : ~(~0 >> UInt64(bits))
            return IPAddress(high: high & mask, low: 0)
        }
        let mask: UInt64 = ~(~0 >> UInt64(bits - 64))
        return IPAddress(high: high, low: low & mask)
    }
}

extension IPAddress: CustomStringConvertible {
    /// Dotted quad for IPv4, RFC 5952 text for IPv6 (lower case, longest zero run compressed).
    public var description: String {
        if isIPv4 {
            let v = ipv4Value
            return "\(v >> 24).\((v >> 16) & 0xFF).\((v >> 8) & 0xFF).\(v & 0xFF)"
        }
        var groups = [UInt16](repeating: 0, count: 8)
        for i in 0..<4 {
            groups[i] = UInt16(truncatingIfNeeded: high >> UInt64(48 - 16 * i))
            groups[i + 4] = UInt16(truncatingIfNeeded: low >> UInt64(48 - 16 * i))
        }
        // Longest run of two or more zero groups; the first one wins a tie (RFC 5952 4.2.3).
        var bestStart = -1, bestLength = 0, runStart = -1
        for i in 0...8 {
            if i < 8 && groups[i] == 0 {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                if i - runStart > bestLength && i - runStart >= 2 { bestStart = runStart; bestLength = i - runStart }
                runStart = -1
            }
        }
        func hex(_ range: Range<Int>) -> String {
            groups[range].map { String($0, radix: 16) }.joined(separator: ":")
        }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }
}

extension IPAddress {
    /// Parses "198.51.100.7" or any RFC 4291 IPv6 text form ("2001:db8::1", "::ffff:1.2.3.4").
    /// Returns nil for anything else; no zone ids, no leading zeros in IPv4 octets.
    public init?(_ text: Substring) {
        if !text.contains(":") {
            guard let v4 = IPAddress.parseIPv4(text) else { return nil }
            self.init(ipv4: v4)
            return
        }
        // At most one "::" (RFC 4291 2.2): the groups before it and after it. An embedded
        // IPv4 address may only end the text.
        let head: [UInt16], tail: [UInt16]
        let sawDoubleColon: Bool
        if let gap = text.firstRange(of: "::") {
            guard let before = IPAddress.parseGroups(text[..<gap.lowerBound], ipv4Last: false),
                  let after = IPAddress.parseGroups(text[gap.upperBound...], ipv4Last: true) else { return nil }
            (head, tail, sawDoubleColon) = (before, after, true)
        } else {
            guard let groups = IPAddress.parseGroups(text, ipv4Last: true) else { return nil }
            (head, tail, sawDoubleColon) = (groups, [], false)
        }
        let total = head.count + tail.count
        if sawDoubleColon ? total > 7 : total != 8 { return nil }
        let groups = head + [UInt16](repeating: 0, count: 8 - total) + tail
        var high: UInt64 = 0, low: UInt64 = 0
        for i in 0..<4 {
            high = high << 16 | UInt64(groups[i])
            low = low << 16 | UInt64(groups[i + 4])
        }
        self.init(high: high, low: low)
    }

    public init?(_ text: String) { self.init(text[...]) }

    /// Colon-separated groups of 1-4 ASCII hex digits, the last one optionally a dotted quad
    /// (two groups); nil for an empty group, so no lone leading or trailing colon passes.
    static func parseGroups(_ text: Substring, ipv4Last: Bool) -> [UInt16]? {
        if text.isEmpty { return [] }
        let fields = text.split(separator: ":", omittingEmptySubsequences: false)
        var groups: [UInt16] = []
        for (index, field) in fields.enumerated() {
            if ipv4Last && index == fields.count - 1 && field.contains(".") {
                guard let v4 = IPAddress.parseIPv4(field) else { return nil }
                groups += [UInt16(v4 >> 16), UInt16(v4 & 0xFFFF)]
                continue
            }
            guard (1...4).contains(field.count), field.allSatisfy({ $0.isASCII && $0.isHexDigit }),
                  let value = UInt16(field, radix: 16) else { return nil }
            groups.append(value)
        }
        return groups
    }

    static func parseIPv4(_ text: Substring) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  !(part.count > 1 && part.first == "0"),
                  let octet = UInt32(part), octet <= 255 else { return nil }
            value = value << 8 | octet
        }
        return value
    }
}

/// An address prefix such as 203.0.113.0/24 or 2001:db8:2::/64.
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    /// `address` is stored masked; `prefixLength` counts bits of the family's own address.
    public init(address: IPAddress, prefixLength: Int) {
        self.address = address.masked(prefixLength: prefixLength)
        self.prefixLength = prefixLength
    }

    public var isIPv4: Bool { address.isIPv4 }

    public func contains(_ candidate: IPAddress) -> Bool {
        candidate.isIPv4 == address.isIPv4 && candidate.masked(prefixLength: prefixLength) == address
    }

    public var description: String {
        let full = isIPv4 ? 32 : 128
        return prefixLength == full ? address.description : "\(address)/\(prefixLength)"
    }
}
