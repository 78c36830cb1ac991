/// CRC-32 as Ethernet, zlib and gzip compute it (IEEE 802.3, reflected polynomial
/// 0xEDB88320, initial and final value 0xFFFFFFFF); CRC32("123456789") is 0xCBF43926.
public struct CRC32 {
    static let table: [UInt32] = (0..<256).map { byte in
        var value = UInt32(byte)
        for _ in 0..<8 { value = value & 1 != 0 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    private var state: UInt32 = 0xFFFF_FFFF

    public init() {}

    public mutating func update<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        let table = CRC32.table
        for byte in bytes { state = table[Int((state ^ UInt32(byte)) & 0xFF)] ^ (state >> 8) }
    }

    public var value: UInt32 { state ^ 0xFFFF_FFFF }
}
