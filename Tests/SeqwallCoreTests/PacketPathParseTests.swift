import SeqwallTestSupport
@testable import SeqwallCore
import Testing

/// The tracker's packet path parses with PacketParser.parse(_:wireLength:network:tcp:), which
/// writes a TCP segment in place; everything else reads PacketParser.parse(_:wireLength:).
/// Both must say the same about every packet: the same segment, the same other packet, the
/// same drop reason.
@Suite("Packet-path parse agrees with the general parse")
struct PacketPathParseTests {
    /// What the packet path makes of `bytes`, as a ParsedPacket.
    static func packetPath(_ bytes: UnsafeRawBufferPointer, wireLength: Int) -> ParsedPacket {
        var network = PacketParser.NetworkLayer()
        var segment = TCPSegment()
        switch PacketParser.parse(bytes, wireLength: wireLength, network: &network, tcp: &segment) {
        case .tcp: return .tcp(segment)
        case .invalid(let reason): return .invalid(reason)
        case .otherTransport: return PacketParser.parseTransport(bytes, network)
        }
    }

    static func expectAgreement(_ bytes: [UInt8], captured: Int, wireLength: Int,
                                sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        let cut = Array(bytes.prefix(captured))
        cut.withUnsafeBytes { raw in
            let general = PacketParser.parse(raw, wireLength: wireLength)
            let fast = packetPath(raw, wireLength: wireLength)
            #expect(fast == general, "\(cut.count) of \(bytes.count) bytes, wire length \(wireLength)",
                    sourceLocation: sourceLocation)
        }
    }

    /// Well-formed packets of both families with the options Linux sends, and other protocols.
    static func seeds() -> [[UInt8]] {
        var packets: [[UInt8]] = []
        for family in Family.allCases {
            var syn = PacketBuilder(source: family.client, destination: family.server)
            syn.options = [.mss(1460), .sackPermitted, .timestamps(value: 1, echo: 0), .noOperation, .windowScale(7)]
            packets.append(syn.build())
            var data = PacketBuilder(source: family.client, destination: family.server)
            data.flags = [.ack, .psh]
            data.sequence = 1000
            data.acknowledgment = 2000
            data.options = [.noOperation, .noOperation, .timestamps(value: 5, echo: 6)]
            data.payloadLength = 100
            packets.append(data.build())
            var sack = data
            sack.options = [.noOperation, .noOperation, .sack([(10, 20), (30, 40)])]
            packets.append(sack.build())
            var udp = PacketBuilder(source: family.client, destination: family.server)
            udp.protocolNumber = 17
            udp.transport = [0x9C, 0x40, 0x00, 0x35, 0x00, 0x0C, 0x00, 0x00, 1, 2, 3, 4]
            packets.append(udp.build())
            var icmp = PacketBuilder(source: family.client, destination: family.server)
            icmp.protocolNumber = family == .ipv4 ? 1 : 58
            icmp.transport = [family == .ipv4 ? 8 : 128, 0, 0, 0, 0x12, 0x34, 0, 1]
            packets.append(icmp.build())
            var other = PacketBuilder(source: family.client, destination: family.server)
            other.protocolNumber = 47
            other.transport = [0, 0, 0x08, 0x00]
            packets.append(other.build())
        }
        var v6 = PacketBuilder(source: Family.ipv6.client, destination: Family.ipv6.server)
        v6.extensionHeaders = [.hopByHop(), .destinationOptions(units: 1), .fragment()]
        packets.append(v6.build())
        return packets
    }

    // Every prefix of each seed as the capture, with its real length on the wire and with more.
    @Test func everyCaptureLengthOfWellFormedPackets() {
        for packet in Self.seeds() {
            for captured in 0...packet.count {
                Self.expectAgreement(packet, captured: captured, wireLength: packet.count)
                Self.expectAgreement(packet, captured: captured, wireLength: packet.count + 1448)
            }
        }
    }

    // Seeded random corruption: a few bytes of a seed overwritten, whole random packets, and
    // random wire lengths (below, at and far above the capture: BIG TCP).
    @Test func randomlyCorruptedPackets() {
        var generator = SplitMix64(seed: 0x5EC0_A11)
        let seeds = Self.seeds()
        for round in 0..<20_000 {
            var packet: [UInt8]
            if round % 10 == 0 {
                packet = (0..<Int.random(in: 0...120, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
                if !packet.isEmpty { packet[0] = (round % 20 == 0 ? 0x45 : 0x60) | (packet[0] & 0x0F) }
            } else {
                packet = seeds[Int.random(in: 0..<seeds.count, using: &generator)]
                for _ in 0..<Int.random(in: 1...3, using: &generator) where !packet.isEmpty {
                    packet[Int.random(in: 0..<packet.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                }
            }
            let wireLength = [packet.count, Int.random(in: 0...packet.count + 64, using: &generator), 70_000][round % 3]
            Self.expectAgreement(packet, captured: packet.count, wireLength: wireLength)
        }
    }
}
