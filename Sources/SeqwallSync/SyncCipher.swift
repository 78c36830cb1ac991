import Crypto
import Foundation

/// Seals and opens sync messages with ChaCha20-Poly1305 (RFC 8439). Each sender incarnation
/// encrypts with its own key, derived from the pre-shared key and its node number by HKDF
/// (RFC 5869): two nodes, or two starts of one node, never use one nonce under one key even
/// when their epochs and sequences coincide.
public struct SyncCipher {
    private let master: SymmetricKey
    private var derived: [UInt32: SymmetricKey] = [:]
    static let tagLength = 16
    static let nonceLength = 12
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
    ///
    /// Written once into an array of its final size: swift-crypto's sealed box keeps the
    /// nonce, the ciphertext and the tag together (`combined`), and the last two are the
    /// datagram's tail as they are, copied in one piece. (Its `ciphertext` and `tag` are Data
    /// slices, and appending them to an array went through Data's generic sequence path.)
    public mutating func seal(_ header: SyncHeader, body: [UInt8]) -> [UInt8] {
        var datagram: [UInt8] = []
        datagram.reserveCapacity(SyncHeader.length + body.count + SyncCipher.tagLength)
        header.append(to: &datagram)
        // A 12-byte nonce is always valid for ChaChaPoly, and sealing in memory cannot fail.
        let nonce = try! ChaChaPoly.Nonce(data: header.nonce)
        let box = try! ChaChaPoly.seal(body, using: key(for: header.node), nonce: nonce, authenticating: datagram)
        box.combined.withUnsafeBytes { combined in
            datagram.append(contentsOf: UnsafeRawBufferPointer(rebasing: combined[SyncCipher.nonceLength...]))
        }
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
        // The sealed box as swift-crypto keeps it: nonce, ciphertext, tag, in one Data (the
        // datagram's tail copied once, as in `seal`).
        var combined = Data(capacity: SyncCipher.nonceLength + datagram.count - SyncHeader.length)
        combined.append(contentsOf: header.nonce)
        datagram.withUnsafeBytes { bytes in
            combined.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[SyncHeader.length...]))
        }
        guard let box = try? ChaChaPoly.SealedBox(combined: combined),
              let body = try? ChaChaPoly.open(box, using: key(for: header.node), authenticating: clear) else {
            return .failure(.authentication)
        }
        return .success((header, body.withUnsafeBytes { Array($0) }))
    }
}
