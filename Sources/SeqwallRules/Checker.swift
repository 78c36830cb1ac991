import SeqwallCore

/// Builds a `Policy` from statements in file order (includes already spliced in by the loader),
/// checking every value and every repeated setting. It reports problems and keeps going, so that
/// one `rules check` shows all of them; a statement with an error is left out of the policy,
/// and the loader throws the errors instead of returning that policy anyway.
struct Checker {
    static let stateLimitRange = 16...67_108_864
    /// For the half-open counts and the SYN rate and burst: at least one, and no more than the
    /// largest table, which no count of connections can exceed anyway.
    static let countRange = 1...67_108_864
    static let portRange = 1...65535
    /// `set pickup grace`: up to a day. Longer is no grace period but pickup for good, which
    /// `set pickup on` says plainly.
    static let maximumPickupGrace: UInt32 = 86_400

    private(set) var policy = Policy()
    /// Provides each table's lookup arrays (AddressTable), for the daemon.
    var tableRegionProvider: RegionProvider?
    private var inside: [IPNetwork] = []
    /// Collected here and handed to the policy once, which indexes them on assignment.
    private(set) var rules: [Rule] = []
    /// Each table's position in `policy.tables` and where it was defined.
    private(set) var tablePositions: [String: (index: Int, location: SourceLocation)] = [:]

    // Settings that may be repeated only with the same value; each remembers the first statement.
    private var defaultInbound: Setting<RuleAction>?
    private var defaultOutbound: Setting<RuleAction>?
    private var stateLimit: Setting<Int>?
    private var halfOpenLimit: Setting<Int>?
    private var halfOpenPerSourceLimit: Setting<Int>?
    private var synRate: Setting<SynRate>?
    private var connLimit: Setting<SourceConnectionLimit>?
    private var connRateLimit: Setting<SourceConnectionLimit>?
    private var timeouts: [TimeoutName: Setting<UInt32>] = [:]
    private var pickup: Setting<Bool>?
    private var pickupGrace: Setting<UInt32>?
    private var ephemeralPorts: Setting<PortRange>?
    private var dropLog: Setting<DropLogMode>?
    private var synProxyMode: Setting<SynProxyMode>?
    /// `mss` of a `synproxy` clause: the IPv4 minimum (RFC 9293 3.7.1) up to the field's largest.
    static let synProxyMSSRange = 536...65535
    /// `wscale`: RFC 7323 2.3's largest shift is 14.
    static let windowScaleRange = 0...14
    static let percentRange = 1...100

    private struct SynRate: Equatable {
        let rate: Int
        let burst: Int
    }

    /// A value set by a statement, and which statement set it, for the contradiction message.
    private struct Setting<Value: Equatable> {
        let value: Value
        let statement: String
        let location: SourceLocation
    }

    /// The policy so far. Only meaningful when no error was reported.
    var result: Policy {
        var result = policy
        result.inside = ListNormalization.networks(inside)
        result.rules = rules
        return result
    }

    mutating func check(_ statement: Statement, _ diagnostics: inout Diagnostics) {
        switch statement {
        case .include:
            // The loader resolves includes; they never reach the checker.
            break

        case .table(let statement):
            // The loader reads a table's files and calls `define` itself.
            define(statement, fileEntries: [], &diagnostics)

        case .inside(let literals, _):
            if let networks = networks(literals, &diagnostics) { inside += networks }

        case .defaultAction(let direction, let action, let location):
            let text = "default \(direction) \(action)"
            if direction == .inbound {
                if Checker.settle(&defaultInbound, action, text, location, &diagnostics) { policy.defaultInbound = action }
            } else {
                if Checker.settle(&defaultOutbound, action, text, location, &diagnostics) { policy.defaultOutbound = action }
            }

        case .rule(let statement):
            rules += self.rules(statement, &diagnostics)

        case .limitStates(let count, let location):
            guard let value = checked(count, in: Checker.stateLimitRange, "limit states", &diagnostics) else { return }
            if Checker.settle(&stateLimit, value, "limit states \(value)", location, &diagnostics) {
                policy.limits.states = value
            }

        case .limitHalfOpen(let count, let perSource, let location):
            guard let value = checked(count, in: Checker.countRange, "half-open limit", &diagnostics) else { return }
            if perSource {
                if Checker.settle(&halfOpenPerSourceLimit, value, "limit half-open \(value) per-source", location, &diagnostics) {
                    policy.limits.halfOpenPerSource = value
                }
            } else {
                if Checker.settle(&halfOpenLimit, value, "limit half-open \(value)", location, &diagnostics) {
                    policy.limits.halfOpen = value
                }
            }

        case .limitSynRate(let rateLiteral, let burstLiteral, let location):
            let rate = checked(rateLiteral, in: Checker.countRange, "syn rate", &diagnostics)
            let burst = burstLiteral.map { checked($0, in: Checker.countRange, "burst", &diagnostics) } ?? rate
            guard let rate, let burst else { return }
            let text = "limit syn-rate \(rate)/s burst \(burst) per-source"
            if Checker.settle(&synRate, SynRate(rate: rate, burst: burst), text, location, &diagnostics) {
                policy.limits.synRatePerSource = (rate, burst)
            }

        case .limitConn(let literal):
            guard let limit = connectionLimit(literal, &diagnostics) else { return }
            let text = RulePrinter.text(of: limit)
            if limit.isRate {
                if Checker.settle(&connRateLimit, limit, "limit " + text, literal.location, &diagnostics) {
                    policy.limits.connRatePerSource = limit
                }
            } else if Checker.settle(&connLimit, limit, "limit " + text, literal.location, &diagnostics) {
                policy.limits.connPerSource = limit
            }

        case .timeout(let name, let duration, let location):
            guard let seconds = positiveSeconds(duration, "timeout", &diagnostics) else { return }
            let text = "timeout \(name.statementText) \(duration.text)"
            if Checker.settle(&timeouts[name], seconds, text, location, &diagnostics) {
                policy[keyPath: name.keyPath] = seconds
            }

        case .pickup(let on, let location):
            if Checker.settle(&pickup, on, "set pickup \(on ? "on" : "off")", location, &diagnostics) {
                policy.pickup = on
            }

        case .pickupGrace(let duration, let location):
            guard let seconds = graceSeconds(duration, &diagnostics) else { return }
            if Checker.settle(&pickupGrace, seconds, "set pickup grace \(duration.text)", location, &diagnostics) {
                policy.pickupGrace = seconds
            }

        case .ephemeralPorts(let literal, let location):
            guard let range = ports([literal], &diagnostics)?.first else { return }
            if Checker.settle(&ephemeralPorts, range, "set pickup ephemeral-ports \(literal.text)", location,
                              &diagnostics) {
                policy.ephemeralPorts = range
            }

        case .dropLog(let mode, let location):
            if Checker.settle(&dropLog, mode, "set drop-log \(mode.rawValue)", location, &diagnostics) {
                policy.dropLog = mode
            }

        case .synProxyMode(let startLiteral, let endLiteral, let adaptive, let location):
            guard adaptive else {
                if Checker.settle(&synProxyMode, .always, "set synproxy always", location, &diagnostics) {
                    policy.synProxyMode = .always
                }
                return
            }
            let start = startLiteral.map { checked($0, in: Checker.percentRange, "start", &diagnostics) }
                ?? SynProxyMode.defaultStart
            let end = endLiteral.map { checked($0, in: Checker.percentRange, "end", &diagnostics) } ?? SynProxyMode.defaultEnd
            guard let start, let end else { return }
            // Between the two the mode keeps what it was; with end at or above start it would
            // switch on and off with every connection.
            guard end < start else {
                diagnostics.report(at: endLiteral?.location ?? location,
                                   "synproxy adaptive end \(end)% must be below start \(start)%")
                return
            }
            let mode = SynProxyMode.adaptive(start: start, end: end)
            if Checker.settle(&synProxyMode, mode, "set synproxy adaptive start \(start)% end \(end)%", location,
                              &diagnostics) {
                policy.synProxyMode = mode
            }
        }
    }

    /// Records the first value of a setting; a later statement may repeat it but not change it,
    /// since then one of the two lines is a mistake and the file cannot say which.
    /// Returns whether the value stands.
    private static func settle<Value: Equatable>(
        _ slot: inout Setting<Value>?, _ value: Value, _ statement: String, _ location: SourceLocation,
        _ diagnostics: inout Diagnostics
    ) -> Bool {
        guard let first = slot else {
            slot = Setting(value: value, statement: statement, location: location)
            return true
        }
        if first.value == value { return true }
        diagnostics.report(at: location, "'\(statement)' contradicts '\(first.statement)' at \(first.location)")
        return false
    }

    // MARK: Tables

    /// Adds a table: its entries in braces, checked here, and `fileEntries`, already checked as
    /// its files were read. A repeated name is refused: the second statement would silently
    /// replace or merge with the first, and the file cannot say which was meant.
    mutating func define(_ statement: TableStatement, fileEntries: [TableEntry], _ diagnostics: inout Diagnostics) {
        var entries = fileEntries
        for literal in statement.entries {
            if let entry = tableEntry(literal, &diagnostics) { entries.append(entry) }
        }
        if let first = tablePositions[statement.name] {
            diagnostics.report(at: statement.nameLocation, "table <\(statement.name)> is already defined at \(first.location)")
            return
        }
        tablePositions[statement.name] = (policy.tables.count, statement.location)
        policy.tables.append(AddressTable(name: statement.name, persist: statement.persist, entries: entries,
                                         regionProvider: tableRegionProvider))
    }

    /// One entry of a table, checked as an address in a rule is.
    func tableEntry(_ literal: TableEntryLiteral, _ diagnostics: inout Diagnostics) -> TableEntry? {
        network(literal.network, &diagnostics).map { TableEntry($0, negated: literal.negated) }
    }

    /// The references, each to a table defined above it, sorted by name with repeats dropped
    /// (their order never changes a match); nil after reporting every unknown one.
    private func tableReferences(_ literals: [TableNameLiteral], _ diagnostics: inout Diagnostics) -> [TableReference]? {
        var references: [TableReference] = []
        var valid = true
        for literal in literals {
            guard let position = tablePositions[literal.name] else {
                diagnostics.report(at: literal.location,
                                   "unknown table <\(literal.name)>; define it with a 'table' statement above the rules that use it")
                valid = false
                continue
            }
            references.append(TableReference(name: literal.name, index: position.index, negated: literal.negated))
        }
        guard valid else { return nil }
        return Set(references).sorted { ($0.name, $0.negated ? 1 : 0) < ($1.name, $1.negated ? 1 : 0) }
    }

    // MARK: Rules

    /// The rules of one statement: itself, or for a line without a protocol one rule per
    /// protocol it can apply to (RuleStatement.expanded), checked once through its tcp rule.
    private func rules(_ statement: RuleStatement, _ diagnostics: inout Diagnostics) -> [Rule] {
        guard statement.protocolName == nil else { return rule(statement, &diagnostics).map { [$0] } ?? [] }
        if let location = statement.tcpOnlyClause {
            diagnostics.report(at: location.location, "'\(location.keyword)' is only allowed on tcp rules; write '\(statement.action) "
                               + "\(statement.direction) tcp ...' (a rule without a protocol is for every protocol)")
            return []
        }
        // The tcp rule carries every address, table and port of the line: its checks are the
        // line's, and the others (the same lists, or fewer) cannot fail where it did not.
        var rules: [Rule] = []
        for expansion in statement.expanded {
            guard var rule = rule(expansion, &diagnostics) else { return rules }
            rule.anyProtocol = true
            rules.append(rule)
        }
        return rules
    }

    private func rule(_ statement: RuleStatement, _ diagnostics: inout Diagnostics) -> Rule? {
        // Check every part before giving up, so all of a line's mistakes show at once.
        let from = networks(statement.from, &diagnostics)
        let to = networks(statement.to, &diagnostics)
        let fromTables = tableReferences(statement.fromTables, &diagnostics)
        let toTables = tableReferences(statement.toTables, &diagnostics)
        let ports = ports(statement.ports, &diagnostics)
        var halfOpen: Int?
        var halfOpenValid = true
        var actionValid = true
        let protocolName = statement.protocolName ?? .tcp
        if statement.action == .reject && !protocolName.hasPorts {
            // A reject is answered with an RST or a port unreachable; nothing answers an
            // echo request that way.
            diagnostics.report(at: statement.location, "an ICMP echo cannot be rejected; use 'block'")
            actionValid = false
        }
        if let literal = statement.halfOpenPerSource {
            if statement.protocolName != .tcp {
                diagnostics.report(at: statement.limitLocation ?? literal.location,
                                   "'limit half-open' is only allowed on tcp rules; only a TCP handshake is half-open")
                halfOpenValid = false
            } else if statement.action != .pass {
                // Only a pass rule lets a connection start, so only it can have half-open ones.
                diagnostics.report(at: statement.limitLocation ?? literal.location,
                                   "'limit half-open' is only allowed on pass rules; a \(statement.action) rule opens no connections")
                halfOpenValid = false
            } else {
                halfOpen = checked(literal, in: Checker.countRange, "half-open limit", &diagnostics)
                halfOpenValid = halfOpen != nil
            }
        }
        var connLimits: [SourceConnectionLimit?] = []
        var connValid = true
        for literal in [statement.connPerSource, statement.connRatePerSource] {
            guard let literal else {
                connLimits.append(nil)
                continue
            }
            let kind = literal.duration == nil ? "conn" : "conn-rate"
            if statement.protocolName != .tcp {
                diagnostics.report(at: literal.location,
                                   "'limit \(kind)' is only allowed on tcp rules; it counts TCP connections that completed their handshake")
                connValid = false
            } else if statement.action != .pass {
                diagnostics.report(at: literal.location,
                                   "'limit \(kind)' is only allowed on pass rules; a \(statement.action) rule opens no connections")
                connValid = false
            } else {
                let limit = connectionLimit(literal, &diagnostics)
                connLimits.append(limit)
                connValid = connValid && limit != nil
            }
        }
        let (synProxy, synProxyValid) = synProxy(statement, &diagnostics)
        let familiesValid = familiesCanMatch(statement, &diagnostics)
        guard let from, let to, let fromTables, let toTables, let ports, halfOpenValid, actionValid, familiesValid,
              connValid, synProxyValid else {
            return nil
        }
        return Rule(action: statement.action, direction: statement.direction, protocolName: protocolName,
                    from: from, to: to, fromTables: fromTables, toTables: toTables, ports: ports,
                    halfOpenPerSource: halfOpen, connPerSource: connLimits[0], connRatePerSource: connLimits[1],
                    synProxy: synProxy, location: statement.location)
    }

    /// The rule's `synproxy` clause: on pass tcp rules only, since only a TCP handshake can be
    /// answered with a cookie and only a pass rule lets one through; `mss` and `wscale` in range.
    private func synProxy(_ statement: RuleStatement, _ diagnostics: inout Diagnostics) -> (SynProxyRule?, Bool) {
        guard let literal = statement.synProxy else { return (nil, true) }
        if statement.protocolName != .tcp {
            diagnostics.report(at: literal.location, "'synproxy' is only allowed on tcp rules; it answers TCP handshakes")
            return (nil, false)
        }
        if statement.action != .pass {
            diagnostics.report(at: literal.location,
                               "'synproxy' is only allowed on pass rules; a \(statement.action) rule lets no handshake through")
            return (nil, false)
        }
        let mss = literal.mss.map { checked($0, in: Checker.synProxyMSSRange, "synproxy mss", &diagnostics) }
        let windowScale = literal.windowScale.map {
            checked($0, in: Checker.windowScaleRange, "synproxy wscale", &diagnostics)
        }
        if mss == .some(nil) || windowScale == .some(nil) { return (nil, false) }
        return (SynProxyRule(mss: (mss ?? nil).map { UInt16($0) }, windowScale: (windowScale ?? nil).map { UInt8($0) }),
                true)
    }

    /// `limit conn N per-source` or `limit conn-rate N/DURATION per-source` with its overload,
    /// or nil after reporting every problem. The overload table must be defined above and be
    /// persist: only a persist table keeps its run-time entries across a reload and a restart,
    /// and an overload table holds nothing but run-time entries (pf keeps any table a rule
    /// refers to; seqwall sets a table that is not persist back to its rule-file entries at
    /// every reload, which would quietly unblock every source).
    private func connectionLimit(_ literal: ConnectionLimitLiteral, _ diagnostics: inout Diagnostics) -> SourceConnectionLimit? {
        let what = literal.duration == nil ? "connection limit" : "connection rate"
        var valid = true
        let count = checked(literal.count, in: Checker.countRange, what, &diagnostics)
        var seconds: UInt32 = 0
        if let duration = literal.duration {
            if let value = positiveSeconds(duration, "conn-rate duration", &diagnostics) { seconds = value } else { valid = false }
        }
        var overload: Overload?
        if let overloadLiteral = literal.overload {
            let table = overloadLiteral.table
            var expire: UInt32?
            if let duration = overloadLiteral.expire {
                expire = positiveSeconds(duration, "expire", &diagnostics)
                if expire == nil { valid = false }
            }
            if let position = tablePositions[table.name] {
                if !policy.tables[position.index].persist {
                    diagnostics.report(at: table.location,
                                       "overload table <\(table.name)> must be persist, or a reload would unblock every source in it; "
                                       + "declare it 'table <\(table.name)> persist' (at \(position.location))")
                    valid = false
                } else {
                    overload = Overload(table: TableReference(name: table.name, index: position.index), expireSeconds: expire,
                                        flush: overloadLiteral.flush)
                }
            } else {
                diagnostics.report(at: table.location,
                                   "unknown table <\(table.name)>; define it with 'table <\(table.name)> persist' above the limit that uses it")
                valid = false
            }
        }
        guard let count, valid else { return nil }
        return SourceConnectionLimit(count: count, seconds: seconds, overload: overload)
    }

    /// A duration of at least one second that fits the UInt32 seconds the engine keeps (as the
    /// kernel keeps its timeouts; a zero timeout would expire a connection the moment it is
    /// created).
    private func positiveSeconds(_ duration: DurationLiteral, _ what: String, _ diagnostics: inout Diagnostics) -> UInt32? {
        let (product, overflow) = duration.amount.multipliedReportingOverflow(by: duration.unit.rawValue)
        if duration.amount == 0 {
            diagnostics.report(at: duration.location, "\(what) \(duration.text) is zero; it must be at least 1 second")
            return nil
        }
        guard !overflow, let seconds = UInt32(exactly: product) else {
            diagnostics.report(at: duration.location, "\(what) \(duration.text) is too long (at most \(UInt32.max) seconds)")
            return nil
        }
        return seconds
    }

    /// Refuses addresses no packet the rule applies to can have, each at its place: `icmp echo`
    /// is ICMP for IPv4 and `icmp6 echo` ICMPv6 (pf's names), and a packet's source and
    /// destination are of one family, so a `from` address matches only with a `to` address of
    /// its family. A table may hold both families, so a list with one can match either. A rule
    /// that can never match is a mistake the file would otherwise hide.
    private func familiesCanMatch(_ statement: RuleStatement, _ diagnostics: inout Diagnostics) -> Bool {
        // An IPv4-mapped spelling has its own error (`network`); its family is moot.
        let from = statement.from.filter { !($0.writtenAsIPv6 && $0.address.isIPv4) }
        let to = statement.to.filter { !($0.writtenAsIPv6 && $0.address.isIPv4) }
        func family(_ isIPv4: Bool) -> String { isIPv4 ? "IPv4" : "IPv6" }
        var valid = true
        if statement.protocolName == .icmp || statement.protocolName == .icmp6 {
            let isIPv4 = statement.protocolName == .icmp
            let (name, other) = isIPv4 ? ("icmp echo", "icmp6 echo") : ("icmp6 echo", "icmp echo")
            for literal in from + to where literal.address.isIPv4 != isIPv4 {
                diagnostics.report(at: literal.location,
                                   "'\(name)' is \(family(isIPv4)) only and \(literal.text) is an \(family(!isIPv4)) address: "
                                   + "this can never match (write it in an '\(other)' rule)")
                valid = false
            }
            return valid
        }
        guard !from.isEmpty, !to.isEmpty else { return true }
        let bothFamilies: Set<Bool> = [true, false]
        let fromFamilies = statement.fromTables.isEmpty ? Set(from.map(\.address.isIPv4)) : bothFamilies
        let toFamilies = statement.toTables.isEmpty ? Set(to.map(\.address.isIPv4)) : bothFamilies
        if fromFamilies.isDisjoint(with: toFamilies), let fromIPv4 = fromFamilies.first {
            diagnostics.report(at: to[0].location,
                               "this rule can never match: every 'from' address is \(family(fromIPv4)) "
                               + "and every 'to' address \(family(!fromIPv4)); a packet has one family")
            return false
        }
        for literal in from where !toFamilies.contains(literal.address.isIPv4) {
            diagnostics.report(at: literal.location, "\(literal.text) can never match: every 'to' address is \(family(!literal.address.isIPv4))")
            valid = false
        }
        for literal in to where !fromFamilies.contains(literal.address.isIPv4) {
            diagnostics.report(at: literal.location, "\(literal.text) can never match: every 'from' address is \(family(!literal.address.isIPv4))")
            valid = false
        }
        return valid
    }

    /// The networks, normalized, or nil after reporting every bad one.
    private func networks(_ literals: [NetworkLiteral], _ diagnostics: inout Diagnostics) -> [IPNetwork]? {
        var networks: [IPNetwork] = []
        var valid = true
        for literal in literals {
            if let network = network(literal, &diagnostics) { networks.append(network) } else { valid = false }
        }
        return valid ? ListNormalization.networks(networks) : nil
    }

    private func network(_ literal: NetworkLiteral, _ diagnostics: inout Diagnostics) -> IPNetwork? {
        if literal.writtenAsIPv6 && literal.address.isIPv4 {
            // IPAddress keeps IPv4 as mapped IPv6, so the two spellings would be the same address
            // with prefix lengths counted differently; one spelling avoids that trap.
            let prefixLength = literal.prefixLength ?? 128
            let suggestion = (96...128).contains(prefixLength)
                ? " (\(IPNetwork(address: literal.address, prefixLength: prefixLength - 96)))" : ""
            diagnostics.report(at: literal.location,
                               "\(literal.text) is an IPv4-mapped IPv6 address; write it as IPv4\(suggestion)")
            return nil
        }
        let maximum = literal.address.isIPv4 ? 32 : 128
        let prefixLength = literal.prefixLength ?? maximum
        guard prefixLength <= maximum else {
            let family = literal.address.isIPv4 ? "IPv4" : "IPv6"
            diagnostics.report(at: literal.prefixLocation,
                               "prefix length \(literal.text.split(separator: "/").last ?? "") is too long for \(family) (at most \(maximum))")
            return nil
        }
        let network = IPNetwork(address: literal.address, prefixLength: prefixLength)
        guard network.address == literal.address else {
            // IPNetwork would quietly clear the bits; a typo in a firewall rule should not pass quietly.
            diagnostics.report(at: literal.location, "\(literal.text) has host bits set; did you mean \(network)?")
            return nil
        }
        return network
    }

    private func ports(_ literals: [PortLiteral], _ diagnostics: inout Diagnostics) -> [PortRange]? {
        var ranges: [PortRange] = []
        var valid = true
        for literal in literals {
            var bad = false
            if !Checker.portRange.contains(literal.lower) {
                diagnostics.report(at: literal.location, "port \(literal.lowerText) is out of range (1-65535)")
                bad = true
            }
            if literal.isRange, !Checker.portRange.contains(literal.upper) {
                diagnostics.report(at: literal.upperLocation, "port \(literal.upperText) is out of range (1-65535)")
                bad = true
            }
            if !bad, literal.lower > literal.upper {
                diagnostics.report(at: literal.location,
                                   "port range \(literal.text) is reversed; did you mean \(literal.upperText)-\(literal.lowerText)?")
                bad = true
            }
            if bad {
                valid = false
            } else {
                ranges.append(PortRange(UInt16(literal.lower), UInt16(literal.upper)))
            }
        }
        return valid ? ListNormalization.ports(ranges) : nil
    }

    // MARK: Numbers

    private func checked(_ literal: NumberLiteral, in range: ClosedRange<Int>, _ what: String,
                         _ diagnostics: inout Diagnostics) -> Int? {
        guard range.contains(literal.value) else {
            diagnostics.report(at: literal.location,
                               "\(what) \(literal.text) is out of range (\(range.lowerBound)-\(range.upperBound))")
            return nil
        }
        return literal.value
    }

    /// The grace period in seconds; zero turns it off.
    private func graceSeconds(_ duration: DurationLiteral, _ diagnostics: inout Diagnostics) -> UInt32? {
        let (product, overflow) = duration.amount.multipliedReportingOverflow(by: duration.unit.rawValue)
        guard !overflow, product <= Int(Checker.maximumPickupGrace) else {
            diagnostics.report(at: duration.location,
                               "pickup grace \(duration.text) is too long (at most 1d); for pickup at any time write 'set pickup on'")
            return nil
        }
        return UInt32(product)
    }

}
