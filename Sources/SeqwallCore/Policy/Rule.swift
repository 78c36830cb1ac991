/// One `pass|block|reject in|out tcp|udp|icmp|icmp6 ...` line.
public struct Rule: Sendable, Equatable {
    public var action: RuleAction
    public var direction: Direction
    /// `icmp` and `icmp6` rules are for echo requests, the only ICMP messages that open a flow.
    public var protocolName: TrackedProtocol
    /// Empty means any source.
    public var from: [IPNetwork]
    /// Empty means any destination.
    public var to: [IPNetwork]
    /// Destination ports; empty means any port.
    public var ports: [PortRange]
    /// `limit half-open N per-source` on a pass rule (HalfOpenLimiter; counted per rule
    /// identity, so the count survives a reload that moves the rule).
    public var halfOpenPerSource: Int?
    public var location: SourceLocation

    public init(action: RuleAction, direction: Direction, protocolName: TrackedProtocol = .tcp, from: [IPNetwork] = [],
                to: [IPNetwork] = [], ports: [PortRange] = [], halfOpenPerSource: Int? = nil, location: SourceLocation) {
        self.action = action
        self.direction = direction
        self.protocolName = protocolName
        self.from = from
        self.to = to
        self.ports = ports
        self.halfOpenPerSource = halfOpenPerSource
        self.location = location
    }

    /// Whether this rule applies to a new flow of `protocolName` with these endpoints
    /// (`destinationPort` is ignored for ICMP, whose rules have no ports).
    public func matches(protocolName: TrackedProtocol = .tcp, direction: Direction, source: IPAddress,
                        destination: IPAddress, destinationPort: UInt16) -> Bool {
        guard direction == self.direction, protocolName == self.protocolName else { return false }
        if !from.isEmpty && !from.contains(where: { $0.contains(source) }) { return false }
        if !to.isEmpty && !to.contains(where: { $0.contains(destination) }) { return false }
        if !ports.isEmpty && !ports.contains(where: { $0.contains(destinationPort) }) { return false }
        return true
    }
}
