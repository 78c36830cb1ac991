/// Which per-source counters a connection was charged to: its half-open counts when it was
/// opened, and (`limit conn`, `limit conn-rate`) the established counts it is to be charged to
/// when its handshake completes, then holds. The connection gives back exactly these when it
/// leaves half-open or goes away, whatever the policy says by then, so counts stay exact
/// across reloads.
public struct HalfOpenCharges: OptionSet, Sendable, Equatable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The source's own count (`limit half-open N per-source`).
    public static let source = HalfOpenCharges(rawValue: 0x01)
    /// The count of the source under the rule `Connection.chargedRule` names.
    public static let rule = HalfOpenCharges(rawValue: 0x02)
    /// To be counted, once established, under the global `limit conn`/`conn-rate`.
    public static let countsSource = HalfOpenCharges(rawValue: 0x04)
    /// To be counted, once established, under the rule `Connection.chargedRule` names.
    public static let countsRule = HalfOpenCharges(rawValue: 0x08)
    /// Holds one established count of its source under the global limits.
    public static let establishedSource = HalfOpenCharges(rawValue: 0x10)
    /// Holds one established count of its source under the rule `chargedRule` names.
    public static let establishedRule = HalfOpenCharges(rawValue: 0x20)
    /// No count: a connection a `synproxy` rule passed unproxied (the switch off, or its port
    /// marked closed, ClosedPortMemory), whose server's SYN-ACK shows the port open. Kept
    /// here because only a connection with charges has its changes of state looked at
    /// (`chargedStateChanged`), so no other connection pays for the check.
    public static let synProxyPassed = HalfOpenCharges(rawValue: 0x40)

    static let halfOpen: HalfOpenCharges = [.source, .rule]
    static let counting: HalfOpenCharges = [.countsSource, .countsRule]
    static let established: HalfOpenCharges = [.establishedSource, .establishedRule]
}
