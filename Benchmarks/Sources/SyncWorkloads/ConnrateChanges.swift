import SeqwallCore
import SeqwallSync

/// The changes a connrate client's connections hand the sync thread (docs/sync-protocol.md,
/// Coalescing), shared by the sending and the receiving profiles so that both measure the same
/// stream: each connection opened, established and closing in its first 10 ms turn, TIME_WAIT
/// in its next.
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
        /// Last turn's connections, which go into TIME_WAIT in the next.
        private var closing: [Int] = []
        private var changes: [SyncChange] = []

        public init() {}

        /// The next at most `batch` connections below `count`, in TIME_WAIT already (the
        /// connections of earlier seconds); nil once `count` are open.
        public mutating func known(upTo count: Int, batch: Int, now: UInt64) -> [SyncChange]? {
            guard opened < count else { return nil }
            let range = opened..<min(count, opened + batch)
            opened = range.upperBound
            return range.map { SyncChange(.changed, connection($0, state: .timeWait, packets: 10, now: now)) }
        }

        /// One turn's changes: last turn's connections into TIME_WAIT, then `perTurn` new ones,
        /// each opened, established and closing.
        public mutating func turn(perTurn: Int, now: UInt64) -> [SyncChange] {
            changes.removeAll(keepingCapacity: true)
            for earlier in closing { changes.append(SyncChange(.changed, connection(earlier, state: .timeWait, packets: 10, now: now))) }
            closing.removeAll(keepingCapacity: true)
            for _ in 0..<perTurn {
                changes.append(SyncChange(.changed, connection(opened, state: .synSent, packets: 1, now: now)))
                changes.append(SyncChange(.changed, connection(opened, state: .established, packets: 3, now: now)))
                changes.append(SyncChange(.changed, connection(opened, state: .finWait, packets: 7, now: now)))
                closing.append(opened)
                opened += 1
            }
            return changes
        }
    }
}
