/// Big-endian reading and writing of the sync protocol's fields (docs/sync-protocol.md).
/// Reading is bounds-checked: every read past the end gives nil, so arbitrary bytes from the
/// network can never make a decoder read outside its buffer.
struct SyncBytes {
    private(set) var bytes: [UInt8]
    private(set) var offset = 0

    init(_ bytes: [UInt8] = []) { self.bytes = bytes }

    /// Empty, with room for `capacity` bytes: a body written field by field grows its array
    /// once, not at every doubling.
    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    var remaining: Int { bytes.count - offset }

    mutating func put8(_ value: UInt8) { bytes.append(value) }
    mutating func put16(_ value: UInt16) { putInteger(value) }
    mutating func put32(_ value: UInt32) { putInteger(value) }
    mutating func put64(_ value: UInt64) { putInteger(value) }
    mutating func put(_ other: [UInt8]) { bytes += other }

    private mutating func putInteger<T: FixedWidthInteger>(_ value: T) {
        var shift = T.bitWidth - 8
        while shift >= 0 {
            bytes.append(UInt8(truncatingIfNeeded: value >> T(shift)))
            shift -= 8
        }
    }

    mutating func get8() -> UInt8? { getInteger() }
    mutating func get16() -> UInt16? { getInteger() }
    mutating func get32() -> UInt32? { getInteger() }
    mutating func get64() -> UInt64? { getInteger() }

    mutating func get(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return bytes[offset..<(offset + count)]
    }

    /// The next `count` bytes read in place by `body`, and skipped; nil when fewer are left.
    mutating func withNext<T>(_ count: Int, _ body: (UnsafeRawBufferPointer) -> T) -> T? {
        guard count >= 0, remaining >= count else { return nil }
        defer { offset += count }
        return bytes.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + count)])) }
    }

    private mutating func getInteger<T: FixedWidthInteger>() -> T? {
        let width = T.bitWidth / 8
        guard remaining >= width else { return nil }
        var value: T = 0
        for index in 0..<width { value = value << 8 | T(bytes[offset + index]) }
        offset += width
        return value
    }
}
