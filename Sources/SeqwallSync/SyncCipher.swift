import CSodium
import Crypto

/// Seals and opens sync messages with ChaCha20-Poly1305 (RFC 8439). Each sender incarnation
/// encrypts with its own key, derived from the pre-shared key and its node number by HKDF
/// (RFC 5869): two nodes, or two starts of one node, never use one nonce under one key even
/// when their epochs and sequences coincide.
///
/// The AEAD is libsodium's detached IETF construction (RFC 8439, section 2.8: 32-byte key,
/// 12-byte nonce, 16-byte tag), called on the datagram's own bytes: the header written in
/// place is the associated data and holds the nonce (SyncHeader.nonceOffset), the ciphertext
/// and the tag are written after it. swift-crypto's `ChaChaPoly.seal` set up a cipher
/// context, allocated the ciphertext and the tag and joined them with the nonce into a Data
/// on every call, more than the cipher itself cost. The bytes on the wire are the same
/// (docs/sync-protocol.md, Datagram): the construction is RFC 8439's in both. swift-crypto
/// still derives the keys (HKDF), once a node.
public struct SyncCipher {
    private let master: SymmetricKey
    /// The derived keys' bytes, as libsodium takes them.
    private var derived: [UInt32: [UInt8]] = [:]
    static let tagLength = 16
    /// The smallest message: a header and an empty body's tag.
    public static let minimumLength = SyncHeader.length + tagLength

    /// sodium_init picks libsodium's fastest ChaCha20 and Poly1305 code for this CPU; it may be
    /// called from any thread, and a static is initialised once, on first use.
    private static let sodiumReady = sodium_init() >= 0

    public init(key: SyncKey) {
        precondition(SyncCipher.sodiumReady, "libsodium could not be initialised")
        master = SymmetricKey(data: key.bytes)
    }

    mutating func key(for node: UInt32) -> [UInt8] {
        if let key = derived[node] { return key }
        var info = SyncBytes(Array("seqwall sync node".utf8))
        info.put32(node)
        let derivedKey = HKDF<SHA256>.deriveKey(inputKeyMaterial: master, salt: Array("seqwall-sync-1".utf8),
                                                info: info.bytes, outputByteCount: 32)
        let key = derivedKey.withUnsafeBytes { Array($0) }
        // Only our own node and the peer's current and previous incarnations matter.
        if derived.count > 8 { derived.removeAll() }
        derived[node] = key
        return key
    }

    /// The datagram: header in clear, then the body encrypted, then the tag; written once, into
    /// an array of its final size.
    public mutating func seal(_ header: SyncHeader, body: [UInt8]) -> [UInt8] {
        let length = SyncHeader.length + body.count + SyncCipher.tagLength
        return [UInt8](unsafeUninitializedCapacity: length) { datagram, initialized in
            seal(header, body: body, at: datagram.baseAddress!)
            initialized = length
        }
    }

    /// The datagram appended to `datagrams` (a sender's datagrams of a turn, one after the
    /// other: SyncSession), without an array of its own.
    public mutating func seal(_ header: SyncHeader, body: [UInt8], appendingTo datagrams: inout [UInt8]) {
        let start = datagrams.count
        datagrams.append(contentsOf: repeatElement(0, count: SyncHeader.length + body.count + SyncCipher.tagLength))
        datagrams.withUnsafeMutableBufferPointer { seal(header, body: body, at: $0.baseAddress! + start) }
    }

    /// Writes the datagram at `start`, which has room for it.
    private mutating func seal(_ header: SyncHeader, body: [UInt8], at start: UnsafeMutablePointer<UInt8>) {
        let key = key(for: header.node)
        header.write(to: UnsafeMutableRawBufferPointer(start: start, count: SyncHeader.length))
        let ciphertext = start + SyncHeader.length
        let sealed = body.withUnsafeBufferPointer { body in
            key.withUnsafeBufferPointer { key in
                // Sealing in memory cannot fail: libsodium refuses only a message longer
                // than the cipher's 32-bit block counter reaches (256 GiB, RFC 8439 2.8),
                // and a datagram is at most 1,500 bytes (docs/sync-protocol.md, Datagram).
                crypto_aead_chacha20poly1305_ietf_encrypt_detached(
                    ciphertext, ciphertext + body.count, nil,
                    body.baseAddress, UInt64(body.count),
                    start, UInt64(SyncHeader.length),
                    nil, start + SyncHeader.nonceOffset, key.baseAddress!)
            }
        }
        precondition(sealed == 0, "libsodium refused to seal a sync datagram")
    }

    /// The header and the body of an authentic datagram, or why it is refused. The body is
    /// decrypted straight into its own array, and only once the tag has been checked
    /// (libsodium checks before it decrypts).
    public mutating func open(_ datagram: [UInt8]) -> Result<(SyncHeader, [UInt8]), SyncRefusal> {
        guard datagram.count >= SyncCipher.minimumLength else {
            if datagram.count >= 4, !datagram.prefix(4).elementsEqual(SyncHeader.magic) { return .failure(.notSync) }
            return .failure(.truncated)
        }
        let header: SyncHeader
        switch SyncHeader.decode(datagram) {
        case .success(let decoded): header = decoded
        case .failure(let refusal): return .failure(refusal)
        }
        let key = key(for: header.node)
        let length = datagram.count - SyncCipher.minimumLength
        var authentic = false
        let body = [UInt8](unsafeUninitializedCapacity: length) { body, initialized in
            datagram.withUnsafeBufferPointer { datagram in
                let start = datagram.baseAddress!
                let ciphertext = start + SyncHeader.length
                key.withUnsafeBufferPointer { key in
                    // An empty body has no room (a nil address): libsodium then only checks the tag.
                    authentic = crypto_aead_chacha20poly1305_ietf_decrypt_detached(
                        body.baseAddress, nil,
                        ciphertext, UInt64(length), ciphertext + length,
                        start, UInt64(SyncHeader.length),
                        start + SyncHeader.nonceOffset, key.baseAddress!) == 0
                }
            }
            initialized = authentic ? length : 0
        }
        guard authentic else { return .failure(.authentication) }
        return .success((header, body))
    }
}
