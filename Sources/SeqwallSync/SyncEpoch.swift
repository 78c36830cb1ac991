/// The epoch a sender starts with (docs/sync-protocol.md, Replay): strictly above the last one
/// this node used, even when its wall clock has stepped back since, and never below the clock.
/// The peer refuses an incarnation older than the one it holds (`old-epoch`), so an epoch that
/// went back with the clock would silence a restarted node until the clock caught up.
public enum SyncEpoch {
    /// `last`: the epoch of this node's previous start, nil when none is known; `clock`:
    /// wall-clock seconds now. At the top of the range the epoch stays there (a clock in 2106).
    public static func next(after last: UInt32?, clock: UInt32) -> UInt32 {
        guard let last else { return clock }
        return max(last == .max ? last : last + 1, clock)
    }
}
