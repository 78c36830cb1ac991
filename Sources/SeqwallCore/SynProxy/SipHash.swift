/// SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF"), the keyed hash the
/// kernel's syncookies use (secure_tcp_syn_cookie calls siphash over the 4-tuple). Written here
/// because nothing else at hand fits the packet path: swift-crypto's HMAC allocates per call,
/// and the standard library's `Hasher` takes no key of ours (its seed is per process, so it
/// could neither rotate a secret nor be checked against the reference vectors). A value type on
/// the stack: words go in with `append`, `finish` returns the 64-bit tag.
struct SipHash {
    private var v0: UInt64, v1: UInt64, v2: UInt64, v3: UInt64
    /// Bytes appended so far; SipHash mixes the total length (mod 256) into the last block.
    private var length: UInt64 = 0

    init(key: SipHashKey) {
        v0 = key.k0 ^ 0x736f_6d65_7073_6575
        v1 = key.k1 ^ 0x646f_7261_6e64_6f6d
        v2 = key.k0 ^ 0x6c79_6765_6e65_7261
        v3 = key.k1 ^ 0x7465_6462_7974_6573
    }

    private mutating func round() {
        v0 = v0 &+ v1; v1 = v1.rotatedLeft(13); v1 ^= v0; v0 = v0.rotatedLeft(32)
        v2 = v2 &+ v3; v3 = v3.rotatedLeft(16); v3 ^= v2
        v0 = v0 &+ v3; v3 = v3.rotatedLeft(21); v3 ^= v0
        v2 = v2 &+ v1; v1 = v1.rotatedLeft(17); v1 ^= v2; v2 = v2.rotatedLeft(32)
    }

    /// Absorbs one 8-byte block, given as the little-endian word SipHash reads.
    mutating func append(_ word: UInt64) {
        v3 ^= word
        round(); round()
        v0 ^= word
        length &+= 8
    }

    /// Absorbs a last partial block of `count` bytes (0...7) in the low bytes of `word`, adds
    /// the length byte and finalizes. Every message ends here, whole blocks or not.
    mutating func finish(tail word: UInt64 = 0, count: Int = 0) -> UInt64 {
        let total = length &+ UInt64(count)
        let mask: UInt64 = count == 0 ? 0 : (UInt64.max >> (64 - 8 * UInt64(count)))
        let last = (word & mask) | (total << 56)
        v3 ^= last
        round(); round()
        v0 ^= last
        v2 ^= 0xff
        round(); round(); round(); round()
        return v0 ^ v1 ^ v2 ^ v3
    }
}

private extension UInt64 {
    func rotatedLeft(_ count: UInt64) -> UInt64 { self << count | self >> (64 - count) }
}
