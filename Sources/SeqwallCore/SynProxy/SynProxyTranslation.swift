/// Rewrites a packet of a proxied connection between the two halves' numbers, in place. The
/// client's half has the cookie as the server's initial sequence number and seqwall's timestamp
/// clock; the server's half has the server's own. The client's sequence numbers are the same on
/// both halves (the SYN to the server carries the client's ISN), so, as the kernel's
/// nf_ct_seqadj and synproxy_tstamp_adjust do:
///
/// - client to server: the acknowledgment number and every SACK block edge (which acknowledge
///   the server's bytes) gain `sequenceOffset`; the timestamp echo gains `timestampOffset`;
/// - server to client: the sequence number loses `sequenceOffset`; the timestamp value loses
///   `timestampOffset`; the window field is rescaled from the server's shift to the one
///   seqwall advertised to the client, which need not be the same (the SYN-ACK to the client
///   is sent before the server has said its own).
///
/// `sequenceOffset` is the server's ISN less the cookie; `timestampOffset` the server's SYN-ACK
/// timestamp value less the one seqwall sent the client. The TCP checksum is updated for each
/// changed word (RFC 1624 eqn. 3), never recomputed over the payload.
public enum SynProxyTranslation {
    /// Translates the TCP segment at `tcpOffset` in `packet`. Returns false, leaving the packet
    /// as it was, when its header or options run past what `packet` holds (the caller drops it).
    public static func translate(_ packet: UnsafeMutableRawBufferPointer, tcpOffset: Int, fromClient: Bool,
                                 sequenceOffset: UInt32, timestampOffset: UInt32,
                                 windowScale: (server: UInt8, client: UInt8) = (0, 0)) -> Bool {
        guard let base = packet.baseAddress, tcpOffset >= 0, tcpOffset + 20 <= packet.count else { return false }
        let tcp = base + tcpOffset
        let headerLength = Int(tcp.load(fromByteOffset: 12, as: UInt8.self) >> 4) * 4
        guard headerLength >= 20, tcpOffset + headerLength <= packet.count,
              validOptions(UnsafeRawPointer(tcp), headerLength: headerLength) else { return false }
        let flags = TCPFlags(rawValue: tcp.load(fromByteOffset: 13, as: UInt8.self))
        if fromClient {
            if flags.contains(.ack) { add(sequenceOffset, at: 8, in: tcp) }
        } else {
            add(0 &- sequenceOffset, at: 4, in: tcp)
            if windowScale.server != windowScale.client {
                let header = UnsafeRawBufferPointer(start: tcp, count: 20)
                let window = UInt32(header.bigEndianUInt16(at: 14))
                let bytes = window << UInt32(windowScale.server)
                let rescaled = min(0xFFFF, bytes >> UInt32(windowScale.client))
                replace16(UInt16(rescaled), at: 14, in: tcp)
            }
        }
        var at = 20
        while at < headerLength {
            let kind = tcp.load(fromByteOffset: at, as: UInt8.self)
            if kind == 0 { break }
            if kind == 1 { at += 1; continue }
            let length = Int(tcp.load(fromByteOffset: at + 1, as: UInt8.self))
            if kind == 8 && length == 10 {
                if fromClient {
                    add(timestampOffset, at: at + 6, in: tcp)
                } else {
                    add(0 &- timestampOffset, at: at + 2, in: tcp)
                }
            } else if kind == 5 && fromClient {
                var edge = at + 2
                while edge + 4 <= at + length {
                    add(sequenceOffset, at: edge, in: tcp)
                    edge += 4
                }
            }
            at += length
        }
        return true
    }

    /// Whether every option's length is at least 2 and ends inside the header, so the loop in
    /// `translate` cannot run off it (the parser checks the same for every packet; this is for
    /// callers that hand in bytes it did not see).
    static func validOptions(_ tcp: UnsafeRawPointer, headerLength: Int) -> Bool {
        var at = 20
        while at < headerLength {
            let kind = tcp.load(fromByteOffset: at, as: UInt8.self)
            if kind == 0 { return true }
            if kind == 1 { at += 1; continue }
            guard at + 1 < headerLength else { return false }
            let length = Int(tcp.load(fromByteOffset: at + 1, as: UInt8.self))
            guard length >= 2, at + length <= headerLength else { return false }
            at += length
        }
        return true
    }

    /// Writes `new` over the 16-bit word at `offset`, updating the checksum (RFC 1624 eqn. 3).
    static func replace16(_ new: UInt16, at offset: Int, in tcp: UnsafeMutableRawPointer) {
        let header = UnsafeRawBufferPointer(start: tcp, count: 20)
        let old = header.bigEndianUInt16(at: offset)
        let checksum = header.bigEndianUInt16(at: 16)
        tcp.storeBigEndian(new, at: offset)
        tcp.storeBigEndian(adjusted(checksum, removing: UInt32(~old), adding: UInt32(new)), at: 16)
    }

    /// RFC 1624 eqn. 3: ~(~HC + ~m + m'), with `removing` the sum of the old words' complements
    /// and `adding` the sum of the new words.
    static func adjusted(_ checksum: UInt16, removing: UInt32, adding: UInt32) -> UInt16 {
        var sum = UInt32(~checksum) &+ removing &+ adding
        while sum > 0xFFFF { sum = (sum & 0xFFFF) &+ (sum >> 16) }
        return ~UInt16(sum)
    }

    /// Adds `delta` to the 32-bit big-endian word at `offset` in the TCP header and updates the
    /// checksum at offset 16 for the change: HC' = ~(~HC + ~m + m') over the two 16-bit halves
    /// (RFC 1624 eqn. 3, the form that stays right when the sum crosses zero).
    static func add(_ delta: UInt32, at offset: Int, in tcp: UnsafeMutableRawPointer) {
        guard delta != 0 else { return }
        let header = UnsafeRawBufferPointer(start: tcp, count: max(offset + 4, 20))
        let old = header.bigEndianUInt32(at: offset)
        let new = old &+ delta
        let checksum = header.bigEndianUInt16(at: 16)
        tcp.storeBigEndian(new, at: offset)
        let removing = UInt32(~UInt16(truncatingIfNeeded: old >> 16)) &+ UInt32(~UInt16(truncatingIfNeeded: old))
        tcp.storeBigEndian(adjusted(checksum, removing: removing, adding: (new >> 16) &+ (new & 0xFFFF)), at: 16)
    }
}
