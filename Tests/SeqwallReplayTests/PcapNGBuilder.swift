/// Builds pcapng files block by block (draft-ietf-opsawg-pcapng) in either byte order, with as
/// many interfaces and sections as a test wants: what mergecap writes for captures of several
/// interfaces, and the damaged variants of it.
struct PcapNGBuilder {
    var bigEndian = false
    private(set) var bytes: [UInt8] = []

    init(bigEndian: Bool = false) {
        self.bigEndian = bigEndian
        section()
    }

    /// Section Header Block: byte-order magic, version, section length unknown (-1).
    mutating func section(major: UInt16 = 1) {
        block(type: 0x0A0D_0D0A, body: int(UInt32(0x1A2B_3C4D)) + int(major) + int(UInt16(0)) + int(UInt64.max))
    }

    /// Interface Description Block; `resolution` is if_tsresol's byte, `offsetSeconds`
    /// if_tsoffset, each only when given.
    mutating func interface(linkType: UInt16, snapLength: UInt32, resolution: UInt8? = nil, offsetSeconds: Int64? = nil) {
        var body = int(linkType) + int(UInt16(0)) + int(snapLength)
        // An option this reader does not use comes first: if_name "eth0".
        body += int(UInt16(2)) + int(UInt16(4)) + Array("eth0".utf8)
        if let resolution { body += int(UInt16(9)) + int(UInt16(1)) + [resolution, 0, 0, 0] }
        if let offsetSeconds { body += int(UInt16(14)) + int(UInt16(8)) + int(UInt64(bitPattern: offsetSeconds)) }
        body += int(UInt16(0)) + int(UInt16(0))
        block(type: 1, body: body)
    }

    mutating func enhanced(interface: UInt32, units: UInt64, bytes data: [UInt8], originalLength: Int? = nil) {
        var body = int(interface) + int(UInt32(units >> 32)) + int(UInt32(units & 0xFFFF_FFFF))
        body += int(UInt32(data.count)) + int(UInt32(originalLength ?? data.count)) + padded(data)
        block(type: 6, body: body)
    }

    /// The obsolete Packet Block: a 16-bit interface and a drops count before the timestamp.
    mutating func obsolete(interface: UInt16, units: UInt64, bytes data: [UInt8]) {
        var body = int(interface) + int(UInt16(0)) + int(UInt32(units >> 32)) + int(UInt32(units & 0xFFFF_FFFF))
        body += int(UInt32(data.count)) + int(UInt32(data.count)) + padded(data)
        block(type: 2, body: body)
    }

    /// Simple Packet Block: the original length, then the data; no interface, no time.
    mutating func simple(bytes data: [UInt8], originalLength: Int? = nil) {
        block(type: 3, body: int(UInt32(originalLength ?? data.count)) + padded(data))
    }

    /// type, total length, body, total length again; `trailer` overrides the second length.
    mutating func block(type: UInt32, body: [UInt8], trailer: UInt32? = nil) {
        let total = UInt32(12 + body.count)
        bytes += int(type) + int(total) + body + int(trailer ?? total)
    }

    func int<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        let little = (0..<(T.bitWidth / 8)).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
        return bigEndian ? little.reversed() : little
    }

    private func padded(_ data: [UInt8]) -> [UInt8] {
        data + [UInt8](repeating: 0, count: (4 - data.count % 4) % 4)
    }
}
