/// Which header sequence numbers of one peer incarnation were already seen: the highest, and
/// a bitmap of the 64 before it (as IPsec's anti-replay window, RFC 4303 3.4.3). A message
/// older than the window is refused as a replay too: the network does not hold a datagram
/// back that long behind 64 newer ones.
struct SyncReplayWindow {
    private(set) var highest: UInt64 = 0
    private var seen: UInt64 = 0

    /// Whether `sequence` is new; records it when it is.
    mutating func admit(_ sequence: UInt64) -> Bool {
        guard sequence != 0 else { return false }
        if sequence > highest {
            let shift = sequence - highest
            seen = shift >= 64 ? 0 : seen << shift
            seen |= 1
            highest = sequence
            return true
        }
        let back = highest - sequence
        guard back < 64, seen & (1 << back) == 0 else { return false }
        seen |= 1 << back
        return true
    }
}
