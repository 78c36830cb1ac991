/// A 128-bit SipHash key, as two little-endian words (SipHash's k0 and k1).
public struct SipHashKey: Sendable, Equatable {
    public var k0: UInt64
    public var k1: UInt64

    public init(k0: UInt64, k1: UInt64) {
        self.k0 = k0
        self.k1 = k1
    }

    /// A fresh random key from the system's generator (getrandom(2) on Linux).
    public static func random() -> SipHashKey {
        var generator = SystemRandomNumberGenerator()
        return SipHashKey(k0: generator.next(), k1: generator.next())
    }
}
