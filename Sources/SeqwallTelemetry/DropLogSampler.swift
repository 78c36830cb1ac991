import SeqwallCore

/// The `sampled` drop log's budget: a token bucket, `burst` lines at once and `rate` a second
/// after that, kept per worker on the worker's clock (the rate the drop log always had).
public struct DropLogSampler: Sendable {
    public static let rate: UInt64 = 10
    public static let burst: UInt64 = 20
    static let interval = 1_000_000_000 / rate

    private var tokens = DropLogSampler.burst
    /// When the last whole token was added; a part-token's time is carried over, so the long-run
    /// rate is `rate` exactly.
    private var refilledAt: UInt64?

    public init() {}

    /// Whether a line may be written now; false means it is counted as suppressed instead.
    @inline(__always)
    public mutating func admit(now: UInt64) -> Bool {
        if let last = refilledAt, now > last {
            let added = (now - last) / DropLogSampler.interval
            if added > 0 {
                tokens = min(DropLogSampler.burst, tokens + added)
                refilledAt = tokens == DropLogSampler.burst ? now : last + added * DropLogSampler.interval
            }
        } else if refilledAt == nil {
            refilledAt = now
        }
        guard tokens > 0 else { return false }
        tokens -= 1
        return true
    }
}
