import SeqwallSync

/// Fuzz target (d): what the state sync does with a datagram from the network
/// (docs/sync-protocol.md). The first byte picks what the rest is:
///
/// - 0: a raw datagram for a session (the attacker's view: no key). It must be refused, and
///   nothing of it applied.
/// - 1: a body for every kind, decoded without the cipher; one that decodes must encode back
///   to a body that decodes the same, and compact entries must mean what the plain ones do.
/// - 2: a kind byte and a body sealed with the right key (a peer that holds the key but sends
///   nonsense): decoding past the authentication must hold up, and a refused message must
///   apply nothing.
public enum SyncMessageFuzz {
    static let key = SyncKey(bytes: [UInt8](repeating: 0x5A, count: SyncKey.length))
    static let now: UInt64 = 1_000_000_000_000
    static let wallNow: UInt64 = 1_800_000_000_000_000_000

    public static func run(_ data: UnsafeRawBufferPointer) throws(FuzzFailure) {
        var input = FuzzInput(data)
        let mode = input.byte() % 3
        var session = SyncSession(key: key, node: 1, epoch: 1)
        switch mode {
        case 0:
            let receipt = session.receive(Array(input.take(input.remaining)), now: now, wallNow: wallNow)
            guard receipt.refused != nil, receipt.entries.isEmpty, !receipt.bulkRequested else {
                throw FuzzFailure("a datagram sealed without the key was accepted")
            }
        case 1:
            let body = Array(input.take(input.remaining))
            for kind in SyncMessageKind.allCases {
                guard let message = SyncMessage.decode(kind: kind, body: body, monotonicNow: now) else { continue }
                let again = SyncMessage.decode(kind: kind, body: message.encoded(monotonicNow: now), monotonicNow: now)
                guard again == message else { throw FuzzFailure("a \(kind.name) body changes through encode and decode") }
                // A compact entry means what the plain one does (SyncCompactRecord).
                if kind.isCompact, message.entries.count <= SyncMessage.maximumEntries {
                    var plain = message
                    plain.kind = kind == .compactConnections ? .connections : .bulkChunk
                    let decoded = SyncMessage.decode(kind: plain.kind, body: plain.encoded(monotonicNow: now), monotonicNow: now)
                    guard decoded?.entries == message.entries else {
                        throw FuzzFailure("a \(kind.name) body's entries decode otherwise in the plain kind")
                    }
                }
            }
        default:
            let kind = SyncMessageKind.allCases[Int(input.byte()) % SyncMessageKind.allCases.count]
            var cipher = SyncCipher(key: key)
            let datagram = cipher.seal(SyncHeader(kind: kind, node: 2, epoch: 1, sequence: 1),
                                       body: Array(input.take(input.remaining)))
            let receipt = session.receive(datagram, now: now, wallNow: wallNow)
            if receipt.refused != nil, !receipt.entries.isEmpty {
                throw FuzzFailure("a refused \(kind.name) message applied entries")
            }
        }
    }
}
