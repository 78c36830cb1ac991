/// A cursor over fuzzer bytes. Reading past the end yields zeros, so every input, however short,
/// is a complete program for the targets.
struct FuzzInput {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    var isAtEnd: Bool { offset >= bytes.count }
    var remaining: Int { max(0, bytes.count - offset) }

    mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func bigEndianUInt16() -> UInt16 {
        UInt16(byte()) << 8 | UInt16(byte())
    }

    /// The next `count` bytes, or fewer when the input ends first.
    mutating func take(_ count: Int) -> UnsafeRawBufferPointer {
        let start = min(offset, bytes.count)
        let end = min(bytes.count, start + count)
        offset = end
        return UnsafeRawBufferPointer(rebasing: bytes[start..<end])
    }
}

/// An invariant a fuzz input broke. The fuzz executables trap on it (libFuzzer saves the input);
/// the corpus replay in `swift test` reports it as a test failure naming the file.
public struct FuzzFailure: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) { self.description = description }
}
