import Logging
import SeqwallSync

/// The last sync epoch this node used, kept beside the state file (`--state-file PATH` gives
/// `PATH.sync-epoch`) so that the next start's epoch is above it even after the wall clock
/// stepped back (SyncEpoch, docs/sync-protocol.md, Replay). Written, like the state file, by
/// StateFile: atomically, never through a planted link, readable by us alone.
enum SyncEpochFile {
    static func path(stateFile: String) -> String { stateFile + ".sync-epoch" }

    /// The epoch for this start, recorded before it is used: above every earlier start's. Without
    /// a record (no state file, or one that cannot be written: with a warning), `unrecorded`
    /// gives it instead.
    static func take(path: String?, clock: UInt32, logger: Logger,
                     unrecorded: (UInt32) -> UInt32 = SyncEpochFile.nextSecond) -> UInt32 {
        guard let path else { return unrecorded(clock) }
        var last: UInt32?
        do throws(StateFile.Problem) {
            if case .contents(let bytes) = try StateFile.read(path: path, maximumBytes: 32) {
                last = String(decoding: bytes, as: UTF8.self).split(separator: "\n").first.flatMap { UInt32($0) }
                if last == nil { logger.warning("sync: \(path) holds no epoch; using the clock") }
            }
        } catch {
            logger.warning("sync: cannot read the last epoch from \(path): \(error); using the clock")
        }
        let epoch = SyncEpoch.next(after: last, clock: clock)
        do throws(StateFile.Problem) {
            try StateFile.write(Array("\(epoch)\n".utf8), to: path)
        } catch {
            logger.warning("sync: cannot record the epoch in \(path): \(error); a start after the clock stepped back may be refused by the peer until the clock catches up")
            return unrecorded(max(clock, epoch))
        }
        return epoch
    }

    /// Without a record, the next second, once the clock has reached it: no earlier start can
    /// have taken it (each took a second it waited for) unless the clock stepped back.
    static func nextSecond(after clock: UInt32) -> UInt32 {
        let epoch = clock == .max ? clock : clock + 1
        SystemCall.sleepUntilWallClock(UInt64(epoch) * 1_000_000_000)
        return epoch
    }
}
