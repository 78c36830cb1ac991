import SeqwallCore

/// The lines that say what the drop log left out, so that nothing goes missing unannounced.
public enum DropLogSummary {
    /// How often the `sampled` summary comes, at most (the kernel's printk rate limit uses the
    /// same five seconds: DEFAULT_RATELIMIT_INTERVAL).
    public static let intervalNanoseconds: UInt64 = 5_000_000_000

    /// `sampled` left these out to keep to its rate.
    public static func suppressed(_ count: UInt64, queue: UInt16) -> String {
        "\(Counted.text(count, "drop line")) suppressed on queue \(queue) (set drop-log sampled: \(DropLogSampler.rate)/s, burst \(DropLogSampler.burst))"
    }

    /// How often the warning about fragments in the queue comes, at most.
    public static let fragmentWarningIntervalNanoseconds: UInt64 = 60_000_000_000

    /// IP fragments reached the queue: the diversion does not turn on the kernel's
    /// reassembly (then datagrams larger than the path's MTU are lost), or the kernel would not
    /// reassemble them. Says what to do about it.
    public static func fragments(_ count: UInt64, queue: UInt16) -> String {
        "\(count) IP fragments reached queue \(queue) and were dropped (reason fragment): either the diversion does not turn on the kernel's reassembly, and every datagram larger than the MTU is lost (use the shipped diversion, seqwall-divert start, or turn reassembly on in yours; docs/design.md, Fragments), or the kernel would not reassemble them (an IPv6 first fragment without its whole header chain, RFC 8200 4.5)"
    }

    /// The ring to the logging thread was full: the log could not keep up.
    public static func lost(_ count: UInt64, queue: UInt16) -> String {
        "\(Counted.text(count, "drop line")) lost on queue \(queue): the log could not keep up"
    }
}
