// The sync thread's receiving side (a backup's) without sockets or other threads, for
// comparing two builds back to back and for callgrind:
//
//   sync-receive-profile [CONNECTIONS-PER-TURN] [TURNS] [KNOWN] [CLOSE-AFTER-TURNS]
//   valgrind --tool=callgrind --collect-atstart=no '--toggle-collect=*measuredTurn*' \
//       .build/release/sync-receive-profile 50 2000 20000
//
// A master's SyncSession is fed, every 10 ms turn, the changes a connrate connection makes
// (as sync-profile: opened, established and closing in its first turn, TIME_WAIT
// CLOSE-AFTER-TURNS later), after KNOWN established connections; its sealed datagrams are
// kept, a list a turn, outside the measured part. Then a backup's session receives them turn by turn as the daemon's sync
// thread does (SyncService.serve: every datagram of the turn opened and decoded, its entries
// gathered, the session's tick and its answers taken), and the turn's entries are applied to
// one worker's table as the worker's mailbox job does (WorkerSync.apply: applySynced for an
// upsert, removeSynced for a delete). The measured part is the turn on the backup; the
// KNOWN connections are received and applied before it. Prints the backup's nanoseconds per
// connection (clock_gettime of the thread) and per datagram.
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
/// Answers the master while its stream is made (acknowledgements, `features`).
var listener = SyncSession(key: key, node: 0xB, epoch: 100)
var now: UInt64 = 1_000_000_000
var wallNow: UInt64 = 1_800_000_000_000_000_000

/// A turn of the master's stream: its clocks and datagrams.
struct Turn {
    var now: UInt64
    var wallNow: UInt64
    var datagrams: [[UInt8]]
}

/// The master's turn, its datagrams kept; the listener answers.
@MainActor
func masterTurn(_ changes: [SyncChange]) -> Turn {
    master.submit(contentsOf: changes, now: now)
    master.tick(now: now, wallNow: wallNow)
    let datagrams = master.takeOutgoing()
    listener.tick(now: now, wallNow: wallNow)
    for datagram in datagrams { _ = listener.receive(datagram, now: now, wallNow: wallNow) }
    for datagram in listener.takeOutgoing() { _ = master.receive(datagram, now: now, wallNow: wallNow) }
    return Turn(now: now, wallNow: wallNow, datagrams: datagrams)
}

// The stream: the peer says it reads the compact kinds, the connections of earlier seconds,
// then the measured turns.
var setup: [Turn] = []
for _ in 0..<3 {
    now += 10_000_000
    wallNow += 10_000_000
    setup.append(masterTurn([]))
}
var connrate = ConnrateChanges.Stream(closeAfterTurns: closeAfter)
while let changes = connrate.known(upTo: known, batch: 500, now: now) {
    now += 60_000_000
    wallNow += 60_000_000
    setup.append(masterTurn(changes))
}
var stream: [Turn] = []
let firstMeasured = connrate.opened
for _ in 0..<turns {
    now += 10_000_000
    wallNow += 10_000_000
    stream.append(masterTurn(connrate.turn(perTurn: perTurn, now: now)))
}

// The backup: its session and one worker's table (the daemon's default policy).
var backup = SyncSession(key: key, node: 0xC, epoch: 100)
var policy = Policy()
policy.limits.states = 2 * (known + turns * perTurn)
let tracker = ConnectionTracker(policy: policy)

/// One turn of the backup: the turn's datagrams received as the sync thread does, then their
/// entries applied as the worker does.
@inline(never)
func backupTurn(_ session: inout SyncSession, _ turn: Turn, tracker: ConnectionTracker) -> Int {
    var entries: [SyncEntry] = []
    var proxies: [SyncProxyEntry] = []
    for datagram in turn.datagrams {
        let receipt = session.receive(datagram, now: turn.now, wallNow: turn.wallNow)
        if entries.isEmpty { entries = receipt.entries } else { entries += receipt.entries }
        proxies += receipt.proxies
    }
    session.tick(now: turn.now, wallNow: turn.wallNow)
    let answers = session.takeOutgoing()
    for entry in entries {
        switch entry.operation {
        case .upsert: tracker.applySynced(entry.connection, now: turn.now)
        case .delete: tracker.removeSynced(entry.connection.key)
        }
    }
    for proxy in proxies { tracker.applySyncedProxy(proxy.state, key: proxy.key) }
    return entries.count + answers.count
}

/// A turn of the stream after the KNOWN connections', the part callgrind collects.
@inline(never)
func measuredTurn(_ session: inout SyncSession, _ turn: Turn, tracker: ConnectionTracker) -> Int {
    backupTurn(&session, turn, tracker: tracker)
}

var sink = 0
for turn in setup { sink &+= backupTurn(&backup, turn, tracker: tracker) }
let appliedBefore = backup.status.entries_applied
var spent: UInt64 = 0
var datagrams = 0
for turn in stream {
    let start = ProfileClock.nanoseconds(CLOCK_THREAD_CPUTIME_ID)
    sink &+= measuredTurn(&backup, turn, tracker: tracker)
    spent += ProfileClock.nanoseconds(CLOCK_THREAD_CPUTIME_ID) - start
    datagrams += turn.datagrams.count
}
precondition(backup.status.entries_applied >= UInt64(known), "the backup applied \(backup.status.entries_applied) entries")
let measured = Double(connrate.opened - firstMeasured)
print("connections \(connrate.opened - firstMeasured), known before \(known), \(datagrams) datagrams, "
    + "\(tracker.connectionCount) connections held, "
    + "\(String(format: "%.2f", Double(backup.status.entries_applied - appliedBefore) / measured)) entries per connection: "
    + "\(String(format: "%.0f", Double(spent) / measured)) ns per connection, "
    + "\(String(format: "%.0f", Double(spent) / Double(datagrams))) ns per datagram (\(sink & 1))")
