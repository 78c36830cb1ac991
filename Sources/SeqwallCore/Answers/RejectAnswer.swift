/// The answer seqwall sends itself for a packet a `reject` rule refused: a TCP RST for a TCP
/// segment, an ICMP or ICMPv6 port unreachable for a UDP datagram. Built as whole IP packets
/// into a caller's buffer (no allocation), with every checksum filled in, the way the kernel's
/// REJECT target builds them (nf_send_reset and nf_send_reset6 for the RST, icmp_send and
/// icmpv6_send through nf_send_unreach and nf_send_unreach6 for the unreachable).
public enum RejectAnswer {
    /// Bytes a buffer must hold for any answer: the longest is an ICMPv6 error quoting as much
    /// as RFC 4443 2.4 (c) allows, 1,280 bytes in all.
    public static let capacity = 1280
    /// The TTL and hop limit of an answer: the kernel's defaults (net.ipv4.ip_default_ttl and
    /// net.ipv6.conf.*.hop_limit), which nf_send_reset takes from the route (ip4_dst_hoplimit).
    public static let hopLimit: UInt8 = 64
    /// An ICMP error's IP packet is at most 576 bytes (RFC 1812 4.3.2.3, icmp_send's `room`):
    /// 548 bytes of the refused datagram after the 20-byte IP and 8-byte ICMP headers.
    public static let ipv4QuoteLimit = 576 - 20 - 8
    /// An ICMPv6 error must not exceed the minimum IPv6 MTU (RFC 4443 2.4 (c)).
    public static let ipv6QuoteLimit = 1280 - 40 - 8

    /// ICMP destination unreachable, port unreachable (RFC 792).
    public static let icmpUnreachable: UInt8 = 3, icmpPortUnreachable: UInt8 = 3
    /// ICMPv6 destination unreachable, port unreachable (RFC 4443 3.1).
    public static let icmp6Unreachable: UInt8 = 1, icmp6PortUnreachable: UInt8 = 4

    /// Writes the RST that answers `segment` (RFC 9293 3.10.7.1, a segment for which no
    /// connection exists): from the segment's destination to its source, `<SEQ=SEG.ACK><CTL=RST>`
    /// when it carries an ACK, else `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`, SEG.LEN
    /// counting SYN and FIN. No options, window 0; IPv4 with DF and id 0, IPv6 with traffic
    /// class and flow label 0 (nf_reject_iphdr_put, nf_reject_ip6hdr_put). Returns the packet's
    /// length, or 0 when no answer is due: never an RST for an RST, nor to or from an address
    /// that is not unicast (nf_send_reset6, and nf_send_reset's broadcast and multicast test).
    public static func reset(answering segment: TCPSegment, into buffer: UnsafeMutableRawPointer) -> Int {
        guard !segment.flags.contains(.rst),
              isUnicast(segment.source), isUnicast(segment.destination) else { return 0 }
        let ipv4 = segment.source.isIPv4
        let headerLength = ipv4 ? 20 : 40
        let length = headerLength + 20
        writeIPHeader(into: buffer, ipv4: ipv4, source: segment.destination, destination: segment.source,
                      protocolNumber: TrackedProtocol.tcpNumber, payloadLength: 20, tos: 0, dontFragment: true)
        let tcp = buffer + headerLength
        tcp.storeBigEndian(segment.destinationPort, at: 0)
        tcp.storeBigEndian(segment.sourcePort, at: 2)
        var flags = TCPFlags.rst
        if segment.flags.contains(.ack) {
            tcp.storeBigEndian(segment.acknowledgment, at: 4)
            tcp.storeBigEndian(UInt32(0), at: 8)
        } else {
            let length = UInt32(truncatingIfNeeded: segment.payloadLength)
                &+ (segment.flags.contains(.syn) ? 1 : 0) &+ (segment.flags.contains(.fin) ? 1 : 0)
            tcp.storeBigEndian(UInt32(0), at: 4)
            tcp.storeBigEndian(segment.sequence &+ length, at: 8)
            flags.insert(.ack)
        }
        tcp.storeBytes(of: UInt8(5 << 4), toByteOffset: 12, as: UInt8.self)
        tcp.storeBytes(of: flags.rawValue, toByteOffset: 13, as: UInt8.self)
        tcp.storeBigEndian(UInt16(0), at: 14)   // window
        tcp.storeBigEndian(UInt16(0), at: 16)   // checksum, below
        tcp.storeBigEndian(UInt16(0), at: 18)   // urgent pointer
        let sum = pseudoHeaderSum(source: segment.destination, destination: segment.source,
                                  protocolNumber: TrackedProtocol.tcpNumber, length: 20)
        tcp.storeBigEndian(finish(sum &+ onesComplementSum(UnsafeRawPointer(tcp), count: 20)), at: 16)
        return length
    }

    /// Writes the port unreachable that answers the UDP datagram in `packet` (what the queue
    /// copied, from its IP header on; `wireLength` its real length): an ICMP destination
    /// unreachable, code 3, for IPv4 (RFC 792, RFC 1812 4.3.2), an ICMPv6 destination
    /// unreachable, code 4, for IPv6 (RFC 4443 3.1), addressed to the datagram's source and
    /// quoting the datagram from its IP header on, as much as was copied and the limits allow.
    ///
    /// `source` is the answer's source address: the datagram's destination when it was
    /// addressed to this host (icmp_send, icmpv6_send); nil when the kernel is to choose it by
    /// the route back (a forwarded datagram), written as 0.0.0.0 or :: (the IPv4 raw socket
    /// fills a zero source in, and the ICMPv6 socket sets source and checksum itself).
    /// The IPv4 TOS is the datagram's with precedence "internetwork control" (icmp_send).
    /// Returns the packet's length, or 0 when no answer is due: the datagram's source or
    /// destination is not unicast (icmp_send, icmpv6_send never answer those).
    public static func portUnreachable(quoting packet: UnsafeRawBufferPointer, wireLength: Int, source: IPAddress?,
                                       into buffer: UnsafeMutableRawPointer) -> Int {
        guard packet.count >= 1 else { return 0 }
        let ipv4 = packet[0] >> 4 == 4
        guard ipv4 ? packet.count >= 20 : (packet[0] >> 4 == 6 && packet.count >= 40) else { return 0 }
        let original: (source: IPAddress, destination: IPAddress)
        if ipv4 {
            original = (IPAddress(ipv4: packet.bigEndianUInt32(at: 12)), IPAddress(ipv4: packet.bigEndianUInt32(at: 16)))
        } else {
            original = (IPAddress(high: packet.bigEndianUInt64(at: 8), low: packet.bigEndianUInt64(at: 16)),
                        IPAddress(high: packet.bigEndianUInt64(at: 24), low: packet.bigEndianUInt64(at: 32)))
        }
        guard isUnicast(original.source), isUnicast(original.destination) else { return 0 }
        let headerLength = ipv4 ? 20 : 40
        let quoted = min(packet.count, max(wireLength, 0), ipv4 ? ipv4QuoteLimit : ipv6QuoteLimit)
        let messageLength = 8 + quoted
        let from = source ?? (ipv4 ? IPAddress(ipv4: 0) : IPAddress(high: 0, low: 0))
        // RT_TOS(tos) | IPTOS_PREC_INTERNETCONTROL, as icmp_send sets it for an error.
        let tos: UInt8 = ipv4 ? (packet[1] & 0x1E) | 0xC0 : 0
        writeIPHeader(into: buffer, ipv4: ipv4, source: from, destination: original.source,
                      protocolNumber: ipv4 ? TrackedProtocol.icmpNumber : TrackedProtocol.icmp6Number,
                      payloadLength: messageLength, tos: tos, dontFragment: false)
        let icmp = buffer + headerLength
        icmp.storeBytes(of: ipv4 ? icmpUnreachable : icmp6Unreachable, toByteOffset: 0, as: UInt8.self)
        icmp.storeBytes(of: ipv4 ? icmpPortUnreachable : icmp6PortUnreachable, toByteOffset: 1, as: UInt8.self)
        icmp.storeBigEndian(UInt16(0), at: 2)
        icmp.storeBigEndian(UInt32(0), at: 4)   // unused (RFC 792, RFC 4443 3.1)
        (icmp + 8).copyMemory(from: packet.baseAddress!, byteCount: quoted)
        // ICMPv6's checksum covers a pseudo-header (RFC 4443 2.3), ICMP's only the message.
        var sum = onesComplementSum(UnsafeRawPointer(icmp), count: messageLength)
        if !ipv4 {
            sum &+= pseudoHeaderSum(source: from, destination: original.source,
                                    protocolNumber: TrackedProtocol.icmp6Number, length: messageLength)
        }
        icmp.storeBigEndian(finish(sum), at: 2)
        return headerLength + messageLength
    }

    // MARK: Headers and checksums

    /// An IPv4 header (RFC 791; id 0, checksum filled in) or an IPv6 header (RFC 8200).
    static func writeIPHeader(into buffer: UnsafeMutableRawPointer, ipv4: Bool, source: IPAddress,
                              destination: IPAddress, protocolNumber: UInt8, payloadLength: Int, tos: UInt8,
                              dontFragment: Bool) {
        if ipv4 {
            buffer.storeBytes(of: UInt8(0x45), toByteOffset: 0, as: UInt8.self)
            buffer.storeBytes(of: tos, toByteOffset: 1, as: UInt8.self)
            buffer.storeBigEndian(UInt16(20 + payloadLength), at: 2)
            buffer.storeBigEndian(UInt16(0), at: 4)
            buffer.storeBigEndian(UInt16(dontFragment ? 0x4000 : 0), at: 6)
            buffer.storeBytes(of: hopLimit, toByteOffset: 8, as: UInt8.self)
            buffer.storeBytes(of: protocolNumber, toByteOffset: 9, as: UInt8.self)
            buffer.storeBigEndian(UInt16(0), at: 10)
            buffer.storeBigEndian(source.ipv4Value, at: 12)
            buffer.storeBigEndian(destination.ipv4Value, at: 16)
            buffer.storeBigEndian(finish(onesComplementSum(UnsafeRawPointer(buffer), count: 20)), at: 10)
        } else {
            buffer.storeBigEndian(UInt32(0x6000_0000), at: 0)
            buffer.storeBigEndian(UInt16(payloadLength), at: 4)
            buffer.storeBytes(of: protocolNumber, toByteOffset: 6, as: UInt8.self)
            buffer.storeBytes(of: hopLimit, toByteOffset: 7, as: UInt8.self)
            buffer.storeBigEndian(source.high, at: 8)
            buffer.storeBigEndian(source.low, at: 16)
            buffer.storeBigEndian(destination.high, at: 24)
            buffer.storeBigEndian(destination.low, at: 32)
        }
    }

    /// Unicast in the sense icmp_send and nf_send_reset6 ask for: not unspecified, not
    /// multicast, not the IPv4 limited broadcast. A subnet's broadcast address is known only
    /// from the interfaces: the daemon checks it before it sends (LocalBroadcasts).
    static func isUnicast(_ address: IPAddress) -> Bool {
        if address.isIPv4 {
            let value = address.ipv4Value
            return value != 0 && value != 0xFFFF_FFFF && value >> 28 != 0xE
        }
        return !(address.high == 0 && address.low == 0) && address.high >> 56 != 0xFF
    }

    /// The sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 9293 3.1, RFC 8200 8.1), unfolded.
    static func pseudoHeaderSum(source: IPAddress, destination: IPAddress, protocolNumber: UInt8,
                                length: Int) -> UInt32 {
        var sum: UInt32 = 0
        func add(_ value: UInt64) {
            sum &+= UInt32(value >> 48) &+ UInt32((value >> 32) & 0xFFFF) &+ UInt32((value >> 16) & 0xFFFF)
                &+ UInt32(value & 0xFFFF)
        }
        if source.isIPv4 {
            add(UInt64(source.ipv4Value))
            add(UInt64(destination.ipv4Value))
        } else {
            add(source.high); add(source.low); add(destination.high); add(destination.low)
        }
        add(UInt64(length))
        return sum &+ UInt32(protocolNumber)
    }

    /// The 16-bit one's complement sum of `count` bytes (RFC 1071), unfolded.
    static func onesComplementSum(_ bytes: UnsafeRawPointer, count: Int) -> UInt32 {
        var sum: UInt32 = 0
        var index = 0
        while index + 1 < count {
            sum &+= UInt32(bytes.load(fromByteOffset: index, as: UInt8.self)) << 8
                | UInt32(bytes.load(fromByteOffset: index + 1, as: UInt8.self))
            index += 2
        }
        if index < count { sum &+= UInt32(bytes.load(fromByteOffset: index, as: UInt8.self)) << 8 }
        return sum
    }

    /// Folds a sum to 16 bits and complements it: the checksum field's value.
    static func finish(_ sum: UInt32) -> UInt16 {
        var folded = sum
        while folded > 0xFFFF { folded = (folded & 0xFFFF) &+ (folded >> 16) }
        return ~UInt16(folded)
    }
}

extension UnsafeMutableRawPointer {
    func storeBigEndian<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
    }
}
