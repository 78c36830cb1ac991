/// Parses IPv4 and IPv6 packets over raw bytes, without copying and without allocating.
///
/// `bytes` is what the kernel copied (the NFQUEUE copy range may cut the packet short);
/// `wireLength` is the packet's real length. Header fields must fit in `bytes`; length fields
/// are checked against `wireLength`.
public enum PacketParser {
    /// Extension headers walked before giving up: more than any sane packet has (RFC 8200 4.1).
    static let maximumExtensionHeaders = 16

    public static func parse(_ bytes: UnsafeRawBufferPointer, wireLength: Int) -> ParsedPacket {
        var network = NetworkLayer()
        if let reason = parseNetwork(bytes, wireLength: wireLength, into: &network) { return .invalid(reason) }
        return parseTransport(bytes, network)
    }

    /// What the IP header(s) said: where the transport header starts and what it is.
    struct NetworkLayer {
        var source = IPAddress(high: 0, low: 0)
        var destination = IPAddress(high: 0, low: 0)
        var protocolNumber: UInt8 = 0
        var hopLimit: UInt8 = 0
        var ipv6 = false
        /// The transport header's offset, and its length with its data (from the IP lengths).
        var offset = 0
        var length = 0
        var wireLength = 0
    }

    /// What the packet path's parse found (`parse(_:wireLength:network:tcp:)`).
    enum PacketPathParse {
        /// A TCP segment, written into the caller's segment.
        case tcp
        /// Another protocol: `parseTransport` tells what it is.
        case otherTransport
        case invalid(DropReason)
    }

    /// The same parse for the packet path, written for speed: a TCP segment is written once,
    /// into `segment`, and what is returned is a byte or two. A TCPSegment returned inside a
    /// ParsedPacket (some 100 bytes) would be copied at every level on the way out and again by
    /// the caller. Every drop reason is the one `parse(_:wireLength:)` gives.
    // Always inlined: the packet path parses every packet here; inlined into the tracker, the segment is
    // written straight into its frame.
    @inline(__always)
    static func parse(_ bytes: UnsafeRawBufferPointer, wireLength: Int, network: inout NetworkLayer,
                      tcp segment: inout TCPSegment) -> PacketPathParse {
        if let reason = parseNetwork(bytes, wireLength: wireLength, into: &network) { return .invalid(reason) }
        guard network.protocolNumber == TrackedProtocol.tcpNumber else { return .otherTransport }
        if let reason = parseTCP(bytes, network, into: &segment) { return .invalid(reason) }
        return .tcp
    }

    /// The IP header (and IPv6 extension headers); returns why the packet is invalid, or nil.
    static func parseNetwork(_ bytes: UnsafeRawBufferPointer, wireLength: Int,
                             into network: inout NetworkLayer) -> DropReason? {
        guard bytes.count >= 1 else { return .truncated }
        switch bytes[0] >> 4 {
        case 4: return parseIPv4(bytes, wireLength: max(wireLength, bytes.count), into: &network)
        case 6: return parseIPv6(bytes, wireLength: max(wireLength, bytes.count), into: &network)
        default: return .badHeader
        }
    }

    public static func parse(_ bytes: [UInt8]) -> ParsedPacket {
        bytes.withUnsafeBytes { parse($0, wireLength: $0.count) }
    }

    // MARK: IPv4 (RFC 791)

    static func parseIPv4(_ bytes: UnsafeRawBufferPointer, wireLength: Int,
                          into network: inout NetworkLayer) -> DropReason? {
        guard bytes.count >= 20 else { return .truncated }
        let headerLength = Int(bytes[0] & 0x0F) * 4
        guard headerLength >= 20 else { return .badHeader }
        guard headerLength <= bytes.count else { return .truncated }
        var totalLength = Int(bytes.bigEndianUInt16(at: 2))
        // A GSO packet over 64 KiB (BIG TCP) carries 0 here; its length is the skb's.
        if totalLength == 0 && wireLength > 65535 { totalLength = wireLength }
        guard totalLength >= headerLength else { return .badHeader }
        guard totalLength <= wireLength else { return .truncated }
        network = NetworkLayer(source: IPAddress(ipv4: bytes.bigEndianUInt32(at: 12)),
                               destination: IPAddress(ipv4: bytes.bigEndianUInt32(at: 16)), protocolNumber: bytes[9],
                               hopLimit: bytes[8], ipv6: false, offset: headerLength,
                               length: totalLength - headerLength, wireLength: wireLength)
        // More-fragments set or a non-zero offset: part of a fragmented datagram, which
        // `network` still describes (IPFragment reads it for the drop log).
        guard bytes.bigEndianUInt16(at: 6) & 0x3FFF == 0 else { return .fragment }
        return nil
    }

    // MARK: IPv6 (RFC 8200)

    static func parseIPv6(_ bytes: UnsafeRawBufferPointer, wireLength: Int,
                          into network: inout NetworkLayer) -> DropReason? {
        guard bytes.count >= 40 else { return .truncated }
        var payloadLength = Int(bytes.bigEndianUInt16(at: 4))
        // Jumbograms and BIG TCP GSO packets carry 0 (RFC 2675); the real length is the packet's.
        if payloadLength == 0 && wireLength > 65535 + 40 { payloadLength = wireLength - 40 }
        let totalLength = 40 + payloadLength
        guard totalLength <= wireLength else { return .truncated }
        let source = IPAddress(high: bytes.bigEndianUInt64(at: 8), low: bytes.bigEndianUInt64(at: 16))
        let destination = IPAddress(high: bytes.bigEndianUInt64(at: 24), low: bytes.bigEndianUInt64(at: 32))
        // IPv4-mapped addresses never appear on the wire (RFC 4291 2.5.5.2); seqwall keeps IPv4
        // in that form, so such a packet would pose as IPv4 to the rules and the table.
        if source.isIPv4 || destination.isIPv4 { return .badHeader }

        /// The headers up to the upper-layer protocol `protocolNumber`, which starts at `start`.
        func layer(_ protocolNumber: UInt8, at start: Int) -> NetworkLayer {
            NetworkLayer(source: source, destination: destination, protocolNumber: protocolNumber, hopLimit: bytes[7],
                         ipv6: true, offset: start, length: totalLength - start, wireLength: wireLength)
        }
        let first = bytes[6]
        switch first {
        case 0, 43, 44, 51, 60, 135, 139, 140:
            break
        default:
            // No extension header, as nearly every packet: the upper layer follows at once.
            network = layer(first, at: 40)
            return nil
        }
        switch walkExtensionHeaders(bytes, from: 40, nextHeader: first, end: totalLength, stoppingAt: 0xFFF9) {
        case .upperLayer(let protocolNumber, let offset):
            // An upper-layer protocol, No Next Header (59), or ESP (50) which hides the rest.
            network = layer(protocolNumber, at: offset)
            return nil
        case .fragment(let protocolNumber, let dataOffset):
            // Part of a datagram; an atomic fragment (offset 0, M clear) is a whole packet and
            // was read on (RFC 6946). What IPFragment reads for the drop log: the datagram's
            // protocol and where this fragment's data starts.
            network = layer(protocolNumber, at: dataOffset)
            return .fragment
        case .invalid(let reason):
            return reason
        }
    }

    /// Where a walk over IPv6 extension headers (`walkExtensionHeaders`) stopped.
    enum ExtensionWalk {
        /// At the upper-layer header `protocolNumber`, which starts at `offset`.
        case upperLayer(protocolNumber: UInt8, offset: Int)
        /// At a fragment header the caller stops at: the datagram's protocol and where the
        /// fragment's data starts.
        case fragment(protocolNumber: UInt8, dataOffset: Int)
        case invalid(DropReason)
    }

    /// Walks the extension headers from `offset`, whose type is `nextHeader`, up to the
    /// upper-layer header (RFC 8200 4), for a packet and for the packet an ICMPv6 error quotes
    /// alike. `end` is where the packet (or the error quoting it) ends: a header past it is
    /// `bad-header`; one past the bytes the kernel copied is `truncated`. The walk stops at a
    /// fragment header whose offset-and-flags field has a bit of `fragmentMask` set.
    static func walkExtensionHeaders(_ bytes: UnsafeRawBufferPointer, from start: Int, nextHeader first: UInt8,
                                     end: Int, stoppingAt fragmentMask: UInt16) -> ExtensionWalk {
        /// Why the header bytes up to `needed` cannot be read, or nil.
        func shortfall(_ needed: Int) -> DropReason? {
            if needed > end { return .badHeader }
            if needed > bytes.count { return .truncated }
            return nil
        }
        var nextHeader = first
        var offset = start
        // Up to `maximumExtensionHeaders` extension headers, then one more round for the
        // upper-layer header that follows them.
        for _ in 0...maximumExtensionHeaders {
            let headerLength: Int
            switch nextHeader {
            case 0, 43, 60, 135, 139, 140:
                // Hop-by-hop, Routing, Destination options, Mobility, HIP, Shim6:
                // length in 8-octet units, not counting the first 8 (RFC 8200 4.3-4.6).
                if let reason = shortfall(offset + 2) { return .invalid(reason) }
                headerLength = (Int(bytes[offset + 1]) + 1) * 8
            case 51:
                // Authentication header: length in 4-octet units, minus 2 (RFC 4302 2.2).
                if let reason = shortfall(offset + 2) { return .invalid(reason) }
                headerLength = (Int(bytes[offset + 1]) + 2) * 4
            case 44:
                // Fragment header (RFC 8200 4.5).
                if let reason = shortfall(offset + 8) { return .invalid(reason) }
                if bytes.bigEndianUInt16(at: offset + 2) & fragmentMask != 0 {
                    return .fragment(protocolNumber: bytes[offset], dataOffset: offset + 8)
                }
                headerLength = 8
            default:
                return .upperLayer(protocolNumber: nextHeader, offset: offset)
            }
            if let reason = shortfall(offset + headerLength) { return .invalid(reason) }
            nextHeader = bytes[offset]
            offset += headerLength
        }
        return .invalid(.badHeader)
    }

    /// The transport header after the IP headers: a switch on the protocol number.
    static func parseTransport(_ bytes: UnsafeRawBufferPointer, _ network: NetworkLayer) -> ParsedPacket {
        let offset = network.offset, length = network.length, wireLength = network.wireLength
        let source = network.source, destination = network.destination, ipv6 = network.ipv6
        switch network.protocolNumber {
        case TrackedProtocol.tcpNumber:
            var segment = TCPSegment()
            if let reason = parseTCP(bytes, network, into: &segment) { return .invalid(reason) }
            return .tcp(segment)
        case TrackedProtocol.udpNumber:
            return parseUDP(bytes, offset: offset, length: length, source: source, destination: destination,
                            wireLength: wireLength)
        case TrackedProtocol.icmpNumber where !ipv6, TrackedProtocol.icmp6Number where ipv6:
            return parseICMP(bytes, offset: offset, length: length, source: source, destination: destination,
                             wireLength: wireLength, ipv6: ipv6, hopLimit: network.hopLimit)
        default:
            return .other(protocolNumber: network.protocolNumber, source: source, destination: destination)
        }
    }

    // MARK: UDP (RFC 768)

    static func parseUDP(_ bytes: UnsafeRawBufferPointer, offset: Int, length: Int,
                         source: IPAddress, destination: IPAddress, wireLength: Int) -> ParsedPacket {
        guard length >= 8 else { return .invalid(.truncated) }
        guard offset + 8 <= bytes.count else { return .invalid(.truncated) }
        // The length covers header and data. The kernel's udp_error calls a datagram invalid
        // when it is shorter than the header or longer than the IP packet; 0 marks a jumbogram
        // (RFC 2675 4), whose length is the IP packet's.
        let udpLength = Int(bytes.bigEndianUInt16(at: offset + 4))
        if udpLength != 0 || length <= 65535 {
            guard udpLength >= 8, udpLength <= length else { return .invalid(.badHeader) }
        }
        let key = FlowKey(source: source, destination: destination, sourcePort: bytes.bigEndianUInt16(at: offset),
                          destinationPort: bytes.bigEndianUInt16(at: offset + 2),
                          protocolNumber: TrackedProtocol.udpNumber)
        if key.isLand { return .invalid(.land) }
        return .datagram(Datagram(key: key, kind: .udp, wireLength: wireLength))
    }

    // MARK: ICMP (RFC 792) and ICMPv6 (RFC 4443)

    static func parseICMP(_ bytes: UnsafeRawBufferPointer, offset: Int, length: Int, source: IPAddress,
                          destination: IPAddress, wireLength: Int, ipv6: Bool, hopLimit: UInt8) -> ParsedPacket {
        // Type, code, checksum and the 4 bytes every message has (identifier and sequence of
        // an echo, unused or MTU of an error).
        guard length >= 8 else { return .invalid(.truncated) }
        guard offset + 8 <= bytes.count else { return .invalid(.truncated) }
        let type = bytes[offset], code = bytes[offset + 1]
        if let echo = ICMPEcho.key(source: source, destination: destination, ipv6: ipv6, type: type, code: code,
                                   identifier: bytes.bigEndianUInt16(at: offset + 4)) {
            // Found by the packet-tracking fuzzer: an echo from a host to itself whose id equals
            // its type/code marker has a key that is its own reverse.
            if echo.key.isLand { return .invalid(.land) }
            return .datagram(Datagram(key: echo.key, kind: echo.kind, wireLength: wireLength))
        }
        if isError(type: type, ipv6: ipv6) {
            return parseQuoted(bytes, from: offset + 8, to: offset + length, source: source, destination: destination,
                               type: type, code: code, ipv6: ipv6, wireLength: wireLength)
        }
        if ipv6 && isNeighbourDiscovery(type: type, hopLimit: hopLimit) {
            return .neighbourDiscovery(source: source, destination: destination)
        }
        return .other(protocolNumber: ipv6 ? TrackedProtocol.icmp6Number : TrackedProtocol.icmpNumber,
                      source: source, destination: destination)
    }

    /// The error types, as the kernel's icmp_is_err (destination unreachable, source quench,
    /// redirect, time exceeded, parameter problem) and icmpv6_error (every type below 128,
    /// RFC 4443 2.1).
    static func isError(type: UInt8, ipv6: Bool) -> Bool {
        if ipv6 { return type < 128 }
        switch type {
        case 3, 4, 5, 11, 12: return true
        default: return false
        }
    }

    /// Neighbour discovery must arrive with hop limit 255 (RFC 4861 6.1, 7.1, 8.1: proof that
    /// it was not forwarded) and MLD with hop limit 1 (RFC 2710 3, RFC 3810 5); a receiver
    /// discards anything else, so seqwall leaves anything else to the `default` lines.
    static func isNeighbourDiscovery(type: UInt8, hopLimit: UInt8) -> Bool {
        switch type {
        case 133...137: return hopLimit == 255
        case 130, 131, 132, 143: return hopLimit == 1
        default: return false
        }
    }

    /// Why the quoted packet's bytes up to `needed` cannot be read: the error quotes too little
    /// (`bad-header`), or the copy the kernel gave seqwall stops short (`truncated`).
    static func quoteShortfall(_ needed: Int, end: Int, captured: Int) -> DropReason? {
        if needed > end { return .badHeader }
        if needed > captured { return .truncated }
        return nil
    }

    /// The packet an error quotes (RFC 792: its IP header and at least the first 8 bytes of
    /// its data; RFC 4443 2.4(c): as much as fits), from `start` up to `end` (the error's own
    /// end). Its length fields describe the original packet, not the quote, so only what is
    /// read must be there. A quoted fragment other than the first has no ports: it matches no
    /// connection.
    static func parseQuoted(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int, source: IPAddress,
                            destination: IPAddress, type: UInt8, code: UInt8, ipv6: Bool,
                            wireLength: Int) -> ParsedPacket {
        let quotedSource: IPAddress, quotedDestination: IPAddress
        let protocolNumber: UInt8
        let offset: Int
        if ipv6 {
            if let reason = quoteShortfall(start + 40, end: end, captured: bytes.count) { return .invalid(reason) }
            guard bytes[start] >> 4 == 6 else { return .invalid(.badHeader) }
            quotedSource = IPAddress(high: bytes.bigEndianUInt64(at: start + 8), low: bytes.bigEndianUInt64(at: start + 16))
            quotedDestination = IPAddress(high: bytes.bigEndianUInt64(at: start + 24),
                                          low: bytes.bigEndianUInt64(at: start + 32))
            if quotedSource.isIPv4 || quotedDestination.isIPv4 { return .invalid(.badHeader) }
            // Only the first fragment of a datagram quotes its transport header.
            switch walkExtensionHeaders(bytes, from: start + 40, nextHeader: bytes[start + 6], end: end,
                                        stoppingAt: 0xFFF8) {
            case .upperLayer(let quotedProtocol, let quotedOffset):
                protocolNumber = quotedProtocol
                offset = quotedOffset
            case .fragment:
                return .invalid(.icmpUnrelated)
            case .invalid(let reason):
                return .invalid(reason)
            }
        } else {
            if let reason = quoteShortfall(start + 20, end: end, captured: bytes.count) { return .invalid(reason) }
            let headerLength = Int(bytes[start] & 0x0F) * 4
            guard bytes[start] >> 4 == 4, headerLength >= 20 else { return .invalid(.badHeader) }
            if let reason = quoteShortfall(start + headerLength, end: end, captured: bytes.count) {
                return .invalid(reason)
            }
            if bytes.bigEndianUInt16(at: start + 6) & 0x1FFF != 0 { return .invalid(.icmpUnrelated) }
            quotedSource = IPAddress(ipv4: bytes.bigEndianUInt32(at: start + 12))
            quotedDestination = IPAddress(ipv4: bytes.bigEndianUInt32(at: start + 16))
            protocolNumber = bytes[start + 9]
            offset = start + headerLength
        }
        // The 8 bytes of transport header every error quotes: the ports of TCP and UDP, the
        // sequence number of TCP, type, code and identifier of an ICMP echo.
        if let reason = quoteShortfall(offset + 8, end: end, captured: bytes.count) { return .invalid(reason) }
        let quoted: FlowKey
        var sequence: UInt32 = 0
        switch protocolNumber {
        case TrackedProtocol.tcpNumber, TrackedProtocol.udpNumber:
            quoted = FlowKey(source: quotedSource, destination: quotedDestination,
                             sourcePort: bytes.bigEndianUInt16(at: offset),
                             destinationPort: bytes.bigEndianUInt16(at: offset + 2), protocolNumber: protocolNumber)
            if protocolNumber == TrackedProtocol.tcpNumber { sequence = bytes.bigEndianUInt32(at: offset + 4) }
        case TrackedProtocol.icmpNumber where !ipv6, TrackedProtocol.icmp6Number where ipv6:
            // An error about an echo; never one about another error (RFC 1122 3.2.2, RFC 4443 2.4(e)).
            guard let echo = ICMPEcho.key(source: quotedSource, destination: quotedDestination, ipv6: ipv6,
                                          type: bytes[offset], code: bytes[offset + 1],
                                          identifier: bytes.bigEndianUInt16(at: offset + 4)) else {
                return .invalid(.icmpUnrelated)
            }
            quoted = echo.key
        default:
            return .invalid(.icmpUnrelated)
        }
        return .icmpError(ICMPError(source: source, destination: destination, type: type, code: code, quoted: quoted,
                                    quotedSequence: sequence, wireLength: wireLength))
    }

    // MARK: TCP (RFC 9293 3.1)

    /// Writes the segment into `segment`; returns why it is invalid, or nil.
    // Always inlined: on every TCP packet; a call would spill the header offsets the caller holds in
    // registers.
    @inline(__always)
    static func parseTCP(_ bytes: UnsafeRawBufferPointer, _ network: NetworkLayer,
                         into segment: inout TCPSegment) -> DropReason? {
        let offset = network.offset, length = network.length
        let source = network.source, destination = network.destination
        // The IP packet cannot even hold the fixed TCP header.
        guard length >= 20 else { return .truncated }
        guard offset + 20 <= bytes.count else { return .truncated }
        let headerLength = Int(bytes[offset + 12] >> 4) * 4
        guard headerLength >= 20, headerLength <= length else { return .badHeader }
        guard offset + headerLength <= bytes.count else { return .truncated }

        let sourcePort = bytes.bigEndianUInt16(at: offset)
        let destinationPort = bytes.bigEndianUInt16(at: offset + 2)
        if source == destination && sourcePort == destinationPort { return .land }

        guard parseOptions(bytes, from: offset + 20, to: offset + headerLength, into: &segment.options) else {
            return .badOptions
        }
        segment.source = source
        segment.destination = destination
        segment.sourcePort = sourcePort
        segment.destinationPort = destinationPort
        segment.sequence = bytes.bigEndianUInt32(at: offset + 4)
        segment.acknowledgment = bytes.bigEndianUInt32(at: offset + 8)
        segment.flags = TCPFlags(rawValue: bytes[offset + 13])
        segment.window = bytes.bigEndianUInt16(at: offset + 14)
        segment.payloadLength = length - headerLength
        segment.wireLength = network.wireLength
        return nil
    }

    /// Reads the option list into `options`, which starts afresh; false when an option's length
    /// is below 2 or runs past the header. Known options with a wrong length are skipped, as
    /// Linux's tcp_parse_options does.
    static func parseOptions(_ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int,
                             into options: inout TCPOptions) -> Bool {
        options = TCPOptions()
        // What nearly every segment of an established flow carries (Linux, the BSDs): NOP, NOP
        // and the timestamp option, nothing else (RFC 7323 appendix A). One comparison instead
        // of the loop; well-formed by construction, so no bad-options check is skipped.
        if end - start == 12 && bytes.bigEndianUInt32(at: start) == 0x0101_080A {
            options.hasTimestamps = true
            options.timestampValue = bytes.bigEndianUInt32(at: start + 4)
            options.timestampEcho = bytes.bigEndianUInt32(at: start + 8)
            return true
        }
        var index = start
        while index < end {
            let kind = bytes[index]
            if kind == 0 { break }              // End of option list
            if kind == 1 { index += 1; continue } // No-operation
            guard index + 2 <= end else { return false }
            let length = Int(bytes[index + 1])
            guard length >= 2, index + length <= end else { return false }
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
        return true
    }
}
