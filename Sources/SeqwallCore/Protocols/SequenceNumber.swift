/// Sequence-number arithmetic modulo 2^32 (RFC 1982 serial numbers, as the kernel's before()
/// and after()): `a` is before `b` when `b` lies less than 2^31 ahead of it.
public enum SequenceNumber {
    public static func before(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) < 0 }

    public static func after(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: b &- a) < 0 }
}
