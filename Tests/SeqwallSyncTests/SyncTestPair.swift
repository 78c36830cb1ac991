import SeqwallCore
import SeqwallSync
import SeqwallTestSupport

/// Two sync sessions wired back to back, with a hand on the wire between them: what each
/// sends is delivered to the other unless `drop` says otherwise.
struct SyncTestPair {
    static let key = SyncKey(bytes: (0..<32).map { UInt8($0) })
    var a = SyncSession(key: SyncTestPair.key, node: 0xA, epoch: 100)
    var b = SyncSession(key: SyncTestPair.key, node: 0xB, epoch: 100)
    var now: UInt64 = 1_000_000_000
    var wallNow: UInt64 = 1_800_000_000_000_000_000
    /// Entries B applied, in order.
    var appliedOnB: [SyncEntry] = []
    var appliedOnA: [SyncEntry] = []
    /// Proxy states B received, in order.
    var proxiesOnB: [SyncProxyEntry] = []
    /// Datagrams captured from A, in order (for replay tests).
    var fromA: [[UInt8]] = []
    /// Which of B's datagrams are lost on their way to A.
    var dropFromB: (([UInt8]) -> Bool)?

    /// Whether a datagram carries connection entries (the plain kind or the compact one).
    static func isConnections(_ datagram: [UInt8]) -> Bool {
        datagram[5] == SyncMessageKind.connections.rawValue || datagram[5] == SyncMessageKind.compactConnections.rawValue
    }

    /// Advances the clocks by `step` and runs both sides once; `drop` sees each datagram A sends.
    mutating func step(_ step: UInt64 = 10_000_000, drop: ([UInt8]) -> Bool = { _ in false }) {
        now += step
        wallNow += step
        a.tick(now: now, wallNow: wallNow)
        b.tick(now: now, wallNow: wallNow)
        for datagram in a.takeOutgoing() {
            fromA.append(datagram)
            if drop(datagram) { continue }
            let receipt = b.receive(datagram, now: now, wallNow: wallNow)
            appliedOnB += receipt.entries
            proxiesOnB += receipt.proxies
            if receipt.bulkRequested { b.startBulk([]) }
        }
        for datagram in b.takeOutgoing() {
            if dropFromB?(datagram) == true { continue }
            let receipt = a.receive(datagram, now: now, wallNow: wallNow)
            appliedOnA += receipt.entries
            if receipt.bulkRequested { a.startBulk(bulkOnA, proxies: bulkProxiesOnA) }
        }
    }

    /// What A sends when B asks for a bulk.
    var bulkOnA: [Connection] = []
    var bulkProxiesOnA: [SyncProxyEntry] = []

    mutating func run(_ steps: Int, drop: ([UInt8]) -> Bool = { _ in false }) {
        for _ in 0..<steps { step(drop: drop) }
    }

    /// A TCP connection between documentation addresses, established, `seconds` left.
    static func connection(port: UInt16, family: Family = .ipv4, now: UInt64, seconds: UInt64 = 300) -> Connection {
        let key = FlowKey(source: family.client, destination: family.server, sourcePort: port, destinationPort: 443,
                          protocolNumber: TrackedProtocol.tcpNumber)
        var connection = Connection(key: key, direction: .outbound)
        connection.state = .established
        connection.status = [.seenReply, .assured]
        connection.original.end = 1000
        connection.original.maxEnd = 66535
        connection.original.maxWindow = 65535
        connection.original.scale = 7
        connection.reply.end = 5000
        connection.reply.maxWindow = 29200
        connection.expiresAt = now + seconds * 1_000_000_000
        connection.createdAt = now
        connection.packetsOriginal = 3
        connection.packetsReply = 2
        return connection
    }
}
