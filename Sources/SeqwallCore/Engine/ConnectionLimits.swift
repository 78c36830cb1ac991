/// One scope's `limit conn` and `limit conn-rate` (global, or one rule's), with the rate's
/// GCRA parameters worked out once per policy rather than on each handshake.
struct ConnectionLimits {
    var count: SourceConnectionLimit?
    var rate: SourceConnectionLimit?
    /// The time one token takes to come back (DURATION / N), and how far ahead the bucket may
    /// be drawn ((N - 1) tokens): a bucket N deep refilled N tokens every DURATION.
    let rateInterval: UInt64
    let rateTolerance: UInt64

    init(count: SourceConnectionLimit? = nil, rate: SourceConnectionLimit? = nil) {
        self.count = count
        self.rate = rate
        if let rate {
            rateInterval = max(1, UInt64(rate.seconds) * 1_000_000_000 / UInt64(rate.count))
            rateTolerance = rateInterval * UInt64(rate.count - 1)
        } else {
            (rateInterval, rateTolerance) = (0, 0)
        }
    }

    var isEmpty: Bool { count == nil && rate == nil }
}
