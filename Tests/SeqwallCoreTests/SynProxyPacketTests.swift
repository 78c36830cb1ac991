import SeqwallTestSupport
@testable import SeqwallCore
import Testing

/// The packets the SYN proxy writes (SynProxySegment) and the translation of a proxied
/// connection's packets (SynProxyTranslation), each compared byte for byte with a packet
/// PacketBuilder builds from scratch, checksums computed afresh over the whole segment.
@Suite("SYN proxy packets")
struct SynProxyPacketTests {
    static let client = IPAddress(ipv4: 0xC000_0201)      // 192.0.2.1
    static let server = IPAddress(ipv4: 0xCB00_7107)      // 203.0.113.7
    static let client6 = IPAddress(high: 0x2001_0DB8_0000_0000, low: 1)
    static let server6 = IPAddress(high: 0x2001_0DB8_0000_0001, low: 7)

    static func endpoints(_ ipv4: Bool) -> (IPAddress, IPAddress) {
        ipv4 ? (client, server) : (client6, server6)
    }

    func written(_ segment: TCPSegment) -> [UInt8] {
        var buffer = [UInt8](repeating: 0xAA, count: SynProxySegment.capacity)
        let length = buffer.withUnsafeMutableBytes { SynProxySegment.write(segment, into: $0.baseAddress!) }
        return Array(buffer[..<length])
    }

    @Test(arguments: [true, false])
    func synAckWithEveryOption(ipv4: Bool) throws {
        let (client, server) = Self.endpoints(ipv4)
        var options = TCPOptions()
        options.mss = 1460
        options.hasWindowScale = true
        options.windowScale = 7
        options.sackPermitted = true
        options.hasTimestamps = true
        options.timestampValue = 0x1234_5640
        options.timestampEcho = 99
        let segment = TCPSegment(source: server, destination: client, sourcePort: 80, destinationPort: 40000,
                                 sequence: 0xDEAD_BEEF, acknowledgment: 1001, flags: [.syn, .ack], window: 0,
                                 options: options)
        let bytes = written(segment)
        var builder = PacketBuilder(source: server, destination: client)
        builder.sourcePort = 80
        builder.destinationPort = 40000
        builder.sequence = 0xDEAD_BEEF
        builder.acknowledgment = 1001
        builder.flags = [.syn, .ack]
        builder.window = 0
        builder.options = [.mss(1460), .sackPermitted, .timestamps(value: 0x1234_5640, echo: 99), .noOperation,
                           .windowScale(7)]
        let headerLength = ipv4 ? 20 : 40
        #expect(Array(bytes[headerLength...]) == builder.tcpBytes())
        // The parser reads back what was meant, IP header included.
        let parsed = bytes.withUnsafeBytes { PacketParser.parse($0, wireLength: bytes.count) }
        guard case .tcp(let back) = parsed else {
            Issue.record("not parsed as TCP: \(parsed)")
            return
        }
        #expect(back.source == server && back.destination == client && back.options == options)
    }

    @Test(arguments: [true, false])
    func synWithSACKOnlyAndNoTimestamps(ipv4: Bool) {
        let (client, server) = Self.endpoints(ipv4)
        var options = TCPOptions()
        options.mss = 1220
        options.sackPermitted = true
        let segment = TCPSegment(source: client, destination: server, sourcePort: 40000, destinationPort: 80,
                                 sequence: 1000, acknowledgment: 0, flags: .syn, window: 64240, options: options)
        var builder = PacketBuilder(source: client, destination: server)
        builder.sequence = 1000
        builder.window = 64240
        builder.options = [.mss(1220), .noOperation, .noOperation, .sackPermitted]
        #expect(Array(written(segment)[(ipv4 ? 20 : 40)...]) == builder.tcpBytes())
    }

    /// A data segment of a proxied connection, as `side` sends it, in that side's numbers.
    func segment(ipv4: Bool, fromClient: Bool, sequence: UInt32, acknowledgment: UInt32, sack: [(UInt32, UInt32)],
                 timestamps: (UInt32, UInt32)) -> PacketBuilder {
        let (client, server) = Self.endpoints(ipv4)
        var builder = fromClient ? PacketBuilder(source: client, destination: server)
            : PacketBuilder(source: server, destination: client)
        if !fromClient { (builder.sourcePort, builder.destinationPort) = (80, 40000) }
        builder.sequence = sequence
        builder.acknowledgment = acknowledgment
        builder.flags = [.ack, .psh]
        builder.window = 502
        builder.payloadLength = 333
        builder.options = [.noOperation, .noOperation, .timestamps(value: timestamps.0, echo: timestamps.1)]
        if !sack.isEmpty { builder.options += [.noOperation, .noOperation, .sack(sack)] }
        return builder
    }

    func translated(_ builder: PacketBuilder, fromClient: Bool, sequenceOffset: UInt32, timestampOffset: UInt32,
                    windowScale: (UInt8, UInt8) = (0, 0)) -> (Bool, [UInt8]) {
        var bytes = builder.build()
        let ok = bytes.withUnsafeMutableBytes {
            SynProxyTranslation.translate($0, tcpOffset: builder.isIPv6 ? 40 : 20, fromClient: fromClient,
                                          sequenceOffset: sequenceOffset, timestampOffset: timestampOffset,
                                          windowScale: (server: windowScale.0, client: windowScale.1))
        }
        return (ok, bytes)
    }

    static let offsets: [(UInt32, UInt32)] = [(0x1000_0000, 12345), (0xFFFF_FFF0, 0xFFFF_0000), (1, 0)]

    @Test(arguments: [true, false])
    func clientToServerAcknowledgmentSACKAndEcho(ipv4: Bool) {
        for (sequenceOffset, timestampOffset) in Self.offsets {
            let cookie: UInt32 = 0xFFFF_FF00
            let before = segment(ipv4: ipv4, fromClient: true, sequence: 1001, acknowledgment: cookie &+ 1,
                                 sack: [(cookie &+ 500, cookie &+ 900), (cookie &+ 1000, cookie &+ 1400)],
                                 timestamps: (777, 0x8000_0040))
            let after = segment(ipv4: ipv4, fromClient: true, sequence: 1001,
                                acknowledgment: cookie &+ 1 &+ sequenceOffset,
                                sack: [(cookie &+ 500 &+ sequenceOffset, cookie &+ 900 &+ sequenceOffset),
                                       (cookie &+ 1000 &+ sequenceOffset, cookie &+ 1400 &+ sequenceOffset)],
                                timestamps: (777, 0x8000_0040 &+ timestampOffset))
            let (ok, bytes) = translated(before, fromClient: true, sequenceOffset: sequenceOffset,
                                         timestampOffset: timestampOffset)
            #expect(ok)
            #expect(bytes == after.build(), "offsets \(sequenceOffset) \(timestampOffset)")
        }
    }

    @Test(arguments: [true, false])
    func serverToClientSequenceAndValue(ipv4: Bool) {
        for (sequenceOffset, timestampOffset) in Self.offsets {
            let serverISN: UInt32 = 0x0000_0100
            // The server's SACK blocks cover the client's bytes: the same on both halves.
            let before = segment(ipv4: ipv4, fromClient: false, sequence: serverISN &+ 1, acknowledgment: 5001,
                                 sack: [(6000, 7000)], timestamps: (0x4000_0000, 777))
            let after = segment(ipv4: ipv4, fromClient: false, sequence: serverISN &+ 1 &- sequenceOffset,
                                acknowledgment: 5001, sack: [(6000, 7000)],
                                timestamps: (0x4000_0000 &- timestampOffset, 777))
            let (ok, bytes) = translated(before, fromClient: false, sequenceOffset: sequenceOffset,
                                         timestampOffset: timestampOffset)
            #expect(ok)
            #expect(bytes == after.build(), "offsets \(sequenceOffset) \(timestampOffset)")
        }
    }

    /// The server's window, in its own shift, reaches the client in the shift seqwall advertised.
    @Test(arguments: [true, false])
    func serverWindowRescaled(ipv4: Bool) {
        var before = segment(ipv4: ipv4, fromClient: false, sequence: 10, acknowledgment: 20, sack: [],
                             timestamps: (1, 2))
        var after = before
        before.window = 1000        // shift 9: 512,000 bytes
        after.window = 4000         // shift 7
        after.sequence = 10 &- 5
        let (ok, bytes) = translated(before, fromClient: false, sequenceOffset: 5, timestampOffset: 0,
                                     windowScale: (9, 7))
        #expect(ok)
        #expect(bytes == after.build())
        // Larger than the field holds: the most it can say.
        before.window = 0xFFFF
        after.window = 0xFFFF
        let (_, clamped) = translated(before, fromClient: false, sequenceOffset: 5, timestampOffset: 0,
                                      windowScale: (14, 0))
        #expect(clamped == after.build())
    }

    @Test func malformedOptionsLeaveThePacketAlone() {
        var builder = segment(ipv4: true, fromClient: true, sequence: 1, acknowledgment: 2, sack: [],
                              timestamps: (3, 4))
        builder.options = [.raw([8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 5, 30])]
        let original = builder.build()
        let (ok, bytes) = translated(builder, fromClient: true, sequenceOffset: 100, timestampOffset: 100)
        #expect(!ok)
        #expect(bytes == original)
        // A header longer than the bytes held.
        var short = Array(original[..<30])
        let shortOK = short.withUnsafeMutableBytes {
            SynProxyTranslation.translate($0, tcpOffset: 20, fromClient: true, sequenceOffset: 1, timestampOffset: 1)
        }
        #expect(!shortOK)
    }
}
