import SeqwallCore

/// A streamed line of a `watch` answer: an event, or how many were lost.
public struct WatchLine: Codable, Sendable {
    public var watch: EventRecord?
    public var lost: UInt64?

    public init(watch: EventRecord? = nil, lost: UInt64? = nil) {
        self.watch = watch
        self.lost = lost
    }
}
