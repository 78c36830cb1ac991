/// What the rule files say, in the form the tracker evaluates. Built by SeqwallRules, swapped whole
/// on reload; the tracker never mutates it.

/// Which way a new connection goes relative to the protected side.
public enum Direction: UInt8, Sendable, CustomStringConvertible {
    case inbound
    case outbound

    public var description: String { self == .inbound ? "in" : "out" }
}

/// What a rule or a default does with the first packet of a new connection.
public enum RuleAction: UInt8, Sendable, CustomStringConvertible {
    case pass
    case block
    /// Refuse at once: the client gets a TCP RST (see the daemon for how the RST is made).
    case reject

    public var description: String {
        switch self {
        case .pass: "pass"
        case .block: "block"
        case .reject: "reject"
        }
    }
}

/// An inclusive port range; a single port has `lower == upper`.
public struct PortRange: Hashable, Sendable, CustomStringConvertible {
    public let lower: UInt16
    public let upper: UInt16

    public init(_ lower: UInt16, _ upper: UInt16) {
        self.lower = lower
        self.upper = upper
    }

    public init(_ port: UInt16) { self.init(port, port) }

    public func contains(_ port: UInt16) -> Bool { port >= lower && port <= upper }

    public var description: String { lower == upper ? "\(lower)" : "\(lower)-\(upper)" }
}

/// Where a statement came from, for messages and for `rules check --print`.
public struct SourceLocation: Hashable, Sendable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// One `pass|block|reject in|out tcp|udp|icmp|icmp6 ...` line.
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
    public var location: SourceLocation

    public init(action: RuleAction, direction: Direction, protocolName: TrackedProtocol = .tcp, from: [IPNetwork] = [],
                to: [IPNetwork] = [], fromTables: [TableReference] = [], toTables: [TableReference] = [],
                ports: [PortRange] = [], halfOpenPerSource: Int? = nil, location: SourceLocation) {
        self.action = action
        self.direction = direction
        self.protocolName = protocolName
        self.from = from
        self.to = to
        self.fromTables = fromTables
        self.toTables = toTables
        self.ports = ports
        self.halfOpenPerSource = halfOpenPerSource
        self.location = location
    }

    /// Whether this rule applies to a new flow of `protocolName` with these endpoints
    /// (`destinationPort` is ignored for ICMP, whose rules have no ports); `tables` are the
    /// policy's, which the table references point into.
    public func matches(protocolName: TrackedProtocol = .tcp, direction: Direction, source: IPAddress,
                        destination: IPAddress, destinationPort: UInt16, tables: [AddressTable] = []) -> Bool {
        guard direction == self.direction, protocolName == self.protocolName else { return false }
        if !Rule.listMatches(from, fromTables, source, tables) { return false }
        if !Rule.listMatches(to, toTables, destination, tables) { return false }
        if !ports.isEmpty && !ports.contains(where: { $0.contains(destinationPort) }) { return false }
        return true
    }

    /// An address list matches when it is empty (`any`) or one of its items contains the address.
    private static func listMatches(_ networks: [IPNetwork], _ references: [TableReference], _ address: IPAddress,
                                    _ tables: [AddressTable]) -> Bool {
        if networks.isEmpty && references.isEmpty { return true }
        return networks.contains { $0.contains(address) } || references.contains { $0.matches(address, in: tables) }
    }
}

/// Per-state timeouts in seconds, with the kernel's defaults (nf_conntrack_proto_tcp.c).
public struct TCPTimeouts: Sendable, Equatable {
    public var synSent: UInt32 = 120
    public var synSent2: UInt32 = 120
    public var synRecv: UInt32 = 60
    public var established: UInt32 = 432_000
    public var finWait: UInt32 = 120
    public var closeWait: UInt32 = 60
    public var lastAck: UInt32 = 30
    public var timeWait: UInt32 = 120
    public var close: UInt32 = 10
    /// Used instead of a longer one when a side keeps retransmitting (RFC 1122 R2 bound).
    public var retransmit: UInt32 = 300
    /// Used instead of a longer one while data is unacknowledged.
    public var unacknowledged: UInt32 = 300

    public init() {}

    public subscript(state: TCPState) -> UInt32 {
        get {
            switch state {
            case .none: close
            case .synSent: synSent
            case .synSent2: synSent2
            case .synRecv: synRecv
            case .established: established
            case .finWait: finWait
            case .closeWait: closeWait
            case .lastAck: lastAck
            case .timeWait: timeWait
            case .close: close
            }
        }
        set {
            switch state {
            case .none: break
            case .synSent: synSent = newValue
            case .synSent2: synSent2 = newValue
            case .synRecv: synRecv = newValue
            case .established: established = newValue
            case .finWait: finWait = newValue
            case .closeWait: closeWait = newValue
            case .lastAck: lastAck = newValue
            case .timeWait: timeWait = newValue
            case .close: close = newValue
            }
        }
    }
}

/// Timeouts of the flows that are not TCP, in seconds, with the kernel's defaults
/// (nf_conntrack_proto_udp.c udp_timeouts, nf_conntrack_proto_icmp.c nf_ct_icmp_timeout,
/// nf_conntrack_proto_icmpv6.c nf_ct_icmpv6_timeout).
public struct DatagramTimeouts: Sendable, Equatable {
    /// A UDP flow until it has been a stream for a while (UDP_CT_UNREPLIED).
    public var udpSingle: UInt32 = 30
    /// A UDP flow with traffic both ways that is still active 2 s after it began
    /// (UDP_CT_REPLIED; the flow is then assured).
    public var udpStream: UInt32 = 120
    /// ICMP and ICMPv6 echo.
    public var icmp: UInt32 = 30

    public init() {}
}

/// `limit ...` statements, enforced by ConnectionTracker+Limits.swift on every new SYN.
public struct Limits: Sendable, Equatable {
    public var states: Int = 262_144
    public var halfOpen: Int?
    public var halfOpenPerSource: Int?
    public var synRatePerSource: (rate: Int, burst: Int)?

    public init() {}

    public static func == (lhs: Limits, rhs: Limits) -> Bool {
        lhs.states == rhs.states && lhs.halfOpen == rhs.halfOpen && lhs.halfOpenPerSource == rhs.halfOpenPerSource
            && lhs.synRatePerSource?.rate == rhs.synRatePerSource?.rate
            && lhs.synRatePerSource?.burst == rhs.synRatePerSource?.burst
    }
}

/// How many dropped packets get a log line (`set drop-log`). The daemon writes the lines; the
/// tracker only carries the setting, so a reload changes it like any other part of the policy.
public enum DropLogMode: String, Sendable, CaseIterable {
    /// No line per dropped packet (the counters still count every drop).
    case off
    /// Lines at a bounded rate; what the rate leaves out is counted and summarised.
    case sampled
    /// A line for every dropped packet.
    case full
}

/// The whole policy a tracker enforces.
public struct Policy: Sendable, Equatable {
    /// The protected networks; decide direction in gateway mode.
    public var inside: [IPNetwork] = []
    public var defaultInbound: RuleAction = .block
    public var defaultOutbound: RuleAction = .pass
    /// In file order; the first rule that matches a new connection decides.
    public var rules: [Rule] = [] {
        didSet { index = RuleIndex(rules) }
    }
    /// The rules grouped so that `decide` looks only at those that can match.
    public private(set) var index = RuleIndex([])
    /// The `table` statements, in file order; rules name them by position (TableReference).
    public var tables: [AddressTable] = []
    public var limits = Limits()
    public var timeouts = TCPTimeouts()
    public var datagramTimeouts = DatagramTimeouts()
    /// `set pickup on`: adopt connections first seen mid-stream.
    public var pickup = false
    /// `set pickup grace DURATION`, in seconds: how long after a start without a usable state
    /// file, and after `conntrack flush`, connections first seen mid-stream are adopted even
    /// with pickup off (docs/design.md, Pickup). 0: never.
    public var pickupGrace: UInt32 = 60
    /// `set pickup ephemeral-ports LOW-HIGH`: the ports clients connect from, which tell the
    /// client of a connection seen mid-stream (PickupOpener). Linux's default
    /// ip_local_port_range.
    public var ephemeralPorts = PortRange(32768, 60999)
    /// `set drop-log off|sampled|full`: which dropped packets get a log line.
    public var dropLog = DropLogMode.sampled

    public init() {}

    public func isInside(_ address: IPAddress) -> Bool {
        inside.contains { $0.contains(address) }
    }

    /// The decision for the first packet of a new connection, and the rule that made it
    /// (nil when the default decided).
    public func decide(protocolName: TrackedProtocol = .tcp, direction: Direction, source: IPAddress,
                       destination: IPAddress, destinationPort: UInt16) -> (action: RuleAction, ruleIndex: Int?) {
        let first = index.first(direction: direction, protocolName: protocolName, destinationPort: destinationPort) {
            rules[$0].matches(protocolName: protocolName, direction: direction, source: source,
                              destination: destination, destinationPort: destinationPort, tables: tables)
        }
        guard let first else { return (direction == .inbound ? defaultInbound : defaultOutbound, nil) }
        return (rules[first].action, first)
    }
}
