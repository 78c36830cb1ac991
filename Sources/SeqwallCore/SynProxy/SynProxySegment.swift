/// The TCP segments the SYN proxy writes itself, as whole IP packets into a caller's buffer (no
/// allocation), checksums filled in: the SYN-ACK with the cookie to the client, the SYN and the
/// ACK to the server in the client's name, and the window update that tells the client the
/// server's window. Options are laid out as the kernel's synproxy_build_options: MSS, then
/// SACK-permitted sharing a word with the timestamps (or padded alone), then window scale.
public enum SynProxySegment {
    /// The largest packet: an IPv6 header and a TCP header with every option.
    public static let capacity = 40 + 20 + 20

    /// Bytes of options `options` takes, a multiple of four.
    static func optionsLength(_ options: TCPOptions) -> Int {
        var length = options.mss == 0 ? 0 : 4
        if options.hasTimestamps { length += 12 } else if options.sackPermitted { length += 4 }
        if options.hasWindowScale { length += 4 }
        return length
    }

    /// Writes `segment` (no payload; its options: MSS when nonzero, window scale, SACK-permitted,
    /// timestamps) into `buffer`, at least `capacity` bytes, and returns the packet's length:
    /// IPv4 with DF and id 0, or IPv6 with traffic class and flow label 0, hop limit 64.
    public static func write(_ segment: TCPSegment, into buffer: UnsafeMutableRawPointer) -> Int {
        let options = segment.options
        let ipv4 = segment.source.isIPv4
        let headerLength = ipv4 ? 20 : 40
        let tcpLength = 20 + optionsLength(options)
        RejectAnswer.writeIPHeader(into: buffer, ipv4: ipv4, source: segment.source, destination: segment.destination,
                                   protocolNumber: TrackedProtocol.tcpNumber, payloadLength: tcpLength, tos: 0,
                                   dontFragment: true)
        let tcp = buffer + headerLength
        tcp.storeBigEndian(segment.sourcePort, at: 0)
        tcp.storeBigEndian(segment.destinationPort, at: 2)
        tcp.storeBigEndian(segment.sequence, at: 4)
        tcp.storeBigEndian(segment.acknowledgment, at: 8)
        tcp.storeBytes(of: UInt8(tcpLength / 4) << 4, toByteOffset: 12, as: UInt8.self)
        tcp.storeBytes(of: segment.flags.rawValue, toByteOffset: 13, as: UInt8.self)
        tcp.storeBigEndian(segment.window, at: 14)
        tcp.storeBigEndian(UInt32(0), at: 16)   // checksum (below) and urgent pointer
        var at = 20
        func word(_ value: UInt32) {
            tcp.storeBigEndian(value, at: at)
            at += 4
        }
        // Option kinds and lengths: RFC 9293 3.2 (MSS 2/4), RFC 2018 (SACK-permitted 4/2),
        // RFC 7323 (window scale 3/3, timestamps 8/10); NOP is 1.
        if options.mss != 0 { word(0x0204_0000 | UInt32(options.mss)) }
        if options.hasTimestamps {
            word(options.sackPermitted ? 0x0402_080A : 0x0101_080A)
            word(options.timestampValue)
            word(options.timestampEcho)
        } else if options.sackPermitted {
            word(0x0101_0402)
        }
        if options.hasWindowScale { word(0x0103_0300 | UInt32(options.windowScale)) }
        let sum = RejectAnswer.pseudoHeaderSum(source: segment.source, destination: segment.destination,
                                               protocolNumber: TrackedProtocol.tcpNumber, length: tcpLength)
        let body = RejectAnswer.onesComplementSum(UnsafeRawPointer(tcp), count: tcpLength)
        tcp.storeBigEndian(RejectAnswer.finish(sum &+ body), at: 16)
        return headerLength + tcpLength
    }
}
