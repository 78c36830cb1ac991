import SeqwallCore
import SeqwallTestSupport
@testable import SeqwallReplay
import Testing

/// A SYN from the outside client to the inside server, as raw IP.
func synPacket(_ family: Family = .ipv4, port: UInt16 = 8080) -> [UInt8] {
    var builder = PacketBuilder(source: family.client, destination: family.server)
    builder.destinationPort = port
    return builder.build()
}

func decode(_ link: LinkLayer, _ frame: [UInt8]) -> LinkLayer.Content {
    frame.withUnsafeBytes { link.decode($0) }
}

@Suite struct LinkLayerTests {
    @Test func dataLinkTypesMapToLinkLayers() {
        #expect(LinkLayer(dataLinkType: 0) == .null)
        #expect(LinkLayer(dataLinkType: 1) == .ethernet)
        #expect(LinkLayer(dataLinkType: 12) == .raw)
        #expect(LinkLayer(dataLinkType: 101) == .raw)
        #expect(LinkLayer(dataLinkType: 108) == .loop)
        #expect(LinkLayer(dataLinkType: 113) == .linuxCooked)
        #expect(LinkLayer(dataLinkType: 228) == .ipv4)
        #expect(LinkLayer(dataLinkType: 229) == .ipv6)
        #expect(LinkLayer(dataLinkType: 276) == .linuxCooked2)
        // USER0, IEEE 802.11, PPP: not read.
        #expect(LinkLayer(dataLinkType: 147) == nil)
        #expect(LinkLayer(dataLinkType: 105) == nil)
        #expect(LinkLayer(dataLinkType: 9) == nil)
    }

    // MARK: Ethernet

    @Test(arguments: Family.allCases)
    func ethernetCarriesIP(family: Family) {
        #expect(decode(.ethernet, Frames.ethernet(synPacket(family))) == .ip(offset: 14, outgoing: false))
    }

    @Test func vlanTagsAreSkipped() {
        let packet = synPacket()
        let dot1q = Frames.ethernet(packet, type: Frames.etherTypeIPv4, tags: [(0x8100, 5)])
        #expect(decode(.ethernet, dot1q) == .ip(offset: 18, outgoing: false))
        // QinQ: an 802.1ad service tag, then a customer tag.
        let qinq = Frames.ethernet(packet, type: Frames.etherTypeIPv4, tags: [(0x88A8, 100), (0x8100, 5)])
        #expect(decode(.ethernet, qinq) == .ip(offset: 22, outgoing: false))
        let old = Frames.ethernet(synPacket(.ipv6), type: Frames.etherTypeIPv6, tags: [(0x9100, 7), (0x8100, 5)])
        #expect(decode(.ethernet, old) == .ip(offset: 22, outgoing: false))
    }

    @Test func tooManyVLANTagsAreNotIP() {
        let tags = [(UInt16, UInt16)](repeating: (0x8100, 1), count: LinkLayer.maximumVLANTags + 1)
        let frame = Frames.ethernet(synPacket(), type: Frames.etherTypeIPv4, tags: tags)
        guard case .notIP(let what) = decode(.ethernet, frame) else {
            Issue.record("a frame with \(tags.count) tags was read as IP")
            return
        }
        #expect(what.contains("VLAN"))
    }

    @Test func otherEtherTypesAreNotIP() {
        let arp = Frames.ethernet([0, 1, 8, 0, 6, 4, 0, 1] + [UInt8](repeating: 0, count: 20), type: 0x0806)
        #expect(decode(.ethernet, arp) == .notIP("EtherType 0x0806 (ARP)"))
        #expect(decode(.ethernet, Frames.ethernet([1, 2, 3], type: 0x88CC)) == .notIP("EtherType 0x88cc (LLDP)"))
        #expect(decode(.ethernet, Frames.ethernet([1, 2, 3], type: 0x1234)) == .notIP("EtherType 0x1234"))
        // An 802.3 length field instead of a type.
        #expect(decode(.ethernet, Frames.ethernet([0x42, 0x42, 0x03], type: 3)) == .notIP("802.3 frame (length 3)"))
        // ARP behind a VLAN tag.
        let tagged = Frames.ethernet([0, 1], type: 0x0806, tags: [(0x8100, 5)])
        #expect(decode(.ethernet, tagged) == .notIP("EtherType 0x0806 (ARP)"))
    }

    @Test func versionMustMatchEtherType() {
        let frame = Frames.ethernet(synPacket(.ipv6), type: Frames.etherTypeIPv4)
        #expect(decode(.ethernet, frame) == .notIP("IPv4 EtherType with IP version 6"))
    }

    @Test func shortEthernetFramesAreTruncated() {
        let frame = Frames.ethernet(synPacket(), type: Frames.etherTypeIPv4, tags: [(0x8100, 5)])
        // Every cut before the IP header's first byte: inside the MACs, the type, the tag.
        for length in 0...18 {
            #expect(decode(.ethernet, Array(frame.prefix(length))) == .truncated, "cut at \(length)")
        }
        #expect(decode(.ethernet, Array(frame.prefix(19))) == .ip(offset: 18, outgoing: false))
    }

    // MARK: Raw IP

    @Test func rawIPStartsAtZero() {
        for link in [LinkLayer.raw, .ipv4, .ipv6] {
            #expect(decode(link, synPacket()) == .ip(offset: 0, outgoing: false))
            #expect(decode(link, []) == .truncated)
        }
    }

    // MARK: Linux cooked

    @Test func linuxCookedV1() {
        let packet = synPacket()
        #expect(decode(.linuxCooked, Frames.linuxCooked(packet)) == .ip(offset: 16, outgoing: false))
        #expect(decode(.linuxCooked, Frames.linuxCooked(packet, packetType: 4)) == .ip(offset: 16, outgoing: true))
        #expect(decode(.linuxCooked, Frames.linuxCooked(synPacket(.ipv6), type: Frames.etherTypeIPv6))
                == .ip(offset: 16, outgoing: false))
        // libpcap puts a VLAN tag back after the cooked header.
        let tagged = Frames.linuxCooked([0, 5, 0x08, 0x00] + packet, type: 0x8100)
        #expect(decode(.linuxCooked, tagged) == .ip(offset: 20, outgoing: false))
        #expect(decode(.linuxCooked, Frames.linuxCooked([0, 1], type: 0x0806)) == .notIP("EtherType 0x0806 (ARP)"))
        #expect(decode(.linuxCooked, Frames.linuxCooked(packet, hardwareType: 824)) == .notIP("netlink"))
        for length in 0...16 {
            #expect(decode(.linuxCooked, Array(Frames.linuxCooked(packet).prefix(length))) == .truncated)
        }
    }

    @Test func linuxCookedV2() {
        let packet = synPacket()
        #expect(decode(.linuxCooked2, Frames.linuxCooked2(packet)) == .ip(offset: 20, outgoing: false))
        #expect(decode(.linuxCooked2, Frames.linuxCooked2(packet, packetType: 4)) == .ip(offset: 20, outgoing: true))
        // PACKET_OTHERHOST (3) and the rest are not outgoing.
        #expect(decode(.linuxCooked2, Frames.linuxCooked2(packet, packetType: 3)) == .ip(offset: 20, outgoing: false))
        #expect(decode(.linuxCooked2, Frames.linuxCooked2(synPacket(.ipv6), type: Frames.etherTypeIPv6))
                == .ip(offset: 20, outgoing: false))
        let tagged = Frames.linuxCooked2([0, 5, 0x08, 0x00] + packet, type: 0x8100)
        #expect(decode(.linuxCooked2, tagged) == .ip(offset: 24, outgoing: false))
        #expect(decode(.linuxCooked2, Frames.linuxCooked2(packet, hardwareType: 824)) == .notIP("netlink"))
        for length in 0...20 {
            #expect(decode(.linuxCooked2, Array(Frames.linuxCooked2(packet).prefix(length))) == .truncated)
        }
    }

    // MARK: BSD loopback

    @Test func nullFamilyInEitherByteOrder() {
        let v4 = synPacket(), v6 = synPacket(.ipv6)
        // Little-endian host: AF_INET 2.
        #expect(decode(.null, [2, 0, 0, 0] + v4) == .ip(offset: 4, outgoing: false))
        // Big-endian host: the same 2, in the other order.
        #expect(decode(.null, [0, 0, 0, 2] + v4) == .ip(offset: 4, outgoing: false))
        // AF_INET6 as Linux (10), NetBSD/OpenBSD (24), FreeBSD (28) and Darwin (30) number it.
        for family: UInt8 in [10, 24, 28, 30] {
            #expect(decode(.null, [family, 0, 0, 0] + v6) == .ip(offset: 4, outgoing: false))
            #expect(decode(.null, [0, 0, 0, family] + v6) == .ip(offset: 4, outgoing: false))
        }
        #expect(decode(.null, [7, 0, 0, 0] + v4) == .notIP("address family 7"))
        #expect(decode(.null, [2, 0, 0]) == .truncated)
    }

    @Test func loopFamilyInNetworkOrder() {
        #expect(decode(.loop, [0, 0, 0, 2] + synPacket()) == .ip(offset: 4, outgoing: false))
        #expect(decode(.loop, [0, 0, 0, 24] + synPacket(.ipv6)) == .ip(offset: 4, outgoing: false))
        // Little-endian bytes in a LOOP header are a different, unknown family.
        #expect(decode(.loop, [2, 0, 0, 0] + synPacket()) == .notIP("address family 33554432"))
    }
}
