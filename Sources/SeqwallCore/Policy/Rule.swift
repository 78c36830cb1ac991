/// One `pass|block|reject in|out tcp|udp|icmp|icmp6 ...` line, or one protocol of a line without one.
public struct Rule: Sendable, Equatable {
    public var action: RuleAction
    public var direction: Direction
    /// `icmp` and `icmp6` rules are for echo requests, the only ICMP messages that open a flow.
    public var protocolName: TrackedProtocol
    /// With `fromTables` empty too, any source.
    public var from: [IPNetwork]
    /// With `toTables` empty too, any destination.
    public var to: [IPNetwork]
    /// `<name>` and `!<name>` in the `from` list; a source matches an item of either list.
    public var fromTables: [TableReference]
    public var toTables: [TableReference]
    /// Destination ports; empty means any port.
    public var ports: [PortRange]
    /// `limit half-open N per-source` on a pass rule (HalfOpenLimiter; counted per rule
    /// identity, so the count survives a reload that moves the rule).
    public var halfOpenPerSource: Int?
    /// `synproxy` on a pass tcp rule (SynProxyRule); nil for every other rule.
    public var synProxy: SynProxyRule?
    /// `limit conn N per-source` and `limit conn-rate N/DURATION per-source` on a pass rule,
    /// counted per rule identity like `halfOpenPerSource`.
    public var connPerSource: SourceConnectionLimit?
    public var connRatePerSource: SourceConnectionLimit?
    public var location: SourceLocation
    /// Written without a protocol (`block in from <drop>`): the line became one rule per
    /// protocol it applies to, each with this set, all at its location. Their tcp rule without
    /// ports also decides the protocols seqwall does not track (Policy.decideUntracked).
    public var anyProtocol = false

    public init(action: RuleAction, direction: Direction, protocolName: TrackedProtocol = .tcp, from: [IPNetwork] = [],
                to: [IPNetwork] = [], fromTables: [TableReference] = [], toTables: [TableReference] = [],
                ports: [PortRange] = [], halfOpenPerSource: Int? = nil,
                connPerSource: SourceConnectionLimit? = nil, connRatePerSource: SourceConnectionLimit? = nil,
                synProxy: SynProxyRule? = nil,
                location: SourceLocation) {
        self.action = action
        self.direction = direction
        self.protocolName = protocolName
        self.from = from
        self.to = to
        self.fromTables = fromTables
        self.toTables = toTables
        self.ports = ports
        self.halfOpenPerSource = halfOpenPerSource
        self.synProxy = synProxy
        self.connPerSource = connPerSource
        self.connRatePerSource = connRatePerSource
        self.location = location
    }

    /// Whether it stands for its line for the protocols seqwall does not track: the tcp rule of a
    /// line without a protocol and without ports (a port needs tcp or udp).
    var decidesUntracked: Bool { anyProtocol && protocolName == .tcp && ports.isEmpty }

    /// Whether a connection it passes needs a per-source count (HalfOpenLimiter gives it an id).
    var countsPerSource: Bool { halfOpenPerSource != nil || connPerSource != nil || connRatePerSource != nil }

    /// Whether this rule applies to a new flow of `protocolName` with these endpoints
    /// (`destinationPort` is ignored for ICMP, whose rules have no ports); `tables` are the
    /// policy's, which the table references point into.
    public func matches(protocolName: TrackedProtocol = .tcp, direction: Direction, source: IPAddress,
                        destination: IPAddress, destinationPort: UInt16, tables: [AddressTable] = []) -> Bool {
        matches(protocolName: protocolName, direction: direction, source: source, destination: destination,
                destinationPort: destinationPort, tables: tables, answers: nil)
    }

    /// `matches`, taking the table answers the batch warm-up found for this flow where it has
    /// them (TableAnswers): the same result, without searching those tables again.
    // Always inlined: into RuleIndex.first, where the optimizer otherwise stops inlining it
    // once it takes the answers, and every rule tried whole pays a call (BENCHMARKS.md).
    @inline(__always)
    func matches(protocolName: TrackedProtocol, direction: Direction, source: IPAddress, destination: IPAddress,
                 destinationPort: UInt16, tables: [AddressTable], answers: UnsafePointer<TableAnswers>?) -> Bool {
        guard direction == self.direction, protocolName == self.protocolName else { return false }
        if !Rule.listMatches(from, fromTables, source, tables, answers, bySource: true) { return false }
        if !Rule.listMatches(to, toTables, destination, tables, answers, bySource: false) { return false }
        if !ports.isEmpty && !ports.contains(where: { $0.contains(destinationPort) }) { return false }
        return true
    }

    /// An address list matches when it is empty (`any`) or one of its items contains the address.
    /// Always inlined, as `matches` is into the rule index's search: with a table's search inside
    /// (PrefixMatcher) the optimizer otherwise leaves it out of line, a call for every rule
    /// with networks tried (BENCHMARKS.md, Address tables).
    @inline(__always)
    private static func listMatches(_ networks: [IPNetwork], _ references: [TableReference], _ address: IPAddress,
                                    _ tables: [AddressTable], _ answers: UnsafePointer<TableAnswers>?,
                                    bySource: Bool) -> Bool {
        if networks.isEmpty && references.isEmpty { return true }
        return networks.contains { $0.contains(address) }
            || references.contains { $0.matches(address, in: tables, answers: answers, bySource: bySource) }
    }
}
