/// Which per-source half-open counters a connection was charged to when it was opened. The
/// connection gives back exactly these when it leaves half-open or goes away, whatever the
/// policy says by then, so counts stay exact across reloads.
public struct HalfOpenCharges: OptionSet, Sendable, Equatable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The source's own count (`limit half-open N per-source`).
    public static let source = HalfOpenCharges(rawValue: 0x01)
    /// The count of the source under the rule `Connection.chargedRule` names.
    public static let rule = HalfOpenCharges(rawValue: 0x02)
}
