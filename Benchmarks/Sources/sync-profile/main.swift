// The sync thread's sending side without sockets or other threads, for comparing two builds
// back to back and for callgrind:
//
//   sync-profile [CONNECTIONS-PER-TURN] [TURNS] [KNOWN] [CLOSE-AFTER-TURNS]
//   valgrind --tool=callgrind --collect-atstart=no '--toggle-collect=*measuredTurn*' \
//       .build/release/sync-profile 50 2000 20000
//
// A master's SyncSession (SeqwallSync) is fed, every 10 ms turn, the changes a connrate
// connection makes (docs/sync-protocol.md, Coalescing): opened, established and closing in
// its first turn, TIME_WAIT CLOSE-AFTER-TURNS later (ConnrateChanges), as the workers' rings
// hand them over (SyncService);
// then its turn (coalescing, encoding, sealing) runs and its datagrams are copied into send
// slots as the daemon does before its one sendmmsg (SyncSendBatch). KNOWN
// established connections are sent first, as the connections of earlier seconds the
// coalescer still holds until their deadline. A backup's session receives the datagrams and
// answers (acknowledgements, `features`), outside the measured part. Prints the master's
// nanoseconds per connection (clock_gettime of the thread, the measured part only) and the
// bytes it sent per connection.
import SeqwallCore
import SeqwallSync
import SyncWorkloads
import TrackerWorkloads
#if canImport(Glibc)
import Glibc
#endif

let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let perTurn = arguments.count > 0 ? arguments[0] : 50
let turns = arguments.count > 1 ? arguments[1] : 2000
let known = arguments.count > 2 ? arguments[2] : 20000
/// 6 by default: each connection outlives the coalescing interval, so its record and its close
/// are sent (1: connrate's, closed within the interval, not sent; ConnrateChanges).
let closeAfter = arguments.count > 3 ? arguments[3] : 6

let key = ConnrateChanges.key
var master = SyncSession(key: key, node: 0xA, epoch: 100)
var backup = SyncSession(key: key, node: 0xB, epoch: 100)
var now: UInt64 = 1_000_000_000
var wallNow: UInt64 = 1_800_000_000_000_000_000

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
var connrate = ConnrateChanges.Stream(closeAfterTurns: closeAfter)
while let changes = connrate.known(upTo: known, batch: 500, now: now) {
    master.submit(contentsOf: changes, now: now)
    now += 60_000_000
    wallNow += 60_000_000
    master.tick(now: now, wallNow: wallNow)
    exchange()
}

var spent: UInt64 = 0
let firstMeasured = connrate.opened
for _ in 0..<turns {
    now += 10_000_000
    wallNow += 10_000_000
    let changes = connrate.turn(perTurn: perTurn, now: now)
    let start = ProfileClock.nanoseconds(CLOCK_THREAD_CPUTIME_ID)
    measuredTurn(&master, changes, now: now, wallNow: wallNow, into: slots, slotSize: slotSize, lengths: &slotLengths)
    spent += ProfileClock.nanoseconds(CLOCK_THREAD_CPUTIME_ID) - start
    datagrams = slotLengths.enumerated().map { Array(UnsafeBufferPointer(start: slots + $0.offset % 256 * slotSize, count: $0.element)) }
    for datagram in datagrams { sentBytes += UInt64(datagram.count) }
    backup.tick(now: now, wallNow: wallNow)
    for datagram in datagrams { _ = backup.receive(datagram, now: now, wallNow: wallNow) }
    for datagram in backup.takeOutgoing() { _ = master.receive(datagram, now: now, wallNow: wallNow) }
}
let measured = Double(connrate.opened - firstMeasured)
print("connections \(connrate.opened - firstMeasured), known before \(known): "
    + "\(String(format: "%.0f", Double(spent) / measured)) ns per connection, "
    + "\(String(format: "%.1f", Double(sentBytes) / measured)) bytes per connection")
