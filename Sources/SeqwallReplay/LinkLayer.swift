/// The link layers replay understands, by their DLT_ values (pcap/dlt.h, and the LINKTYPE_
/// registry at tcpdump.org for the values libpcap does not remap).
public enum LinkLayer: Sendable, Equatable {
    /// DLT_NULL: BSD loopback, a 4-byte address family in the capturing host's byte order.
    case null
    /// DLT_EN10MB: Ethernet II, with any number of 802.1Q / 802.1ad tags.
    case ethernet
    /// DLT_RAW, LINKTYPE_RAW: the IP header first; its version says which.
    case raw
    /// DLT_LOOP: OpenBSD loopback, like NULL with the family in network byte order.
    case loop
    /// DLT_LINUX_SLL: Linux cooked capture v1 (`tcpdump -i any`), 16-byte header.
    case linuxCooked
    /// DLT_LINUX_SLL2: Linux cooked capture v2, 20-byte header with the interface index.
    case linuxCooked2
    /// DLT_IPV4 / DLT_IPV6: raw IP of one version only.
    case ipv4
    case ipv6

    public init?(dataLinkType: Int32) {
        switch dataLinkType {
        case 0: self = .null
        case 1: self = .ethernet
        // DLT_RAW is 12 on Linux and most systems (14 on OpenBSD, which libpcap maps to 12 when
        // it reads a file); 101 is LINKTYPE_RAW as written in files.
        case 12, 101: self = .raw
        case 108: self = .loop
        case 113: self = .linuxCooked
        case 228: self = .ipv4
        case 229: self = .ipv6
        case 276: self = .linuxCooked2
        default: return nil
        }
    }

    /// What a frame holds, once its link-layer header is read.
    public enum Content: Sendable, Equatable {
        /// An IP packet starting at `offset`. `outgoing` is set when a Linux cooked capture
        /// says the capturing host sent the frame (PACKET_OUTGOING).
        case ip(offset: Int, outgoing: Bool)
        /// Anything but IPv4 or IPv6 (ARP, LLDP, ...), described for the report.
        case notIP(String)
        /// The frame ends before its IP header starts.
        case truncated
    }

    /// Reads the link-layer header of one frame. Never traps: every length is checked first.
    public func decode(_ frame: UnsafeRawBufferPointer) -> Content {
        switch self {
        case .raw, .ipv4, .ipv6:
            return frame.isEmpty ? .truncated : .ip(offset: 0, outgoing: false)
        case .null, .loop:
            guard frame.count >= 4 else { return .truncated }
            var family = UInt32(frame[0]) | UInt32(frame[1]) << 8 | UInt32(frame[2]) << 16 | UInt32(frame[3]) << 24
            if self == .loop {
                family = family.byteSwapped
            } else if family & 0xFFFF_0000 != 0 {
                // DLT_NULL is in the capturing host's byte order, which the file does not
                // record; every family number fits in 16 bits, so a value above that was
                // written by a host of the other order (as Wireshark's packet-null.c reasons).
                family = family.byteSwapped
            }
            switch family {
            case 2: return .ip(offset: 4, outgoing: false)                  // AF_INET everywhere
            case 10, 24, 28, 30: return .ip(offset: 4, outgoing: false)     // AF_INET6: Linux, Net/OpenBSD, FreeBSD, Darwin
            default: return .notIP("address family \(family)")
            }
        case .ethernet:
            guard frame.count >= 14 else { return .truncated }
            return LinkLayer.etherType(frame, at: 12, outgoing: false)
        case .linuxCooked:
            // packet type(2) ARPHRD type(2) address length(2) address(8) protocol(2).
            guard frame.count >= 16 else { return .truncated }
            if frame.bigEndian16(at: 2) == LinkLayer.netlinkHardwareType { return .notIP("netlink") }
            return LinkLayer.etherType(frame, at: 14, outgoing: frame.bigEndian16(at: 0) == LinkLayer.packetOutgoing)
        case .linuxCooked2:
            // protocol(2) reserved(2) interface index(4) ARPHRD type(2) packet type(1)
            // address length(1) address(8).
            guard frame.count >= 20 else { return .truncated }
            if frame.bigEndian16(at: 8) == LinkLayer.netlinkHardwareType { return .notIP("netlink") }
            return LinkLayer.etherType(frame, at: 0, headerLength: 20,
                                       outgoing: UInt16(frame[10]) == LinkLayer.packetOutgoing)
        }
    }

    /// PACKET_OUTGOING in the cooked header's packet type (linux/if_packet.h).
    static let packetOutgoing: UInt16 = 4
    /// ARPHRD_NETLINK: nlmon captures, whose "protocol" is a netlink family, not an EtherType.
    static let netlinkHardwareType: UInt16 = 824

    /// Follows the EtherType at `typeOffset` (the payload starts right after it, or at
    /// `headerLength` when given) through VLAN tags to IPv4 or IPv6.
    static func etherType(_ frame: UnsafeRawBufferPointer, at typeOffset: Int, headerLength: Int? = nil,
                          outgoing: Bool) -> Content {
        var type = frame.bigEndian16(at: typeOffset)
        var offset = headerLength ?? typeOffset + 2
        var tags = 0
        // 802.1Q (0x8100), 802.1ad (0x88A8) and the old QinQ 0x9100: a 2-byte tag control
        // field, then the next EtherType. Captures on Linux show offloaded tags reinserted.
        while type == 0x8100 || type == 0x88A8 || type == 0x9100 {
            tags += 1
            guard tags <= maximumVLANTags else { return .notIP("more than \(maximumVLANTags) VLAN tags") }
            guard frame.count >= offset + 4 else { return .truncated }
            type = frame.bigEndian16(at: offset + 2)
            offset += 4
        }
        let version: UInt8
        switch type {
        case 0x0800: version = 4
        case 0x86DD: version = 6
        default: return .notIP(describe(etherType: type))
        }
        guard frame.count > offset else { return .truncated }
        // The kernel drops a packet whose version disagrees with its EtherType in ip_rcv /
        // ipv6_rcv, before netfilter sees it: so it never reaches seqwall either.
        let found = frame[offset] >> 4
        guard found == version else { return .notIP("IPv\(version) EtherType with IP version \(found)") }
        return .ip(offset: offset, outgoing: outgoing)
    }

    /// Nested tags accepted before giving up on a frame (real networks stack two).
    static let maximumVLANTags = 8

    static func describe(etherType type: UInt16) -> String {
        let digits = String(type, radix: 16)
        let hex = "0x" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
        // An 802.3 length field instead of a type: LLC frames (STP, CDP, ...).
        if type < 0x0600 { return "802.3 frame (length \(type))" }
        let names: [UInt16: String] = [0x0806: "ARP", 0x8035: "RARP", 0x88CC: "LLDP", 0x888E: "EAPOL",
                                       0x8847: "MPLS", 0x8848: "MPLS", 0x8863: "PPPoE", 0x8864: "PPPoE"]
        if let name = names[type] { return "EtherType \(hex) (\(name))" }
        return "EtherType \(hex)"
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always)
    func bigEndian16(at offset: Int) -> UInt16 {
        UInt16(self[offset]) << 8 | UInt16(self[offset + 1])
    }
}
