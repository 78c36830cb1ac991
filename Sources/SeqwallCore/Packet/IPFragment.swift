/// A fragment of an IPv4 or IPv6 datagram (RFC 791 3.2, RFC 8200 4.5), as the drop log shows it.
///
/// seqwall judges whole datagrams: the shipped diversions turn on the kernel's reassembly
/// (docs/design.md, Fragments), so a fragment reaches the queue only through a diversion
/// without it, and is dropped (`fragment`). These are the fields that tell an operator whose traffic that
/// was, read again off the packet only when it is logged.
public struct IPFragment: Sendable, Equatable {
    public var source: IPAddress
    public var destination: IPAddress
    /// The datagram's protocol (IPv6: the fragment header's next header).
    public var protocolNumber: UInt8
    /// The datagram's identification: 16 bits in IPv4, 32 in IPv6.
    public var identification: UInt32
    /// Where this fragment's data starts in the datagram's data, in bytes.
    public var offset: Int
    /// More fragments follow (the M flag): false on the last one.
    public var moreFragments: Bool
    /// The ports of a first fragment of TCP or UDP long enough to hold them.
    public var sourcePort: UInt16?
    public var destinationPort: UInt16?

    public init(source: IPAddress, destination: IPAddress, protocolNumber: UInt8, identification: UInt32,
                offset: Int, moreFragments: Bool, sourcePort: UInt16? = nil, destinationPort: UInt16? = nil) {
        self.source = source
        self.destination = destination
        self.protocolNumber = protocolNumber
        self.identification = identification
        self.offset = offset
        self.moreFragments = moreFragments
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }

    /// The fragment in `bytes` (what the kernel copied; `wireLength` is the packet's length),
    /// or nil when they are not a fragment whose headers parse (`PacketParser` says `fragment`).
    public init?(_ bytes: UnsafeRawBufferPointer, wireLength: Int) {
        var network = PacketParser.NetworkLayer()
        guard PacketParser.parseNetwork(bytes, wireLength: wireLength, into: &network) == .fragment else { return nil }
        let field: UInt16
        if network.ipv6 {
            // The fragment header just before the data: offset in 8-octet units in the top 13
            // bits of its second word, M in the lowest, then a 32-bit identification.
            let header = network.offset - 8
            field = bytes.bigEndianUInt16(at: header + 2)
            identification = bytes.bigEndianUInt32(at: header + 4)
            offset = Int(field & 0xFFF8)
            moreFragments = field & 1 != 0
        } else {
            // Identification, then flags (DF 0x4000, MF 0x2000) and the offset in 8-octet units.
            field = bytes.bigEndianUInt16(at: 6)
            identification = UInt32(bytes.bigEndianUInt16(at: 4))
            offset = Int(field & 0x1FFF) * 8
            moreFragments = field & 0x2000 != 0
        }
        source = network.source
        destination = network.destination
        protocolNumber = network.protocolNumber
        let hasPorts = TrackedProtocol(protocolNumber: protocolNumber)?.hasPorts == true
        if offset == 0 && hasPorts && network.length >= 4 && network.offset + 4 <= bytes.count {
            sourcePort = bytes.bigEndianUInt16(at: network.offset)
            destinationPort = bytes.bigEndianUInt16(at: network.offset + 2)
        }
    }
}
