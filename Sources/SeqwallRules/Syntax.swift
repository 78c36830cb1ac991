import SeqwallCore

// The syntax tree the parser builds: one `Statement` per line, values as written and where they
// were written. The parser checks only the shape of things (is this a number, an address?); the
// checker decides whether the values make sense (port 0, host bits, contradictions) so that each
// rule lives in one place.

/// A whole number as written. `value` saturates at `NumberLiteral.saturation`, so a number too
/// long for any field is still a number and fails the range check that names its field.
struct NumberLiteral: Sendable {
    static let saturation = 1 << 62

    let text: String
    let value: Int
    let location: SourceLocation
}

/// An address or network as written: `198.51.100.7`, `203.0.113.0/24`, `2001:db8::/64`.
struct NetworkLiteral: Sendable {
    let text: String
    let address: IPAddress
    /// nil when written without `/N`: a single host.
    let prefixLength: Int?
    /// Written with a colon. An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`) parses to the same
    /// IPAddress as the IPv4 one, and would then take an IPv4 prefix length; the checker refuses it.
    let writtenAsIPv6: Bool
    let location: SourceLocation
    /// Where the digits after the slash start (or `location` when there is no slash).
    let prefixLocation: SourceLocation
}

/// A port (`22`) or an inclusive range (`8000-8100`) as written; bounds not yet checked.
struct PortLiteral: Sendable {
    let text: String
    let lowerText: Substring
    let upperText: Substring
    let lower: Int
    let upper: Int
    let location: SourceLocation
    let upperLocation: SourceLocation

    var isRange: Bool { upperLocation != location }
}

enum DurationUnit: Int, Sendable {
    case seconds = 1
    case minutes = 60
    case hours = 3600
    case days = 86400
}

/// `30s`, `5m`, `2h`, `5d`, or a bare number of seconds.
struct DurationLiteral: Sendable {
    let text: String
    let amount: Int
    let unit: DurationUnit
    let location: SourceLocation
}

/// What a `timeout` statement can set: `timeout tcp STATE` for the kernel's TCP states that
/// have a timeout and its two special timeouts, then `timeout udp single|stream` and
/// `timeout icmp`. The case order is the kernel's (enum tcp_conntrack, then the protocols),
/// which is also the order the canonical form prints them in.
enum TimeoutName: CaseIterable, Sendable, Hashable {
    case synSent, synRecv, established, finWait, closeWait, lastAck, timeWait, close, synSent2
    case retransmit, unacknowledged
    case udpSingle, udpStream
    case icmp

    static let tcpCases = allCases.filter { $0.protocolName == .tcp }
    static let udpCases = allCases.filter { $0.protocolName == .udp }

    var protocolName: TrackedProtocol {
        switch self {
        case .udpSingle, .udpStream: .udp
        case .icmp: .icmp
        default: .tcp
        }
    }

    /// The canonical spelling of the word after the protocol (empty for `timeout icmp`).
    var keyword: String {
        switch self {
        case .synSent: "syn-sent"
        case .synRecv: "syn-recv"
        case .established: "established"
        case .finWait: "fin-wait"
        case .closeWait: "close-wait"
        case .lastAck: "last-ack"
        case .timeWait: "time-wait"
        case .close: "close"
        case .synSent2: "syn-sent2"
        case .retransmit: "retransmit"
        case .unacknowledged: "unacknowledged"
        case .udpSingle: "single"
        case .udpStream: "stream"
        case .icmp: ""
        }
    }

    /// What follows `timeout` in a statement: `tcp syn-sent`, `udp stream`, `icmp`.
    var statementText: String {
        let name = protocolName == .icmp ? "icmp" : protocolName.conntrackName
        return keyword.isEmpty ? name : "\(name) \(keyword)"
    }

    /// A name among `candidates`; accepts `-` or `_` and any case, so the kernel's own names
    /// (SYN_SENT) work too.
    init?(keyword: String, among candidates: [TimeoutName]) {
        let normalized = String(keyword.lowercased().map { $0 == "_" ? "-" : $0 })
        guard let name = candidates.first(where: { $0.keyword == normalized }) else { return nil }
        self = name
    }

    var keyPath: WritableKeyPath<Policy, UInt32> {
        switch self {
        case .synSent: \.timeouts.synSent
        case .synRecv: \.timeouts.synRecv
        case .established: \.timeouts.established
        case .finWait: \.timeouts.finWait
        case .closeWait: \.timeouts.closeWait
        case .lastAck: \.timeouts.lastAck
        case .timeWait: \.timeouts.timeWait
        case .close: \.timeouts.close
        case .synSent2: \.timeouts.synSent2
        case .retransmit: \.timeouts.retransmit
        case .unacknowledged: \.timeouts.unacknowledged
        case .udpSingle: \.datagramTimeouts.udpSingle
        case .udpStream: \.datagramTimeouts.udpStream
        case .icmp: \.datagramTimeouts.icmp
        }
    }
}

/// `pass|block|reject in|out [tcp|udp|icmp echo|icmp6 echo] [from ...] [to ...] [port ...]
/// [limit half-open N per-source] [limit conn ...] [limit conn-rate ...] [synproxy [mss N] [wscale N]]`.
struct RuleStatement: Sendable {
    let action: RuleAction
    let direction: Direction
    /// nil when the line names no protocol (`block in from <drop>`): every protocol, as in pf.
    let protocolName: TrackedProtocol?
    /// Empty, with no table either, means any.
    let from: [NetworkLiteral]
    let to: [NetworkLiteral]
    /// `<name>` and `!<name>` items of the `from` and `to` lists.
    let fromTables: [TableNameLiteral]
    let toTables: [TableNameLiteral]
    let ports: [PortLiteral]
    /// The per-rule `limit half-open N per-source`, and where its `limit` keyword is.
    let halfOpenPerSource: NumberLiteral?
    let limitLocation: SourceLocation?
    /// `limit conn N per-source [...]` and `limit conn-rate N/DURATION per-source [...]`.
    let connPerSource: ConnectionLimitLiteral?
    let connRatePerSource: ConnectionLimitLiteral?
    let synProxy: SynProxyLiteral?
    /// The action keyword.
    let location: SourceLocation
}

extension RuleStatement {
    /// The first clause of a line without a protocol that only a tcp rule may have, with its
    /// keyword as written.
    var tcpOnlyClause: (keyword: String, location: SourceLocation)? {
        if let literal = halfOpenPerSource { return ("limit half-open", limitLocation ?? literal.location) }
        if let literal = connPerSource { return ("limit conn", literal.location) }
        if let literal = connRatePerSource { return ("limit conn-rate", literal.location) }
        if let literal = synProxy { return ("synproxy", literal.location) }
        return nil
    }

    /// A line without a protocol as the statements it stands for, tcp first: with ports, tcp
    /// and udp (ICMP has none); without, `icmp echo` and `icmp6 echo` too, each for the
    /// addresses of its family and only where both lists can hold one (a table holds both),
    /// and `block` where the line says `reject` (an echo request has no refusal to answer with).
    var expanded: [RuleStatement] {
        var statements = [with(.tcp, action: action, from: from, to: to), with(.udp, action: action, from: from, to: to)]
        guard ports.isEmpty else { return statements }
        for (name, isIPv4) in [(TrackedProtocol.icmp, true), (.icmp6, false)] {
            let from = self.from.filter { $0.address.isIPv4 == isIPv4 }
            let to = self.to.filter { $0.address.isIPv4 == isIPv4 }
            let fromCanMatch = self.from.isEmpty || !from.isEmpty || !fromTables.isEmpty
            let toCanMatch = self.to.isEmpty || !to.isEmpty || !toTables.isEmpty
            guard fromCanMatch, toCanMatch else { continue }
            statements.append(with(name, action: action == .reject ? .block : action, from: from, to: to))
        }
        return statements
    }

    private func with(_ protocolName: TrackedProtocol, action: RuleAction, from: [NetworkLiteral],
                      to: [NetworkLiteral]) -> RuleStatement {
        RuleStatement(action: action, direction: direction, protocolName: protocolName, from: from, to: to,
                      fromTables: fromTables, toTables: toTables, ports: ports, halfOpenPerSource: halfOpenPerSource,
                      limitLocation: limitLocation, connPerSource: connPerSource, connRatePerSource: connRatePerSource,
                      synProxy: synProxy, location: location)
    }
}

/// `synproxy [mss N] [wscale N]` as written; `location` is the `synproxy` keyword.
struct SynProxyLiteral: Sendable {
    let mss: NumberLiteral?
    let windowScale: NumberLiteral?
    let location: SourceLocation
}

/// `limit conn N per-source` or `limit conn-rate N/DURATION per-source`, with its overload.
struct ConnectionLimitLiteral: Sendable {
    let count: NumberLiteral
    /// The DURATION of `conn-rate`; nil for `conn`.
    let duration: DurationLiteral?
    let overload: OverloadLiteral?
    /// The `limit` keyword.
    let location: SourceLocation
}

/// `overload <NAME> [expire DURATION] [flush]`.
struct OverloadLiteral: Sendable {
    let table: TableNameLiteral
    let expire: DurationLiteral?
    let flush: Bool
    /// The `overload` keyword.
    let location: SourceLocation
}

/// `<name>` or `!<name>` as written in an address list.
struct TableNameLiteral: Sendable {
    let name: String
    let negated: Bool
    let location: SourceLocation
}

/// One entry of a table, in braces or on a line of a table file: `198.51.100.0/24` or, as an
/// exception, `!198.51.100.7`.
struct TableEntryLiteral: Sendable {
    let network: NetworkLiteral
    let negated: Bool
}

/// `table <name> [persist] [file "PATH"]... [{ ENTRY, ... }]`.
struct TableStatement: Sendable {
    let name: String
    let nameLocation: SourceLocation
    let persist: Bool
    /// Paths as written, each with where its quoted name is (what a missing-file error points at).
    let files: [(path: String, location: SourceLocation)]
    let entries: [TableEntryLiteral]
    /// The `table` keyword.
    let location: SourceLocation
}

/// One line of a rule file. Each case's `location` is its first keyword.
enum Statement: Sendable {
    /// `location` is the quoted file name, which is what a missing-file error points at.
    case include(path: String, location: SourceLocation)
    case inside([NetworkLiteral], location: SourceLocation)
    case defaultAction(Direction, RuleAction, location: SourceLocation)
    case rule(RuleStatement)
    /// Reaches the checker with the entries of its files read by the loader.
    case table(TableStatement)
    case limitStates(NumberLiteral, location: SourceLocation)
    case limitHalfOpen(NumberLiteral, perSource: Bool, location: SourceLocation)
    /// `burst` is nil when left out; it then equals the rate (one second's worth).
    case limitSynRate(rate: NumberLiteral, burst: NumberLiteral?, location: SourceLocation)
    case limitConn(ConnectionLimitLiteral)
    case timeout(TimeoutName, DurationLiteral, location: SourceLocation)
    case pickup(Bool, location: SourceLocation)
    case pickupGrace(DurationLiteral, location: SourceLocation)
    case ephemeralPorts(PortLiteral, location: SourceLocation)
    case dropLog(DropLogMode, location: SourceLocation)
    /// `set synproxy always` or `set synproxy adaptive [start P%] [end P%]` (nil when left out).
    case synProxyMode(start: NumberLiteral?, end: NumberLiteral?, adaptive: Bool, location: SourceLocation)
}
