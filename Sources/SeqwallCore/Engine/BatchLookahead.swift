/// The warm-up of a batch's lookups (ConnectionTracker.process(batch:verdicts:now:)).
///
/// At a million connections in random order a lookup costs two cache misses, one after the
/// other: the index entry, then the connection slot it names (ConnectionTable). One packet at
/// a time, the second miss can start only when the first has arrived, and the next packet's
/// misses only when this one has been decided: nearly all of a packet's time goes waiting for
/// memory (and on 4 KiB pages for page walks as well). A batch lets the misses of many packets
/// be in flight at once: first the index entries of every packet are loaded, then the slots
/// the entries name, and only then are the packets decided, one after the other, as always,
/// but now on cached lines.
///
/// Swift has no prefetch instruction, so the warm-up uses plain loads whose results are stored
/// into the tracker's scratch area (`BatchProbe.loaded`): the optimizer cannot drop a load
/// whose value is written to memory it cannot see the end of. The loops that issue the misses
/// are kept tight, so that the reorder buffer holds many of them at once rather than a few
/// packets' worth of hashing.
///
/// Everything here is a hint. A packet's probe and slot are looked up again when it is decided
/// (an earlier packet of the batch may have created, removed or moved connections since), so
/// what the warm-up found can make a packet faster, never decide it differently; a garbled
/// header just warms the wrong line.

extension ConnectionTable {
    /// The flow key of a TCP or UDP packet, read from the fixed places of an IPv4 header (any
    /// length) or of an IPv6 header followed directly by the transport header; nil for
    /// anything else, including fragments after the first (no ports) and packets cut short.
    /// Nothing is validated: PacketParser does that when the packet is decided. This only has
    /// to give the right key for the packets that matter for speed, and some key or nil for
    /// every other byte string.
    // Always inlined: it runs in the loop that issues the index loads, which must stay tight.
    @inline(__always)
    static func lookaheadKey(_ bytes: UnsafeRawBufferPointer) -> FlowKey? {
        // The shortest TCP or UDP packet the parser accepts: 20 + 8 bytes.
        guard bytes.count >= 28 else { return nil }
        switch bytes[0] >> 4 {
        case 4:
            let headerLength = Int(bytes[0] & 0x0F) &* 4
            let protocolNumber = bytes[9]
            // A fragment with a non-zero offset carries no ports (RFC 791).
            guard protocolNumber == TrackedProtocol.tcpNumber || protocolNumber == TrackedProtocol.udpNumber,
                  headerLength >= 20, headerLength &+ 4 <= bytes.count, bytes.bigEndianUInt16(at: 6) & 0x1FFF == 0
            else { return nil }
            return FlowKey(source: IPAddress(ipv4: bytes.bigEndianUInt32(at: 12)),
                           destination: IPAddress(ipv4: bytes.bigEndianUInt32(at: 16)),
                           sourcePort: bytes.bigEndianUInt16(at: headerLength),
                           destinationPort: bytes.bigEndianUInt16(at: headerLength &+ 2),
                           protocolNumber: protocolNumber)
        case 6:
            let protocolNumber = bytes[6]
            guard protocolNumber == TrackedProtocol.tcpNumber || protocolNumber == TrackedProtocol.udpNumber,
                  bytes.count >= 44 else { return nil }
            return FlowKey(source: IPAddress(high: bytes.bigEndianUInt64(at: 8), low: bytes.bigEndianUInt64(at: 16)),
                           destination: IPAddress(high: bytes.bigEndianUInt64(at: 24),
                                                  low: bytes.bigEndianUInt64(at: 32)),
                           sourcePort: bytes.bigEndianUInt16(at: 40), destinationPort: bytes.bigEndianUInt16(at: 42),
                           protocolNumber: protocolNumber)
        default:
            return nil
        }
    }

    /// Whether the packet is a TCP SYN without ACK, read as `lookaheadKey` reads (nothing
    /// validated), from a packet that has a key. A SYN needs a policy decision even when its
    /// probe finds a connection: an expired one it will replace, or a closed one it reopens.
    // Always inlined: it runs in the loop that gathers a batch's new flows, which must stay tight.
    @inline(__always)
    static func lookaheadOpens(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let offset: Int
        switch bytes[0] >> 4 {
        case 4:
            guard bytes[9] == TrackedProtocol.tcpNumber else { return false }
            offset = Int(bytes[0] & 0x0F) &* 4
        case 6:
            guard bytes[6] == TrackedProtocol.tcpNumber else { return false }
            offset = 40
        default:
            return false
        }
        // Flags are byte 13 of the TCP header (RFC 9293): SYN 0x02, ACK 0x10.
        return offset &+ 14 <= bytes.count && bytes[offset &+ 13] & 0x12 == 0x02
    }

    /// Phase 1: the tag and home position of every packet's flow, then the home index entry of
    /// each, in a loop of its own so that their cache misses overlap.
    func warmIndex(_ packets: UnsafeBufferPointer<QueuedPacket>, probes: UnsafeMutablePointer<BatchProbe>) {
        for index in packets.indices {
            if let key = ConnectionTable.lookaheadKey(packets[index].bytes) {
                let tag = tag(for: hasher.hash(key))
                probes[index].tag = tag
                probes[index].position = UInt32(truncatingIfNeeded: home(of: tag))
            } else {
                probes[index].tag = 0
                probes[index].position = 0
            }
        }
        let entries = UnsafeRawPointer(self.index)
        for index in packets.indices {
            // Position 0 for a packet without a key: a harmless load of a line that is
            // usually cached anyway, cheaper than a branch in this loop.
            let position = Int(probes[index].position)
            probes[index].loaded = entries.load(fromByteOffset: position &* MemoryLayout<IndexEntry>.stride,
                                                as: UInt64.self)
        }
    }

    /// The probe length the warm-up follows: at a load of at most 3/4 nearly every chain ends
    /// within it, and a longer one is just not warmed.
    static let lookaheadProbeLimit = 8

    /// Phase 2: every cache line of the connection slot each packet's probe leads to (its
    /// first entry with a matching tag: a hint, the key is compared when the packet is decided).
    /// The index lines arrived in phase 1. A probe that finds no connection has its tag
    /// cleared, which tells the decisions' warm-up (ConnectionTracker+DecisionWarmup.swift)
    /// that the packet will likely be decided by the policy.
    func warmSlots(_ count: Int, probes: UnsafeMutablePointer<BatchProbe>) {
        let stride = MemoryLayout<Connection>.stride
        for index in 0..<count {
            let wanted = probes[index].tag
            guard wanted != 0 else { continue }
            var position = Int(probes[index].position)
            var slot = -1
            for _ in 0..<ConnectionTable.lookaheadProbeLimit {
                let entry = self.index[position]
                if entry.tag == wanted { slot = Int(entry.slot); break }
                if entry.tag == 0 { break }
                position = (position &+ 1) & indexMask
            }
            guard slot >= 0 else {
                probes[index].tag = 0
                continue
            }
            // A slot spans three cache lines (160 bytes, two slots to five lines): one load in
            // each 64 bytes of it and one at its end touches each of them whatever its offset.
            let connection = UnsafeRawPointer(slots + slot)
            var loaded = UInt64(connection.load(fromByteOffset: stride &- 1, as: UInt8.self))
            var offset = 0
            while offset < stride {
                loaded = loaded &+ UInt64(connection.load(fromByteOffset: offset, as: UInt8.self))
                offset &+= 64
            }
            probes[index].loaded = loaded
        }
    }
}
