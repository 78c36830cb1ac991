import SeqwallCore

/// RFC 1071 one's-complement sum.
public func internetChecksum(_ bytes: [UInt8]) -> UInt16 {
    var sum: UInt32 = 0
    var index = 0
    while index + 1 < bytes.count {
        sum += UInt32(bytes[index]) << 8 | UInt32(bytes[index + 1])
        index += 2
    }
    if index < bytes.count { sum += UInt32(bytes[index]) << 8 }
    while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
    return ~UInt16(sum)
}

extension FixedWidthInteger {
    public var bigEndianBytes: [UInt8] {
        (0..<(Self.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: self >> ($0 * 8)) }
    }
}

extension IPAddress {
    /// The 16 bytes of the address in network order (IPv4 in its mapped form).
    public var bytes16: [UInt8] { high.bigEndianBytes + low.bigEndianBytes }
}

/// Parses `bytes` as if the kernel had copied only the first `captured` of them.
public func parse(_ bytes: [UInt8], captured: Int? = nil, wireLength: Int? = nil) -> ParsedPacket {
    let cut = Array(bytes.prefix(captured ?? bytes.count))
    return cut.withUnsafeBytes { PacketParser.parse($0, wireLength: wireLength ?? bytes.count) }
}

/// A test address from text; traps on a typo.
public func ip(_ text: String) -> IPAddress {
    guard let address = IPAddress(text) else { fatalError("bad test address \(text)") }
    return address
}
