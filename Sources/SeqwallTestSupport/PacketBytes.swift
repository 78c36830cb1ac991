import SeqwallCore

/// RFC 1071 one's-complement sum.
public func internetChecksum(_ bytes: [UInt8]) -> UInt16 {
    internetChecksum(parts: bytes)
}

/// The checksum of `parts` laid end to end, without joining them (a pseudo-header and the
/// segment it covers).
func internetChecksum(parts: [UInt8]...) -> UInt16 {
    var sum: UInt32 = 0
    var isHighByte = true
    for part in parts {
        for byte in part {
            sum += isHighByte ? UInt32(byte) << 8 : UInt32(byte)
            isHighByte.toggle()
        }
    }
    while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
    return ~UInt16(sum)
}

extension FixedWidthInteger {
    public var bigEndianBytes: [UInt8] {
        (0..<(Self.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: self >> ($0 * 8)) }
    }
}

extension Array where Element == UInt8 {
    /// Appends `value` in network order without the temporary array `bigEndianBytes` makes:
    /// the benchmarks build a million packets a pass with the builder.
    mutating func append<T: FixedWidthInteger>(bigEndian value: T) {
        for shift in stride(from: T.bitWidth - 8, through: 0, by: -8) {
            append(UInt8(truncatingIfNeeded: value >> shift))
        }
    }
}

extension IPAddress {
    /// The 16 bytes of the address in network order (IPv4 in its mapped form).
    public var bytes16: [UInt8] { high.bigEndianBytes + low.bigEndianBytes }

    /// Appends the 16 bytes of `bytes16` to `bytes`.
    func append(to bytes: inout [UInt8]) {
        bytes.append(bigEndian: high)
        bytes.append(bigEndian: low)
    }
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

/// Whether the TCP checksum of a whole IPv4 or IPv6 packet (no extension headers) holds:
/// the one's-complement sum over the pseudo-header and the segment, checksum included, is
/// all ones (RFC 1071, RFC 9293 3.1, RFC 8200 8.1).
public func tcpChecksumHolds(_ packet: [UInt8]) -> Bool {
    guard let first = packet.first else { return false }
    let ipv6 = first >> 4 == 6
    let headerLength = ipv6 ? 40 : Int(first & 0x0F) * 4
    guard packet.count >= headerLength + 20 else { return false }
    let segment = Array(packet[headerLength...])
    var pseudo: [UInt8] = ipv6 ? Array(packet[8..<40]) : Array(packet[12..<20])
    if ipv6 {
        pseudo.append(bigEndian: UInt32(segment.count))
        pseudo += [0, 0, 0, 6]
    } else {
        pseudo += [0, 6]
        pseudo.append(bigEndian: UInt16(segment.count))
    }
    return internetChecksum(parts: pseudo, segment) == 0
}
