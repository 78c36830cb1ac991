import SeqwallCore

/// Builds raw IPv4 and IPv6 TCP packets, with knobs to corrupt every length the parser reads.
public struct PacketBuilder: Sendable {
    public var source: IPAddress
    public var destination: IPAddress
    public var sourcePort: UInt16 = 40000
    public var destinationPort: UInt16 = 80
    public var sequence: UInt32 = 0
    public var acknowledgment: UInt32 = 0
    public var flags: TCPFlags = .syn
    public var window: UInt16 = 65535
    public var options: [TCPOptionSpec] = []
    public var payloadLength = 0

    /// The IP protocol / final Next Header (6 for TCP). For non-TCP, `transport` is the payload.
    public var protocolNumber: UInt8 = 6
    public var transport: [UInt8]? = nil

    // Corruption knobs, shared.
    /// Overrides the IP version nibble.
    public var version: UInt8? = nil
    /// Overrides the TCP data offset (in 32-bit words).
    public var dataOffset: UInt8? = nil
    /// Bytes appended after the IP packet (link-layer padding), not counted in IP lengths.
    public var trailingBytes = 0

    // IPv4 knobs.
    /// IPv4 options (padded with EOL to a multiple of 4).
    public var ipv4Options: [UInt8] = []
    /// Overrides the IHL field (in 32-bit words).
    public var ihl: UInt8? = nil
    /// Overrides the Total Length field.
    public var ipv4TotalLength: UInt16? = nil
    /// Flags and fragment offset (DF by default).
    public var fragmentField: UInt16 = 0x4000
    /// IPv4 TTL or IPv6 hop limit.
    public var hopLimit: UInt8 = 64

    // IPv6 knobs.
    public var extensionHeaders: [IPv6ExtensionHeader] = []
    /// Overrides the Payload Length field.
    public var ipv6PayloadLength: UInt16? = nil

    public init(source: IPAddress, destination: IPAddress) {
        self.source = source
        self.destination = destination
    }

    public var isIPv6: Bool { !source.isIPv4 }

    /// The TCP options, padded with EOL bytes to a multiple of 4.
    public var optionBytes: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(40)
        for option in options { option.append(to: &bytes) }
        while bytes.count % 4 != 0 { bytes.append(0) }
        return bytes
    }

    /// The TCP header and payload, with a correct checksum over the pseudo-header.
    public func tcpBytes() -> [UInt8] {
        let opts = optionBytes
        let headerLength = 20 + opts.count
        var tcp: [UInt8] = []
        tcp.reserveCapacity(headerLength + payloadLength)
        tcp.append(bigEndian: sourcePort)
        tcp.append(bigEndian: destinationPort)
        tcp.append(bigEndian: sequence)
        tcp.append(bigEndian: acknowledgment)
        tcp.append((dataOffset ?? UInt8(headerLength / 4)) << 4)
        tcp.append(flags.rawValue)
        tcp.append(bigEndian: window)
        tcp += [0, 0]                    // checksum
        tcp += [0, 0]                    // urgent pointer
        tcp += opts
        for index in 0..<payloadLength { tcp.append(UInt8(truncatingIfNeeded: index &* 7 &+ 1)) }
        // Pseudo-header checksum (RFC 9293 3.1, RFC 8200 8.1).
        var pseudo: [UInt8] = []
        pseudo.reserveCapacity(40)
        if isIPv6 {
            source.append(to: &pseudo)
            destination.append(to: &pseudo)
            pseudo.append(bigEndian: UInt32(tcp.count))
            pseudo += [0, 0, 0, 6]
        } else {
            pseudo.append(bigEndian: source.ipv4Value)
            pseudo.append(bigEndian: destination.ipv4Value)
            pseudo += [0, 6]
            pseudo.append(bigEndian: UInt16(truncatingIfNeeded: tcp.count))
        }
        let sum = internetChecksum(parts: pseudo, tcp)
        tcp[16] = UInt8(sum >> 8)
        tcp[17] = UInt8(sum & 0xFF)
        return tcp
    }

    public func build() -> [UInt8] {
        let upper = protocolNumber == 6 && transport == nil ? tcpBytes() : (transport ?? [])
        var packet = isIPv6 ? ipv6(upper) : ipv4(upper)
        packet += [UInt8](repeating: 0xEE, count: trailingBytes)
        return packet
    }

    public func ipv4(_ upper: [UInt8]) -> [UInt8] {
        var opts = ipv4Options
        while opts.count % 4 != 0 { opts.append(0) }
        let headerLength = 20 + opts.count
        let total = ipv4TotalLength ?? UInt16(headerLength + upper.count)
        var header: [UInt8] = []
        header.reserveCapacity(headerLength + upper.count + trailingBytes)
        header.append((version ?? 4) << 4 | (ihl ?? UInt8(headerLength / 4)))
        header.append(0)                             // DSCP/ECN
        header.append(bigEndian: total)
        header.append(bigEndian: UInt16(0xBEEF))     // identification
        header.append(bigEndian: fragmentField)
        header.append(hopLimit)                      // TTL
        header.append(protocolNumber)
        header += [0, 0]                             // checksum
        header.append(bigEndian: source.ipv4Value)
        header.append(bigEndian: destination.ipv4Value)
        header += opts
        let sum = internetChecksum(header)
        header[10] = UInt8(sum >> 8)
        header[11] = UInt8(sum & 0xFF)
        return header + upper
    }

    public func ipv6(_ upper: [UInt8]) -> [UInt8] {
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
        source.append(to: &header)
        destination.append(to: &header)
        return header + payload
    }
}
