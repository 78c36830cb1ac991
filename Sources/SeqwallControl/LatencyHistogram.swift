/// A fixed-bucket histogram of durations, in nanoseconds. Each queue worker owns one and updates
/// it on its own thread with plain integers (no atomics, no lock); a scrape asks each worker for
/// a `snapshot()` through its mailbox and merges them.
public struct LatencyHistogram: Sendable, Equatable {
    /// Upper bounds of the buckets, inclusive (Prometheus `le`), from a quarter microsecond (a
    /// packet of an established connection in a release build) to ten milliseconds (a batch
    /// held up by a reload or a page fault).
    public static let boundsNanoseconds: [UInt64] = [
        250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
        1_000_000, 2_500_000, 10_000_000,
    ]

    /// Observations per bucket, not cumulative: `counts[i]` holds those above bound i-1 and at
    /// most bound i; the last one those above every bound.
    public private(set) var counts: [UInt64]
    public private(set) var count: UInt64 = 0
    public private(set) var sumNanoseconds: UInt64 = 0

    public init() {
        counts = [UInt64](repeating: 0, count: LatencyHistogram.boundsNanoseconds.count + 1)
    }

    /// Records `times` observations of `nanoseconds` each (a batch's time shared evenly among
    /// its packets). Allocates nothing as long as this histogram's storage is not shared, which
    /// `snapshot()` sees to.
    @inline(__always)
    public mutating func record(nanoseconds: UInt64, times: UInt64 = 1) {
        var index = 0
        let bounds = LatencyHistogram.boundsNanoseconds
        while index < bounds.count && nanoseconds > bounds[index] { index += 1 }
        counts[index] &+= times
        count &+= times
        sumNanoseconds &+= nanoseconds &* times
    }

    /// Adds another histogram's observations (another worker's).
    public mutating func merge(_ other: LatencyHistogram) {
        for index in counts.indices { counts[index] &+= other.counts[index] }
        count &+= other.count
        sumNanoseconds &+= other.sumNanoseconds
    }

    /// A copy with storage of its own, so the owner's next `record` writes in place instead of
    /// copying its array on the packet path (copy-on-write would, after a plain copy).
    public func snapshot() -> LatencyHistogram {
        var copy = LatencyHistogram()
        for index in counts.indices { copy.counts[index] = counts[index] }
        copy.count = count
        copy.sumNanoseconds = sumNanoseconds
        return copy
    }
}

extension LatencyHistogram {
    /// What the daemon's processing histogram measures, for its help text.
    public static let measuredText = "Time per packet from taking a batch of packets off the queue's socket to its "
        + "verdicts handed to the kernel, the batch's time shared evenly among its packets; all queues together."
}
