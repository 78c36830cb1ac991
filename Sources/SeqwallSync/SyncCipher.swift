import Crypto

/// Seals and opens sync messages with ChaCha20-Poly1305 (RFC 8439). Each sender incarnation
/// encrypts with its own key, derived from the pre-shared key and its node number by HKDF
/// (RFC 5869): two nodes, or two starts of one node, never use one nonce under one key even
/// when their epochs and sequences coincide.
public struct SyncCipher {
    private let master: SymmetricKey
    private var derived: [UInt32: SymmetricKey] = [:]
    static let tagLength = 16
    /// The smallest message: a header and an empty body's tag.
    public static let minimumLength = SyncHeader.length + tagLength

    public init(key: SyncKey) {
        master = SymmetricKey(data: key.bytes)
    }

    mutating func key(for node: UInt32) -> SymmetricKey {
        if let key = derived[node] { return key }
        var info = SyncBytes(Array("seqwall sync node".utf8))
        info.put32(node)
        let key = HKDF<SHA256>.deriveKey(inputKeyMaterial: master, salt: Array("seqwall-sync-1".utf8),
                                         info: info.bytes, outputByteCount: 32)
        // Only our own node and the peer's current and previous incarnations matter.
        if derived.count > 8 { derived.removeAll() }
        derived[node] = key
        return key
    }

    /// The datagram: header in clear, then the body encrypted, then the tag.
    public mutating func seal(_ header: SyncHeader, body: [UInt8]) -> [UInt8] {
        let clear = header.encoded()
        // A 12-byte nonce is always valid for ChaChaPoly, and sealing in memory cannot fail.
        let nonce = try! ChaChaPoly.Nonce(data: header.nonce)
        let box = try! ChaChaPoly.seal(body, using: key(for: header.node), nonce: nonce, authenticating: clear)
        var datagram = clear
        datagram.reserveCapacity(clear.count + body.count + SyncCipher.tagLength)
        datagram.append(contentsOf: box.ciphertext)
        datagram.append(contentsOf: box.tag)
        return datagram
    }

    /// The header and the body of an authentic datagram, or why it is refused.
    public mutating func open(_ datagram: [UInt8]) -> Result<(SyncHeader, [UInt8]), SyncRefusal> {
        guard datagram.count >= SyncCipher.minimumLength else {
            if datagram.count >= 4, !datagram.prefix(4).elementsEqual(SyncHeader.magic) { return .failure(.notSync) }
            return .failure(.truncated)
        }
        let header: SyncHeader
        switch SyncHeader.decode(Array(datagram.prefix(SyncHeader.length))) {
        case .success(let decoded): header = decoded
        case .failure(let refusal): return .failure(refusal)
        }
        let clear = datagram[..<SyncHeader.length]
        let ciphertext = datagram[SyncHeader.length..<(datagram.count - SyncCipher.tagLength)]
        let tag = datagram[(datagram.count - SyncCipher.tagLength)...]
        guard let nonce = try? ChaChaPoly.Nonce(data: header.nonce),
              let box = try? ChaChaPoly.SealedBox(nonce: nonce, ciphertext: ciphertext, tag: tag),
              let body = try? ChaChaPoly.open(box, using: key(for: header.node), authenticating: clear) else {
            return .failure(.authentication)
        }
        return .success((header, Array(body)))
    }
}
