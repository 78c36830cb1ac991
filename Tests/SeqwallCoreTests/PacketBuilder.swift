import SeqwallCore

/// A TCP option as it goes on the wire (RFC 9293 3.2, RFC 7323, RFC 2018).
enum TCPOptionSpec {
    case endOfList
    case noOperation
    case mss(UInt16)
    case windowScale(UInt8)
    case sackPermitted
    /// (left edge, right edge) pairs.
    case sack([(UInt32, UInt32)])
    case timestamps(value: UInt32, echo: UInt32)
    /// Any bytes, for malformed options (kind, length and body as given).
    case raw([UInt8])

    var bytes: [UInt8] {
        switch self {
        case .endOfList: return [0]
        case .noOperation: return [1]
        case .mss(let mss): return [2, 4] + mss.bigEndianBytes
        case .windowScale(let shift): return [3, 3, shift]
        case .sackPermitted: return [4, 2]
        case .sack(let blocks):
            return [5, UInt8(2 + 8 * blocks.count)] + blocks.flatMap { $0.0.bigEndianBytes + $0.1.bigEndianBytes }
        case .timestamps(let value, let echo): return [8, 10] + value.bigEndianBytes + echo.bigEndianBytes
        case .raw(let bytes): return bytes
        }
    }
}

/// An IPv6 extension header (RFC 8200 4). Byte 0 (Next Header) is filled in by the builder.
struct IPv6ExtensionHeader {
    var type: UInt8
    var bytes: [UInt8]

    /// Options-style header (hop-by-hop 0, destination options 60): (units + 1) * 8 bytes, the
    /// body filled with a PadN option.
    static func options(type: UInt8, units: Int) -> IPv6ExtensionHeader {
        let length = (units + 1) * 8
        var bytes = [UInt8](repeating: 0, count: length)
        bytes[1] = UInt8(units)
        bytes[2] = 1                     // PadN
        bytes[3] = UInt8(length - 4)
        return IPv6ExtensionHeader(type: type, bytes: bytes)
    }

    static func hopByHop(units: Int = 0) -> IPv6ExtensionHeader { options(type: 0, units: units) }

    static func destinationOptions(units: Int = 0) -> IPv6ExtensionHeader { options(type: 60, units: units) }

    /// A routing header with Segments Left 0 (RFC 8200 4.4): type 2 with one address, or any
    /// length in 8-octet units.
    static func routing(units: Int = 2) -> IPv6ExtensionHeader {
        var header = options(type: 43, units: units)
        header.bytes[2] = 2              // routing type
        header.bytes[3] = 0              // segments left
        return header
    }

    /// A fragment header (RFC 8200 4.5): offset in 8-octet units, M flag.
    static func fragment(offset: UInt16 = 0, more: Bool = false, identification: UInt32 = 0x1234_5678) -> IPv6ExtensionHeader {
        let field = offset << 3 | (more ? 1 : 0)
        return IPv6ExtensionHeader(type: 44, bytes: [0, 0] + field.bigEndianBytes + identification.bigEndianBytes)
    }

    /// The same header with its Hdr Ext Len byte set to `value` (to make it run off the end).
    func withLengthField(_ value: UInt8) -> IPv6ExtensionHeader {
        var copy = self
        copy.bytes[1] = value
        return copy
    }
}

/// Builds raw IPv4 and IPv6 TCP packets, with knobs to corrupt every length the parser reads.
struct PacketBuilder {
    var source: IPAddress
    var destination: IPAddress
    var sourcePort: UInt16 = 40000
    var destinationPort: UInt16 = 80
    var sequence: UInt32 = 0
    var acknowledgment: UInt32 = 0
    var flags: TCPFlags = .syn
    var window: UInt16 = 65535
    var options: [TCPOptionSpec] = []
    var payloadLength = 0

    /// The IP protocol / final Next Header (6 for TCP). For non-TCP, `transport` is the payload.
    var protocolNumber: UInt8 = 6
    var transport: [UInt8]? = nil

    // Corruption knobs, shared.
    /// Overrides the IP version nibble.
    var version: UInt8? = nil
    /// Overrides the TCP data offset (in 32-bit words).
    var dataOffset: UInt8? = nil
    /// Bytes appended after the IP packet (link-layer padding), not counted in IP lengths.
    var trailingBytes = 0

    // IPv4 knobs.
    /// IPv4 options (padded with EOL to a multiple of 4).
    var ipv4Options: [UInt8] = []
    /// Overrides the IHL field (in 32-bit words).
    var ihl: UInt8? = nil
    /// Overrides the Total Length field.
    var ipv4TotalLength: UInt16? = nil
    /// Flags and fragment offset (DF by default).
    var fragmentField: UInt16 = 0x4000
    /// IPv4 TTL or IPv6 hop limit.
    var hopLimit: UInt8 = 64

    // IPv6 knobs.
    var extensionHeaders: [IPv6ExtensionHeader] = []
    /// Overrides the Payload Length field.
    var ipv6PayloadLength: UInt16? = nil

    init(source: IPAddress, destination: IPAddress) {
        self.source = source
        self.destination = destination
    }

    var isIPv6: Bool { !source.isIPv4 }

    /// The TCP options, padded with EOL bytes to a multiple of 4.
    var optionBytes: [UInt8] {
        var bytes = options.flatMap(\.bytes)
        while bytes.count % 4 != 0 { bytes.append(0) }
        return bytes
    }

    /// The TCP header and payload, with a correct checksum over the pseudo-header.
    func tcpBytes() -> [UInt8] {
        let opts = optionBytes
        let headerLength = 20 + opts.count
        var tcp: [UInt8] = []
        tcp += sourcePort.bigEndianBytes
        tcp += destinationPort.bigEndianBytes
        tcp += sequence.bigEndianBytes
        tcp += acknowledgment.bigEndianBytes
        tcp.append((dataOffset ?? UInt8(headerLength / 4)) << 4)
        tcp.append(flags.rawValue)
        tcp += window.bigEndianBytes
        tcp += [0, 0]                    // checksum
        tcp += [0, 0]                    // urgent pointer
        tcp += opts
        tcp += (0..<payloadLength).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }
        // Pseudo-header checksum (RFC 9293 3.1, RFC 8200 8.1).
        var pseudo: [UInt8] = []
        if isIPv6 {
            pseudo += source.bytes16 + destination.bytes16
            pseudo += UInt32(tcp.count).bigEndianBytes + [0, 0, 0, 6]
        } else {
            pseudo += source.ipv4Value.bigEndianBytes + destination.ipv4Value.bigEndianBytes
            pseudo += [0, 6] + UInt16(truncatingIfNeeded: tcp.count).bigEndianBytes
        }
        let sum = internetChecksum(pseudo + tcp)
        tcp[16] = UInt8(sum >> 8)
        tcp[17] = UInt8(sum & 0xFF)
        return tcp
    }

    func build() -> [UInt8] {
        let upper = protocolNumber == 6 && transport == nil ? tcpBytes() : (transport ?? [])
        var packet = isIPv6 ? ipv6(upper) : ipv4(upper)
        packet += [UInt8](repeating: 0xEE, count: trailingBytes)
        return packet
    }

    func ipv4(_ upper: [UInt8]) -> [UInt8] {
        var opts = ipv4Options
        while opts.count % 4 != 0 { opts.append(0) }
        let headerLength = 20 + opts.count
        let total = ipv4TotalLength ?? UInt16(headerLength + upper.count)
        var header: [UInt8] = []
        header.append((version ?? 4) << 4 | (ihl ?? UInt8(headerLength / 4)))
        header.append(0)                             // DSCP/ECN
        header += total.bigEndianBytes
        header += UInt16(0xBEEF).bigEndianBytes      // identification
        header += fragmentField.bigEndianBytes
        header.append(hopLimit)                      // TTL
        header.append(protocolNumber)
        header += [0, 0]                             // checksum
        header += source.ipv4Value.bigEndianBytes
        header += destination.ipv4Value.bigEndianBytes
        header += opts
        let sum = internetChecksum(header)
        header[10] = UInt8(sum >> 8)
        header[11] = UInt8(sum & 0xFF)
        return header + upper
    }

    func ipv6(_ upper: [UInt8]) -> [UInt8] {
        var chain: [UInt8] = []
        for (index, header) in extensionHeaders.enumerated() {
            var bytes = header.bytes
            bytes[0] = index + 1 < extensionHeaders.count ? extensionHeaders[index + 1].type : protocolNumber
            chain += bytes
        }
        let payload = chain + upper
        var header: [UInt8] = []
        header += [(version ?? 6) << 4, 0, 0, 0]     // version, traffic class, flow label
        header += (ipv6PayloadLength ?? UInt16(truncatingIfNeeded: payload.count)).bigEndianBytes
        header.append(extensionHeaders.first?.type ?? protocolNumber)
        header.append(hopLimit)                      // hop limit
        header += source.bytes16 + destination.bytes16
        return header + payload
    }
}

/// RFC 1071 one's-complement sum.
func internetChecksum(_ bytes: [UInt8]) -> UInt16 {
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
    var bigEndianBytes: [UInt8] {
        (0..<(Self.bitWidth / 8)).reversed().map { UInt8(truncatingIfNeeded: self >> ($0 * 8)) }
    }
}

extension IPAddress {
    /// The 16 bytes of the address in network order (IPv4 in its mapped form).
    var bytes16: [UInt8] { high.bigEndianBytes + low.bigEndianBytes }
}

/// Parses `bytes` as if the kernel had copied only the first `captured` of them.
func parse(_ bytes: [UInt8], captured: Int? = nil, wireLength: Int? = nil) -> ParsedPacket {
    let cut = Array(bytes.prefix(captured ?? bytes.count))
    return cut.withUnsafeBytes { PacketParser.parse($0, wireLength: wireLength ?? bytes.count) }
}

/// A test address from text; traps on a typo.
func ip(_ text: String) -> IPAddress {
    guard let address = IPAddress(text) else { fatalError("bad test address \(text)") }
    return address
}

/// The address family a parameterized test runs in, with documentation-range addresses
/// (docs/design.md, Test lab addresses): outside 198.51.100.0/24 and 2001:db8:1::/64, inside
/// 203.0.113.0/24 and 2001:db8:2::/64.
enum Family: String, CaseIterable, Sendable, CustomStringConvertible {
    case ipv4
    case ipv6

    var client: IPAddress { self == .ipv4 ? ip("198.51.100.10") : ip("2001:db8:1::10") }
    var server: IPAddress { self == .ipv4 ? ip("203.0.113.10") : ip("2001:db8:2::10") }
    var otherClient: IPAddress { self == .ipv4 ? ip("198.51.100.66") : ip("2001:db8:1::66") }
    var insideNetwork: IPNetwork {
        self == .ipv4 ? IPNetwork(address: ip("203.0.113.0"), prefixLength: 24)
            : IPNetwork(address: ip("2001:db8:2::"), prefixLength: 64)
    }
    /// IP header bytes ahead of the TCP header (no options, no extension headers).
    var ipHeaderLength: Int { self == .ipv4 ? 20 : 40 }

    var description: String { rawValue }
}
