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

    /// Where the AEAD's nonce (12 bytes, RFC 8439) sits in the header: its last 12 bytes, the
    /// epoch then the sequence, as docs/sync-protocol.md, Encryption, defines the nonce. Unique
    /// per key, since each incarnation's key is derived from its node number (SyncCipher) and
    /// its sequence never repeats. SyncCipher reads it there, in the datagram, without a copy.
    static let nonceOffset = 12

    /// Writes the header into the first `length` bytes of `bytes` (a datagram being sealed in
    /// place: SyncCipher.seal).
    func write(to bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= SyncHeader.length, "a sync header is 24 bytes")
        for (index, byte) in SyncHeader.magic.enumerated() { bytes[index] = byte }
        bytes[4] = version
        bytes[5] = kind.rawValue
        bytes.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
        bytes.storeBytes(of: node.bigEndian, toByteOffset: 8, as: UInt32.self)
        bytes.storeBytes(of: epoch.bigEndian, toByteOffset: SyncHeader.nonceOffset, as: UInt32.self)
        bytes.storeBytes(of: sequence.bigEndian, toByteOffset: SyncHeader.nonceOffset + 4, as: UInt64.self)
    }

    /// Reads a header from the first `length` bytes of `bytes` (a whole datagram: nothing is
    /// copied); the reason when it is not one this seqwall reads.
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
