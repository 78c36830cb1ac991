import SeqwallTestSupport
import Foundation

/// A minimal writer of the two capture formats libpcap reads, little-endian, so tests can make
/// their own files without tcpdump.
///
/// - Classic pcap (pcap-savefile(5)): a 24-byte file header, then per frame a 16-byte record
///   header (seconds, microseconds or nanoseconds, captured length, original length).
/// - pcapng (draft-ietf-opsawg-pcapng): a Section Header Block, one Interface Description
///   Block (with if_tsresol when nanoseconds are asked for), then an Enhanced Packet Block per
///   frame; every block padded to 32 bits and framed by its total length.
enum CaptureWriter {
    static func pcap(linkType: UInt32, frames: [TestFrame], nanosecond: Bool = false, snapLength: UInt32 = 65535) -> [UInt8] {
        var out: [UInt8] = []
        out += le(UInt32(nanosecond ? 0xA1B2_3C4D : 0xA1B2_C3D4))
        out += le(UInt16(2)) + le(UInt16(4))            // version 2.4
        out += le(UInt32(0)) + le(UInt32(0))            // thiszone, sigfigs
        out += le(snapLength)
        out += le(linkType)
        for frame in frames {
            out += le(UInt32(frame.seconds))
            out += le(UInt32(nanosecond ? frame.nanoseconds : frame.nanoseconds / 1000))
            out += le(UInt32(frame.bytes.count))
            out += le(UInt32(frame.originalLength ?? frame.bytes.count))
            out += frame.bytes
        }
        return out
    }

    static func pcapng(linkType: UInt16, frames: [TestFrame], snapLength: UInt32 = 65535) -> [UInt8] {
        var out: [UInt8] = []
        // Section Header Block: byte-order magic, version 1.0, section length unknown (-1).
        out += block(type: 0x0A0D_0D0A, body: le(UInt32(0x1A2B_3C4D)) + le(UInt16(1)) + le(UInt16(0))
                     + le(UInt64.max))
        // Interface Description Block with if_tsresol = 9 (nanoseconds), then opt_endofopt.
        var interface = le(linkType) + le(UInt16(0)) + le(snapLength)
        interface += le(UInt16(9)) + le(UInt16(1)) + [9, 0, 0, 0]
        interface += le(UInt16(0)) + le(UInt16(0))
        out += block(type: 1, body: interface)
        for frame in frames {
            let timestamp = frame.seconds * 1_000_000_000 + frame.nanoseconds
            var body = le(UInt32(0))                    // interface 0
            body += le(UInt32(timestamp >> 32)) + le(UInt32(timestamp & 0xFFFF_FFFF))
            body += le(UInt32(frame.bytes.count)) + le(UInt32(frame.originalLength ?? frame.bytes.count))
            body += frame.bytes
            while body.count % 4 != 0 { body.append(0) }
            out += block(type: 6, body: body)
        }
        return out
    }

    /// type, total length, body, total length again.
    static func block(type: UInt32, body: [UInt8]) -> [UInt8] {
        let total = UInt32(12 + body.count)
        return le(type) + le(total) + body + le(total)
    }

    static func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
    }
}
