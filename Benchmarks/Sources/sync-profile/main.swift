// The sync thread's sending side without sockets or other threads, for comparing two builds
// back to back and for callgrind:
//
//   sync-profile [CONNECTIONS-PER-TURN] [TURNS] [KNOWN]
//   valgrind --tool=callgrind --collect-atstart=no '--toggle-collect=*measuredTurn*' \
//       .build/release/sync-profile 50 2000 20000
//
// A master's SyncSession (SeqwallSync) is fed, every 10 ms turn, the changes a connrate
// connection makes (docs/sync-protocol.md, Coalescing): opened, established and closing in
// its first turn, TIME_WAIT in its next, as the workers' rings hand them over (SyncService);
// then its turn (coalescing, encoding, sealing) runs and its datagrams are copied into send
// slots as the daemon does before its one sendmmsg (SyncSendBatch). KNOWN
// connections in TIME_WAIT are sent first, as the connections of earlier seconds the
// coalescer still holds until their deadline. A backup's session receives the datagrams and
// answers (acknowledgements, `features`), outside the measured part. Prints the master's
// nanoseconds per connection (clock_gettime of the thread, the measured part only) and the
// bytes it sent per connection.
import SeqwallCore
import SeqwallSync
#if canImport(Glibc)
import Glibc
#endif

func threadNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let perTurn = arguments.count > 0 ? arguments[0] : 50
let turns = arguments.count > 1 ? arguments[1] : 2000
let known = arguments.count > 2 ? arguments[2] : 20000

let key = SyncKey(bytes: (0..<32).map { UInt8($0 &* 7 &+ 1) })
var master = SyncSession(key: key, node: 0xA, epoch: 100)
var backup = SyncSession(key: key, node: 0xB, epoch: 100)
var now: UInt64 = 1_000_000_000
var wallNow: UInt64 = 1_800_000_000_000_000_000
let timeWait: UInt64 = 120_000_000_000

/// Connection `number`: a client address and port of its own toward one server, as connrate.
@MainActor
func connection(_ number: Int, state: TCPState, packets: UInt64) -> Connection {
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

/// The backup hears the master's datagrams and answers: acknowledgements and `features`.
@MainActor
func exchange() {
    backup.tick(now: now, wallNow: wallNow)
    for datagram in master.takeOutgoing() { _ = backup.receive(datagram, now: now, wallNow: wallNow) }
    for datagram in backup.takeOutgoing() { _ = master.receive(datagram, now: now, wallNow: wallNow) }
}

var sentBytes: UInt64 = 0
var datagrams: [[UInt8]] = []
/// The daemon's send slots (SyncSendBatch): a turn's datagrams are copied into them, one
/// after the other, and sent in one call (not measured here).
let slotSize = 2048
let slots = UnsafeMutablePointer<UInt8>.allocate(capacity: 256 * slotSize)
var slotLengths: [Int] = []

/// One turn of the master, the measured part: the turn's changes, its tick, its datagrams
/// copied into the send slots as the daemon does.
@inline(never)
func measuredTurn(_ session: inout SyncSession, _ changes: [SyncChange], now: UInt64, wallNow: UInt64,
                  into slots: UnsafeMutablePointer<UInt8>, slotSize: Int, lengths: inout [Int]) {
    changes.withUnsafeBufferPointer { session.submit(contentsOf: $0, now: now) }
    session.tick(now: now, wallNow: wallNow)
    lengths.removeAll(keepingCapacity: true)
    session.drainOutgoing { datagram in
        (slots + lengths.count % 256 * slotSize).update(from: datagram.baseAddress!, count: datagram.count)
        lengths.append(datagram.count)
    }
}

// The peer says it reads the compact kinds, and the connections of earlier seconds are sent.
for _ in 0..<3 {
    now += 10_000_000
    wallNow += 10_000_000
    master.tick(now: now, wallNow: wallNow)
    exchange()
}
var number = 0
while number < known {
    let changes = (number..<min(known, number + 500)).map { SyncChange(.changed, connection($0, state: .timeWait, packets: 10)) }
    number += changes.count
    master.submit(contentsOf: changes, now: now)
    now += 60_000_000
    wallNow += 60_000_000
    master.tick(now: now, wallNow: wallNow)
    exchange()
}

var changes: [SyncChange] = []
var closing: [Int] = []
var spent: UInt64 = 0
let firstMeasured = number
for _ in 0..<turns {
    now += 10_000_000
    wallNow += 10_000_000
    changes.removeAll(keepingCapacity: true)
    for earlier in closing { changes.append(SyncChange(.changed, connection(earlier, state: .timeWait, packets: 10))) }
    closing.removeAll(keepingCapacity: true)
    for _ in 0..<perTurn {
        changes.append(SyncChange(.changed, connection(number, state: .synSent, packets: 1)))
        changes.append(SyncChange(.changed, connection(number, state: .established, packets: 3)))
        changes.append(SyncChange(.changed, connection(number, state: .finWait, packets: 7)))
        closing.append(number)
        number += 1
    }
    let start = threadNanoseconds()
    measuredTurn(&master, changes, now: now, wallNow: wallNow, into: slots, slotSize: slotSize, lengths: &slotLengths)
    spent += threadNanoseconds() - start
    datagrams = slotLengths.enumerated().map { Array(UnsafeBufferPointer(start: slots + $0.offset % 256 * slotSize, count: $0.element)) }
    for datagram in datagrams { sentBytes += UInt64(datagram.count) }
    backup.tick(now: now, wallNow: wallNow)
    for datagram in datagrams { _ = backup.receive(datagram, now: now, wallNow: wallNow) }
    for datagram in backup.takeOutgoing() { _ = master.receive(datagram, now: now, wallNow: wallNow) }
}
let measured = Double(number - firstMeasured)
print("connections \(number - firstMeasured), known before \(known): "
    + "\(String(format: "%.0f", Double(spent) / measured)) ns per connection, "
    + "\(String(format: "%.1f", Double(sentBytes) / measured)) bytes per connection")
