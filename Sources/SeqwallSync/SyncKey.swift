import Crypto
import SeqwallCore

/// The pre-shared key both nodes hold (`--sync-key FILE`): 32 bytes, written in the file
/// either as they are or as 64 hexadecimal digits (a line `head -c32 /dev/urandom | xxd -p -c64`
/// writes). Whoever reads the key can forge table entries, that is, open the firewall: a file
/// that group or others may read is refused.
public struct SyncKey: Sendable {
    public static let length = 32
    let bytes: [UInt8]

    public enum Problem: Error, Equatable, CustomStringConvertible {
        case readableByOthers(mode: UInt32)
        case wrongLength(Int)

        public var description: String {
            switch self {
            case .readableByOthers(let mode):
                "is readable or writable by group or others (mode \(String(mode & 0o777, radix: 8))); chmod 600 it"
            case .wrongLength(let count):
                "holds \(count) bytes; a sync key is \(SyncKey.length) bytes, or \(SyncKey.length * 2) hexadecimal digits"
            }
        }
    }

    /// A key from a file's contents and its mode (st_mode).
    public init(fileContents: [UInt8], mode: UInt32) throws(Problem) {
        guard mode & 0o077 == 0 else { throw .readableByOthers(mode: mode) }
        if fileContents.count == SyncKey.length {
            bytes = fileContents
            return
        }
        var text = fileContents
        while let last = text.last, last == 0x0A || last == 0x0D || last == 0x20 { text.removeLast() }
        guard text.count == SyncKey.length * 2, let decoded = SyncKey.hex(text) else {
            throw .wrongLength(fileContents.count)
        }
        bytes = decoded
    }

    /// The SYN cookie secret of every node holding this key (docs/synproxy.md, The cookie), so
    /// that a handshake one node began completes on the other after a failover. Derived by
    /// HKDF-SHA256 (RFC 5869) under a salt and label of its own, apart from the sync's own keys
    /// (SyncCipher): the cookie secret says nothing of them.
    public var cookieSecret: SynCookieSecret {
        let derived = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: bytes),
                                             salt: Array("seqwall-synproxy-1".utf8),
                                             info: Array("seqwall synproxy cookie secret".utf8), outputByteCount: 16)
        let words = derived.withUnsafeBytes { raw in
            (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        }
        return SynCookieSecret(secret: SipHashKey(k0: UInt64(littleEndian: words.0), k1: UInt64(littleEndian: words.1)))
    }

    /// A key from its bytes (tests).
    public init(bytes: [UInt8]) {
        precondition(bytes.count == SyncKey.length, "a sync key is 32 bytes")
        self.bytes = bytes
    }

    static func hex(_ text: [UInt8]) -> [UInt8]? {
        func digit(_ character: UInt8) -> UInt8? {
            switch character {
            case 0x30...0x39: character - 0x30
            case 0x61...0x66: character - 0x61 + 10
            case 0x41...0x46: character - 0x41 + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        var index = 0
        while index + 1 < text.count {
            guard let high = digit(text[index]), let low = digit(text[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }
}
