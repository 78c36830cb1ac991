/// Bounds-checked reading of one compact entry's bytes (SyncCompactRecord.decode) where they
/// lie in the message's body: every read past the end gives nil, as SyncBytes' do, and the
/// entry is not copied out first. The receiving sync thread decodes every entry the peer
/// sends, and a copy and an array of its own per entry cost more than the decoding
/// (BENCHMARKS.md, State sync end to end, The receiving side).
struct SyncRecordInput {
    private let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var remaining: Int { bytes.count - offset }

    @inline(__always)
    mutating func get8() -> UInt8? {
        guard offset < bytes.count else { return nil }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// Copies the next `count` bytes to `destination`, as they are; false when fewer are left.
    @inline(__always)
    mutating func copy(_ count: Int, to destination: UnsafeMutableRawPointer) -> Bool {
        guard count >= 0, remaining >= count else { return false }
        if count > 0 { destination.copyMemory(from: bytes.baseAddress! + offset, byteCount: count) }
        offset += count
        return true
    }

    /// LEB128 (SyncCompactRecord.putVarint): at most 10 bytes, and nothing above 64 bits.
    @inline(__always)
    mutating func getVarint() -> UInt64? {
        var value: UInt64 = 0
        for index in 0..<10 {
            guard let byte = get8() else { return nil }
            let bits = UInt64(byte & 0x7F)
            if index == 9 && bits > 1 { return nil }
            value |= bits << UInt64(7 * index)
            if byte & 0x80 == 0 { return value }
        }
        return nil
    }

    /// A sequence number sent as its zigzag coded distance from `base` (SyncCompactRecord.zigzag).
    @inline(__always)
    mutating func getDistance(from base: UInt32) -> UInt32? {
        guard let coded = getVarint(), coded <= UInt64(UInt32.max) else { return nil }
        return SyncCompactRecord.unzigzag(UInt32(coded), from: base)
    }
}
