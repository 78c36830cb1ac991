/// A token bucket over the answers to rejected packets, so that seqwall cannot be made to send
/// answers at the rate packets arrive (a reflector aimed at a forged source). The kernel's
/// REJECT is bounded the same way for ICMP (icmp_global_allow: net.ipv4.icmp_msgs_per_sec and
/// icmp_msgs_burst). Plain integers, no clock of its own: the caller passes `now`.
public struct AnswerRateLimit: Sendable {
    /// Answers per second, and how many may go out at once after a quiet spell.
    public let perSecond: UInt64
    public let burst: UInt64
    /// Tokens in thousandths, so that a refill between two close packets is not lost.
    private var milliTokens: UInt64
    private var last: UInt64

    public init(perSecond: UInt64 = 100, burst: UInt64 = 100) {
        self.perSecond = perSecond
        self.burst = burst
        milliTokens = burst &* 1000
        last = 0
    }

    /// Takes a token if one is left at `now` (monotonic nanoseconds).
    public mutating func admit(now: UInt64) -> Bool {
        let elapsed = now >= last ? now &- last : 0
        last = now
        // Nanoseconds × answers per second / 1e6 = thousandths of an answer; capped first so
        // that a long quiet spell cannot overflow.
        let refill = min(elapsed, 1_000_000_000 * 3600) &* perSecond / 1_000_000
        milliTokens = min(burst &* 1000, milliTokens &+ refill)
        guard milliTokens >= 1000 else { return false }
        milliTokens &-= 1000
        return true
    }
}
