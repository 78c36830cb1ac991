/// The clear part of a sync message, authenticated with the rest (the AEAD's associated
/// data). docs/sync-protocol.md, Header.
public struct SyncHeader: Sendable, Equatable {
    public static let magic: [UInt8] = Array("SQWS".utf8)
    public static let version: UInt8 = 1
    public static let length = 24

    public var version: UInt8 = SyncHeader.version
    public var kind: SyncMessageKind
    /// Random at each start of the sender: with `epoch`, its incarnation.
    public var node: UInt32
    /// Grows at each start of the sender (wall-clock seconds, never below the last one).
    public var epoch: UInt32
    /// Every message of an incarnation has the next one: the nonce, and replay protection.
    public var sequence: UInt64

    public init(kind: SyncMessageKind, node: UInt32, epoch: UInt32, sequence: UInt64) {
        self.kind = kind
        self.node = node
        self.epoch = epoch
        self.sequence = sequence
    }

    func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        append(to: &bytes)
        return bytes
    }

    /// Writes the header at the end of `bytes` (a datagram being built: SyncCipher.seal).
    func append(to bytes: inout [UInt8]) {
        var out = SyncBytes(bytes)
        bytes = []
        out.put(SyncHeader.magic)
        out.put8(version)
        out.put8(kind.rawValue)
        out.put16(0)
        out.put32(node)
        out.put32(epoch)
        out.put64(sequence)
        bytes = out.bytes
    }

    /// The 12-byte nonce: epoch then sequence. Unique per key, since each incarnation's key
    /// is derived from its node number (SyncCipher) and its sequence never repeats.
    var nonce: [UInt8] {
        var out = SyncBytes()
        out.put32(epoch)
        out.put64(sequence)
        return out.bytes
    }

    /// Reads a header; the reason when it is not one this seqwall reads.
    static func decode(_ bytes: [UInt8]) -> Result<SyncHeader, SyncRefusal> {
        var reader = SyncBytes(bytes)
        guard let magic = reader.get(4), let version = reader.get8(), let kindValue = reader.get8(),
              let _ = reader.get16(), let node = reader.get32(), let epoch = reader.get32(),
              let sequence = reader.get64() else { return .failure(.truncated) }
        guard magic.elementsEqual(SyncHeader.magic) else { return .failure(.notSync) }
        guard version == SyncHeader.version else { return .failure(.version) }
        guard let kind = SyncMessageKind(rawValue: kindValue) else { return .failure(.malformed) }
        return .success(SyncHeader(kind: kind, node: node, epoch: epoch, sequence: sequence))
    }
}
