/// What a captured packet turned out to be.
public enum ParsedPacket: Sendable, Equatable {
    case tcp(TCPSegment)
    /// An unfragmented IP packet of another protocol (IPv6: after walking the extension headers).
    case other(protocolNumber: UInt8, source: IPAddress, destination: IPAddress)
    case invalid(DropReason)
}

/// Parses IPv4 and IPv6 packets over raw bytes, without copying and without allocating.
///
/// `bytes` is what the kernel copied (the NFQUEUE copy range may cut the packet short);
/// `wireLength` is the packet's real length. Header fields must fit in `bytes`; length fields
/// are checked against `wireLength`.
public enum PacketParser {
    /// Extension headers walked before giving up: more than any sane packet has (RFC 8200 4.1).
    static let maximumExtensionHeaders = 16

    public static func parse(_ bytes: UnsafeRawBufferPointer, wireLength: Int) -> ParsedPacket {
        guard bytes.count >= 1 else { return .invalid(.truncated) }
        switch bytes[0] >> 4 {
        case 4: return parseIPv4(bytes, wireLength: max(wireLength, bytes.count))
        case 6: return parseIPv6(bytes, wireLength: max(wireLength, bytes.count))
        default: return .invalid(.badHeader)
        }
    }

    public static func parse(_ bytes: [UInt8]) -> ParsedPacket {
        bytes.withUnsafeBytes { parse($0, wireLength: $0.count) }
    }

    // MARK: IPv4 (RFC 791)

    static func parseIPv4(_ bytes: UnsafeRawBufferPointer, wireLength: Int) -> ParsedPacket {
        guard bytes.count >= 20 else { return .invalid(.truncated) }
        let headerLength = Int(bytes[0] & 0x0F) * 4
        guard headerLength >= 20 else { return .invalid(.badHeader) }
        guard headerLength <= bytes.count else { return .invalid(.truncated) }
        var totalLength = Int(bytes.bigEndianUInt16(at: 2))
        // A GSO packet over 64 KiB (BIG TCP) carries 0 here; its length is the skb's.
        if totalLength == 0 && wireLength > 65535 { totalLength = wireLength }
        guard totalLength >= headerLength else { return .invalid(.badHeader) }
        guard totalLength <= wireLength else { return .invalid(.truncated) }
        let fragment = bytes.bigEndianUInt16(at: 6)
        // More-fragments set or a non-zero offset: part of a fragmented datagram.
        guard fragment & 0x3FFF == 0 else { return .invalid(.fragment) }
        let source = IPAddress(ipv4: bytes.bigEndianUInt32(at: 12))
        let destination = IPAddress(ipv4: bytes.bigEndianUInt32(at: 16))
        let protocolNumber = bytes[9]
        guard protocolNumber == 6 else {
            return .other(protocolNumber: protocolNumber, source: source, destination: destination)
        }
        return parseTCP(bytes, offset: headerLength, length: totalLength - headerLength,
                        source: source, destination: destination, wireLength: wireLength)
    }

    // MARK: IPv6 (RFC 8200)

    static func parseIPv6(_ bytes: UnsafeRawBufferPointer, wireLength: Int) -> ParsedPacket {
        guard bytes.count >= 40 else { return .invalid(.truncated) }
        var payloadLength = Int(bytes.bigEndianUInt16(at: 4))
        // Jumbograms and BIG TCP GSO packets carry 0 (RFC 2675); the real length is the packet's.
        if payloadLength == 0 && wireLength > 65535 + 40 { payloadLength = wireLength - 40 }
        let totalLength = 40 + payloadLength
        guard totalLength <= wireLength else { return .invalid(.truncated) }
        let source = IPAddress(high: bytes.bigEndianUInt64(at: 8), low: bytes.bigEndianUInt64(at: 16))
        let destination = IPAddress(high: bytes.bigEndianUInt64(at: 24), low: bytes.bigEndianUInt64(at: 32))
        // IPv4-mapped addresses never appear on the wire (RFC 4291 2.5.5.2); seqwall keeps IPv4
        // in that form, so such a packet would pose as IPv4 to the rules and the table.
        if source.isIPv4 || destination.isIPv4 { return .invalid(.badHeader) }

        var nextHeader = bytes[6]
        var offset = 40
        // Up to `maximumExtensionHeaders` extension headers, then one more round for the
        // upper-layer header that follows them.
        for _ in 0...maximumExtensionHeaders {
            let headerLength: Int
            switch nextHeader {
            case 0, 43, 60, 135, 139, 140:
                // Hop-by-hop, Routing, Destination options, Mobility, HIP, Shim6:
                // length in 8-octet units, not counting the first 8 (RFC 8200 4.3-4.6).
                guard offset + 2 <= totalLength else { return .invalid(.badHeader) }
                guard offset + 2 <= bytes.count else { return .invalid(.truncated) }
                headerLength = (Int(bytes[offset + 1]) + 1) * 8
            case 51:
                // Authentication header: length in 4-octet units, minus 2 (RFC 4302 2.2).
                guard offset + 2 <= totalLength else { return .invalid(.badHeader) }
                guard offset + 2 <= bytes.count else { return .invalid(.truncated) }
                headerLength = (Int(bytes[offset + 1]) + 2) * 4
            case 44:
                // Fragment header (RFC 8200 4.5). An atomic fragment (offset 0, M clear) is a
                // whole packet and is read on (RFC 6946); any other is part of a datagram.
                guard offset + 8 <= totalLength else { return .invalid(.badHeader) }
                guard offset + 8 <= bytes.count else { return .invalid(.truncated) }
                guard bytes.bigEndianUInt16(at: offset + 2) & 0xFFF9 == 0 else { return .invalid(.fragment) }
                headerLength = 8
            case 6:
                return parseTCP(bytes, offset: offset, length: totalLength - offset,
                                source: source, destination: destination, wireLength: wireLength)
            default:
                // An upper-layer protocol, No Next Header (59), or ESP (50) which hides the rest.
                return .other(protocolNumber: nextHeader, source: source, destination: destination)
            }
            guard offset + headerLength <= totalLength else { return .invalid(.badHeader) }
            guard offset + headerLength <= bytes.count else { return .invalid(.truncated) }
            nextHeader = bytes[offset]
            offset += headerLength
        }
        return .invalid(.badHeader)
    }

    // MARK: TCP (RFC 9293 3.1)

    static func parseTCP(_ bytes: UnsafeRawBufferPointer, offset: Int, length: Int,
                         source: IPAddress, destination: IPAddress, wireLength: Int) -> ParsedPacket {
        // The IP packet cannot even hold the fixed TCP header.
        guard length >= 20 else { return .invalid(.truncated) }
        guard offset + 20 <= bytes.count else { return .invalid(.truncated) }
        let headerLength = Int(bytes[offset + 12] >> 4) * 4
        guard headerLength >= 20, headerLength <= length else { return .invalid(.badHeader) }
        guard offset + headerLength <= bytes.count else { return .invalid(.truncated) }

        let sourcePort = bytes.bigEndianUInt16(at: offset)
        let destinationPort = bytes.bigEndianUInt16(at: offset + 2)
        if source == destination && sourcePort == destinationPort { return .invalid(.land) }

        guard let options = parseOptions(bytes, from: offset + 20, to: offset + headerLength) else {
            return .invalid(.badOptions)
        }
        return .tcp(TCPSegment(
            source: source, destination: destination,
            sourcePort: sourcePort, destinationPort: destinationPort,
            sequence: bytes.bigEndianUInt32(at: offset + 4),
            acknowledgment: bytes.bigEndianUInt32(at: offset + 8),
            flags: TCPFlags(rawValue: bytes[offset + 13]),
            window: bytes.bigEndianUInt16(at: offset + 14),
            payloadLength: length - headerLength,
            options: options,
            wireLength: wireLength))
    }

    /// Reads the option list; nil when an option's length is below 2 or runs past the header.
    /// Known options with a wrong length are skipped, as Linux's tcp_parse_options does.
    static func parseOptions(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int) -> TCPOptions? {
        var options = TCPOptions()
        var index = start
        while index < end {
            let kind = bytes[index]
            if kind == 0 { break }              // End of option list
            if kind == 1 { index += 1; continue } // No-operation
            guard index + 2 <= end else { return nil }
            let length = Int(bytes[index + 1])
            guard length >= 2, index + length <= end else { return nil }
            switch (kind, length) {
            case (2, 4):
                options.mss = bytes.bigEndianUInt16(at: index + 2)
            case (3, 3):
                options.windowScale = bytes[index + 2]
                options.hasWindowScale = true
            case (4, 2):
                options.sackPermitted = true
            case (5, _) where length >= 10 && (length - 2) % 8 == 0:
                // SACK blocks: left and right edge each; keep the highest right edge (RFC 2018).
                var block = index + 2
                while block + 8 <= index + length {
                    let rightEdge = bytes.bigEndianUInt32(at: block + 4)
                    if !options.hasSACK || SequenceNumber.after(rightEdge, options.sackRightEdge) {
                        options.sackRightEdge = rightEdge
                        options.hasSACK = true
                    }
                    block += 8
                }
            case (8, 10):
                options.hasTimestamps = true
                options.timestampValue = bytes.bigEndianUInt32(at: index + 2)
                options.timestampEcho = bytes.bigEndianUInt32(at: index + 6)
            default:
                break
            }
            index += length
        }
        return options
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always)
    func bigEndianUInt16(at offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always)
    func bigEndianUInt32(at offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always)
    func bigEndianUInt64(at offset: Int) -> UInt64 {
        UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}

/// Sequence-number arithmetic modulo 2^32 (RFC 1982 style, as the kernel's before()/after()).
public enum SequenceNumber {
    @inline(__always)
    public static func before(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) < 0 }

    @inline(__always)
    public static func after(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: b &- a) < 0 }
}
