/// What the sync's sweep last handed over from one slot of a worker's table (WorkerSync):
/// which connection (its key's seeded hash and when it was opened: a slot is given to another
/// connection when its own is removed) and its packets then. A connection whose packets have
/// not moved since it was handed over is not handed over again: its deadline and windows move
/// only with its packets, and what it was handed over with has reached the peer (or will, in
/// the sync thread's record of it; a lost one comes back with the next bulk).
struct SyncSweepMark: Equatable {
    var fingerprint: UInt64 = 0
    var createdAt: UInt64 = 0
    var packets: UInt64 = 0
}
