/// The whole policy a tracker enforces: what the rule files say, in the form the tracker
/// evaluates. Built by SeqwallRules, swapped whole on reload; the tracker never mutates it.
public struct Policy: Sendable, Equatable {
    /// The protected networks; decide direction in gateway mode.
    public var inside: [IPNetwork] = []
    public var defaultInbound: RuleAction = .block
    public var defaultOutbound: RuleAction = .pass
    /// In file order; the first rule that matches a new connection decides.
    public var rules: [Rule] = [] {
        didSet {
            index = RuleIndex(rules)
            untrackedRules = rules.indices.filter { rules[$0].decidesUntracked }
        }
    }
    /// The positions of the rules that also decide protocols seqwall does not track.
    public private(set) var untrackedRules: [Int] = []
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
    /// `set synproxy always|adaptive`: when `synproxy` rules proxy (SynProxyMode).
    public var synProxyMode = SynProxyMode.always

    /// Whether a rule has `synproxy`: its connections' packets are then rewritten, and the
    /// queues must copy them whole (docs/synproxy.md).
    public var hasSynProxyRules: Bool { rules.contains { $0.synProxy != nil } }

    public init() {}

    /// Whether a decision looks up a table too large to stay cached between SYNs, which the
    /// tracker's batch warm-up reads ahead in.
    public var warmsDecisions: Bool {
        index.tableLookups.contains { $0 >> 1 < tables.count && tables[$0 >> 1].matcher.isLarge }
    }

    public func isInside(_ address: IPAddress) -> Bool {
        inside.contains { $0.contains(address) }
    }

    /// The decision for a packet of a protocol seqwall does not track (nothing is kept for it):
    /// the first rule written without a protocol or ports that matches its addresses, else the
    /// direction's default. Such packets are rare, and so are those rules: a plain scan.
    public func decideUntracked(direction: Direction, source: IPAddress,
                                destination: IPAddress) -> (action: RuleAction, ruleIndex: Int?) {
        for position in untrackedRules
        where rules[position].matches(direction: direction, source: source, destination: destination, destinationPort: 0,
                                      tables: tables) {
            return (rules[position].action, position)
        }
        return (direction == .inbound ? defaultInbound : defaultOutbound, nil)
    }

    /// The decision for the first packet of a new connection, and the rule that made it
    /// (nil when the default decided).
    public func decide(protocolName: TrackedProtocol = .tcp, direction: Direction, source: IPAddress,
                       destination: IPAddress, destinationPort: UInt16) -> (action: RuleAction, ruleIndex: Int?) {
        decide(protocolName: protocolName, direction: direction, source: source, destination: destination,
               destinationPort: destinationPort, answers: nil)
    }

    /// `decide`, taking the table answers the tracker's batch warm-up found for this flow
    /// (TableAnswers) instead of searching those tables again: the same decision.
    func decide(protocolName: TrackedProtocol = .tcp, direction: Direction, source: IPAddress, destination: IPAddress,
                destinationPort: UInt16, answers: UnsafePointer<TableAnswers>?) -> (action: RuleAction, ruleIndex: Int?) {
        let first = index.first(protocolName: protocolName, direction: direction, source: source, destination: destination,
                                destinationPort: destinationPort, tables: tables, answers: answers)
        guard let first else { return (direction == .inbound ? defaultInbound : defaultOutbound, nil) }
        return (index.action(first), first)
    }
}
