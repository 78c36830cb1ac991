import SeqwallCore
import SeqwallSync

/// The changes a connrate client's connections hand the sync thread (docs/sync-protocol.md,
/// Coalescing), shared by the sending and the receiving profiles so that both measure the same
/// stream: each connection opened, established and closing in its first 10 ms turn, TIME_WAIT
/// `closeAfterTurns` turns later. connrate's own connections close in the next turn (1), within
/// the coalescing interval, and are not sent at all (SyncCoalescer.isClosedUnheard); the
/// profiles' default (6, 60 ms) keeps each connection open past the interval, so that they
/// measure what a record costs: its record, then its close.
public enum ConnrateChanges {
    public static let timeWait: UInt64 = 120_000_000_000
    /// The key both profiles' sessions share.
    public static let key = SyncKey(bytes: (0..<32).map { UInt8($0 &* 7 &+ 1) })

    /// Connection `number`: a client address and port of its own toward one server, as
    /// connrate, created at `now`.
    public static func connection(_ number: Int, state: TCPState, packets: UInt64, now: UInt64) -> Connection {
        let client = IPAddress(ipv4: 0xC000_0200 | UInt32(truncatingIfNeeded: number >> 16) & 0xFF)
        let key = FlowKey(source: client, destination: IPAddress(ipv4: 0xC633_6401),
                          sourcePort: UInt16(truncatingIfNeeded: number), destinationPort: 5201,
                          protocolNumber: TrackedProtocol.tcpNumber)
        var connection = Connection(key: key, direction: .outbound)
        connection.state = state
        connection.status = state == .synSent ? [] : [.seenReply, .assured]
        connection.original.end = 1_000_000 &+ UInt32(truncatingIfNeeded: number) &* 7919 &+ 64
        connection.original.maxEnd = connection.original.end &+ 64_240
        connection.original.maxWindow = 64_240
        connection.original.scale = 7
        connection.reply.end = 5_000_000 &+ UInt32(truncatingIfNeeded: number) &* 104_729 &+ 1
        connection.reply.maxEnd = connection.reply.end &+ 65_160
        connection.reply.maxWindow = 65_160
        connection.reply.scale = 7
        connection.createdAt = now
        connection.expiresAt = now &+ (state == .timeWait ? timeWait : 300_000_000_000)
        connection.packetsOriginal = (packets + 1) / 2
        connection.packetsReply = packets / 2
        connection.bytesOriginal = connection.packetsOriginal * 60 + 64
        connection.bytesReply = connection.packetsReply * 60
        return connection
    }

    /// The stream itself: the connections of earlier seconds, then turn after turn.
    public struct Stream {
        /// How many connections the stream has opened so far.
        public private(set) var opened = 0
        /// The connections opened in each of the last `closeAfterTurns` turns, the oldest
        /// first: they go into TIME_WAIT in this turn.
        private var closing: [[Int]]
        private var changes: [SyncChange] = []

        public init(closeAfterTurns: Int = 6) {
            closing = Array(repeating: [], count: max(1, closeAfterTurns))
        }

        /// The next at most `batch` connections below `count`, established (the connections
        /// of earlier seconds, which the peer holds); nil once `count` are open.
        public mutating func known(upTo count: Int, batch: Int, now: UInt64) -> [SyncChange]? {
            guard opened < count else { return nil }
            let range = opened..<min(count, opened + batch)
            opened = range.upperBound
            return range.map { SyncChange(.changed, connection($0, state: .established, packets: 10, now: now)) }
        }

        /// One turn's changes: the connections of `closeAfterTurns` turns ago into TIME_WAIT,
        /// then `perTurn` new ones, each opened, established and closing.
        public mutating func turn(perTurn: Int, now: UInt64) -> [SyncChange] {
            changes.removeAll(keepingCapacity: true)
            var due = closing.removeFirst()
            for earlier in due { changes.append(SyncChange(.changed, connection(earlier, state: .timeWait, packets: 10, now: now))) }
            due.removeAll(keepingCapacity: true)
            for _ in 0..<perTurn {
                changes.append(SyncChange(.changed, connection(opened, state: .synSent, packets: 1, now: now)))
                changes.append(SyncChange(.changed, connection(opened, state: .established, packets: 3, now: now)))
                changes.append(SyncChange(.changed, connection(opened, state: .finWait, packets: 7, now: now)))
                due.append(opened)
                opened += 1
            }
            closing.append(due)
            return changes
        }
    }
}
