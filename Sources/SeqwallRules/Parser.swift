import SeqwallCore

/// Turns the tokens of one line into a `Statement`, or the first syntax error on that line.
///
/// Grammar (one statement per line; `[...]` optional, `LIST` is items separated by commas):
///
///     include "FILE"
///     inside NET[, NET...]
///     table <NAME> [persist] [file "FILE"]... [{ [!]NET[, [!]NET...] }]
///     default in|out pass|block|reject
///     pass|block|reject in|out PROTO [from any|NET-LIST] [to any|NET-LIST] [port PORT-LIST]
///                                    [limit half-open N per-source] [limit conn N per-source [OVERLOAD]]
///                                    [limit conn-rate N/DURATION per-source [OVERLOAD]]
///     limit states N
///     limit half-open N [per-source]
///     limit syn-rate R/s [burst B] per-source
///     limit conn N per-source [OVERLOAD]
///     limit conn-rate N/DURATION per-source [OVERLOAD]
///     timeout tcp STATE DURATION
///     timeout udp single|stream DURATION
///     timeout icmp DURATION
///     set pickup on|off
///     set pickup grace DURATION
///     set pickup ephemeral-ports LOW-HIGH
///     set drop-log off|sampled|full
///
/// PROTO is `tcp`, `udp`, `icmp echo` or `icmp6 echo` (pf's names: `icmp` is IPv4, `icmp6`
/// IPv6; echo requests are the only ICMP messages that open a flow). `to port 22` means any
/// destination, port 22 (pf's spelling). `port` is always the destination port, and only TCP and
/// UDP have one. The clauses of a rule come in the order above, each at most once (a rule's
/// `limit` clauses, one of each kind, in any order). In a rule, NET-LIST items may also be
/// tables, `<NAME>` or `!<NAME>` (pf's spelling). OVERLOAD is
/// `overload <NAME> [expire DURATION] [flush]`.
///
/// A table file has one `[!]NET` a line, blank lines and `#` comments (`tableFileEntry`).
struct Parser {
    /// Every statement, for typo hints, for an unknown statement's message and for telling a
    /// rule file from something else.
    static let statementKeywords = ["include", "inside", "default", "table", "pass", "block", "reject", "limit", "timeout", "set"]
    /// pf's PF_TABLE_NAME_SIZE less its NUL.
    static let maximumTableNameLength = 31

    private let tokens: [Token]
    private let file: String
    private var index = 0

    /// nil for a line with no tokens (blank or comment only).
    static func parse(_ line: LexedLine, file: String) throws(RuleError) -> Statement? {
        guard !line.tokens.isEmpty else { return nil }
        var parser = Parser(tokens: line.tokens, file: file)
        return try parser.statement()
    }

    /// One line of a table file: nil for a blank or comment line.
    static func tableFileEntry(_ line: LexedLine, file: String) throws(RuleError) -> TableEntryLiteral? {
        guard !line.tokens.isEmpty else { return nil }
        var parser = Parser(tokens: line.tokens, file: file)
        let entry = try parser.tableEntry()
        if let extra = parser.peek {
            throw parser.error(at: extra, "expected one address or network per line, found \(extra.display)")
        }
        return entry
    }

    /// Whether a line cannot start any statement: its lexing failed before a first token, or
    /// that token is not a word, or a word that is neither a statement keyword nor a likely typo
    /// of one. A file with such a line is most likely not a rule file at all.
    static func startsNoStatement(_ line: LexedLine) -> Bool {
        guard let first = line.tokens.first else { return line.error != nil }
        guard first.kind == .word else { return true }
        return !statementKeywords.contains(first.text) && closest(to: first.text, among: statementKeywords) == nil
    }

    private init(tokens: [Token], file: String) {
        self.tokens = tokens
        self.file = file
    }

    // MARK: Statements

    private mutating func statement() throws(RuleError) -> Statement {
        let first = tokens[0]
        index = 1
        guard first.kind == .word else {
            throw error(at: first, "expected a statement, found \(first.display)")
        }
        let location = self.location(of: first)
        switch first.text {
        case "include":
            guard let name = peek, name.kind == .string else { throw expected("a quoted file name") }
            index += 1
            guard !name.text.isEmpty else { throw error(at: name, "empty file name") }
            try expectEndOfLine()
            return .include(path: name.text, location: self.location(of: name))
        case "inside":
            let (networks, tables) = try networkList(allowingAny: false)
            if let table = tables.first {
                throw RuleError(location: table.location, message: "'inside' takes addresses and networks, not tables")
            }
            try expectEndOfLine()
            return .inside(networks, location: location)
        case "table":
            return .table(try table(location: location))
        case "default":
            let direction = try direction()
            let action = try keyword([("pass", RuleAction.pass), ("block", .block), ("reject", .reject)])
            try expectEndOfLine()
            return .defaultAction(direction, action, location: location)
        case "pass":
            return .rule(try rule(.pass, location: location))
        case "block":
            return .rule(try rule(.block, location: location))
        case "reject":
            return .rule(try rule(.reject, location: location))
        case "limit":
            return try limit(location: location)
        case "timeout":
            let name: TimeoutName
            switch try keyword([("tcp", TrackedProtocol.tcp), ("udp", .udp), ("icmp", .icmp)]) {
            case .tcp: name = try timeoutName(among: TimeoutName.tcpCases, what: "a TCP state", kind: "TCP state")
            case .udp: name = try timeoutName(among: TimeoutName.udpCases, what: "'single' or 'stream'", kind: "UDP timeout")
            default: name = .icmp
            }
            let duration = try durationLiteral()
            try expectEndOfLine()
            return .timeout(name, duration, location: location)
        case "set":
            enum Setting { case pickup, dropLog, synProxy }
            switch try keyword([("pickup", Setting.pickup), ("drop-log", .dropLog), ("synproxy", .synProxy)],
                               suggesting: true) {
            case .synProxy:
                return try synProxyMode(location: location)
            case .pickup:
                enum Value { case turned(Bool), grace, ephemeralPorts }
                switch try keyword([("on", Value.turned(true)), ("off", .turned(false)), ("grace", .grace),
                                    ("ephemeral-ports", .ephemeralPorts)], suggesting: true) {
                case .turned(let on):
                    try expectEndOfLine()
                    return .pickup(on, location: location)
                case .grace:
                    let duration = try durationLiteral()
                    try expectEndOfLine()
                    return .pickupGrace(duration, location: location)
                case .ephemeralPorts:
                    let ports = try portLiteral()
                    try expectEndOfLine()
                    return .ephemeralPorts(ports, location: location)
                }
            case .dropLog:
                let mode = try keyword(DropLogMode.allCases.map { ($0.rawValue, $0) }, suggesting: true)
                try expectEndOfLine()
                return .dropLog(mode, location: location)
            }
        default:
            let hint = closest(to: first.text, among: Parser.statementKeywords).map { "did you mean '\($0)'?" }
                ?? "expected one of: " + Parser.statementKeywords.joined(separator: ", ")
            throw error(at: first, "unknown statement \(quoted(first.text)); \(hint)")
        }
    }

    /// `table <NAME>` and then, in any order, `persist` and `file "FILE"` clauses and one `{...}`
    /// list, as pf's table statement takes them.
    private mutating func table(location: SourceLocation) throws(RuleError) -> TableStatement {
        guard let nameToken = peek, nameToken.kind == .word, nameToken.text.hasPrefix("<") else {
            throw expected("a table name such as <drop>")
        }
        let name = try tableName(nameToken, negated: false)
        index += 1
        var persist = false
        var files: [(path: String, location: SourceLocation)] = []
        var entries: [TableEntryLiteral]?
        while let token = peek {
            if token.kind == .word, token.text == "persist", !persist {
                index += 1
                persist = true
            } else if token.kind == .word, token.text == "file" {
                index += 1
                guard let path = peek, path.kind == .string else { throw expected("a quoted file name") }
                index += 1
                guard !path.text.isEmpty else { throw error(at: path, "empty file name") }
                files.append((path.text, self.location(of: path)))
            } else if token.kind == .openBrace, entries == nil {
                index += 1
                var list: [TableEntryLiteral] = []
                if let close = peek, close.kind == .closeBrace {
                    index += 1
                } else {
                    repeat {
                        list.append(try tableEntry())
                    } while consumeComma()
                    guard let close = peek, close.kind == .closeBrace else {
                        throw expected(peek?.kind == .word ? "',' or '}' (separate entries with commas)" : "',' or '}'")
                    }
                    index += 1
                }
                entries = list
            } else {
                var choices = persist ? [] : ["'persist'"]
                choices.append("'file'")
                if entries == nil { choices.append("'{'") }
                if persist || !files.isEmpty || entries != nil { choices.append("end of line") }
                throw expected(alternatives(choices))
            }
        }
        if !persist && files.isEmpty && entries == nil {
            throw expected("'persist', 'file' or '{'")
        }
        return TableStatement(name: name, nameLocation: self.location(of: nameToken), persist: persist, files: files,
                              entries: entries ?? [], location: location)
    }

    /// `198.51.100.0/24` or `!198.51.100.7`.
    private mutating func tableEntry() throws(RuleError) -> TableEntryLiteral {
        guard let token = peek, token.kind == .word else { throw expected("an address or network") }
        if token.text.hasPrefix("!") {
            guard token.text.count > 1 else { throw error(at: token, "'!' must be followed by an address or network, without a space") }
            return TableEntryLiteral(network: try networkLiteral(token, skipping: 1), negated: true)
        }
        return TableEntryLiteral(network: try networkLiteral(allowingAny: false), negated: false)
    }

    /// The NAME of `<NAME>` (after `!` when `negated`): letters, digits, `_` and `-`.
    private func tableName(_ token: Token, negated: Bool) throws(RuleError) -> String {
        let text = token.text.dropFirst(negated ? 1 : 0)
        guard text.count >= 3, text.hasPrefix("<"), text.hasSuffix(">") else {
            throw error(at: token, "bad table name \(quoted(token.text)); write it in angle brackets, such as <drop>")
        }
        let name = text.dropFirst().dropLast()
        guard name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) else {
            throw error(at: token, "bad table name \(quoted(token.text)); use letters, digits, '_' and '-'")
        }
        guard name.count <= Parser.maximumTableNameLength else {
            throw error(at: token, "table name \(quoted(token.text)) is too long (at most \(Parser.maximumTableNameLength) characters)")
        }
        return String(name)
    }

    private mutating func limit(location: SourceLocation) throws(RuleError) -> Statement {
        enum Kind { case states, halfOpen, synRate, conn, connRate }
        switch try keyword([("states", Kind.states), ("half-open", .halfOpen), ("syn-rate", .synRate), ("conn", .conn),
                            ("conn-rate", .connRate)]) {
        case .states:
            let count = try number()
            try expectEndOfLine()
            return .limitStates(count, location: location)
        case .halfOpen:
            let count = try number()
            let perSource = optionalKeyword("per-source")
            try expectEndOfLine()
            return .limitHalfOpen(count, perSource: perSource, location: location)
        case .synRate:
            let rate = try rateLiteral()
            var burst: NumberLiteral?
            if optionalKeyword("burst") { burst = try number() }
            // The limiter keeps one bucket per source; a global SYN rate is not something it has.
            try keyword([("per-source", ())])
            try expectEndOfLine()
            return .limitSynRate(rate: rate, burst: burst, location: location)
        case .conn:
            let limit = try connectionLimit(rate: false, location: location)
            try expectEndOfLine()
            return .limitConn(limit)
        case .connRate:
            let limit = try connectionLimit(rate: true, location: location)
            try expectEndOfLine()
            return .limitConn(limit)
        }
    }

    /// What follows `limit conn` (`N per-source [OVERLOAD]`) or `limit conn-rate`
    /// (`N/DURATION per-source [OVERLOAD]`); `location` is the `limit` keyword.
    private mutating func connectionLimit(rate: Bool, location: SourceLocation) throws(RuleError) -> ConnectionLimitLiteral {
        var count: NumberLiteral
        var duration: DurationLiteral?
        if rate {
            (count, duration) = try connectionRateLiteral()
        } else {
            count = try number()
        }
        // One count per source, like pf's max-src-conn; a global count is `limit states`.
        try keyword([("per-source", ())])
        var overload: OverloadLiteral?
        if let token = peek, token.kind == .word, token.text == "overload" {
            index += 1
            guard let nameToken = peek, nameToken.kind == .word else { throw expected("a table name such as <bruteforce>") }
            let name = try tableName(nameToken, negated: false)
            index += 1
            let table = TableNameLiteral(name: name, negated: false, location: self.location(of: nameToken))
            var expire: DurationLiteral?
            if optionalKeyword("expire") { expire = try durationLiteral() }
            let flush = optionalKeyword("flush")
            overload = OverloadLiteral(table: table, expire: expire, flush: flush, location: self.location(of: token))
        }
        return ConnectionLimitLiteral(count: count, duration: duration, overload: overload, location: location)
    }

    /// `5/10s`: connections per source in a duration (pf's max-src-conn-rate N/seconds, with a
    /// unit; a bare number is seconds).
    private mutating func connectionRateLiteral() throws(RuleError) -> (NumberLiteral, DurationLiteral) {
        guard let token = peek, token.kind == .word else { throw expected("a rate such as 5/10s") }
        let parts = token.text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let value = Parser.decimal(parts[0]),
              let (amount, unit) = Parser.duration(parts[1]) else {
            throw error(at: token, "bad rate \(quoted(token.text)); expected connections per duration such as 5/10s or 100/1m")
        }
        index += 1
        let count = NumberLiteral(text: String(parts[0]), value: value, location: location(of: token))
        let duration = DurationLiteral(text: String(parts[1]), amount: amount, unit: unit,
                                       location: location(of: token, offset: parts[0].count + 1))
        return (count, duration)
    }

    /// The word after `timeout tcp` or `timeout udp`.
    private mutating func timeoutName(among candidates: [TimeoutName], what: String, kind: String) throws(RuleError)
        -> TimeoutName {
        guard let token = peek, token.kind == .word else { throw expected(what) }
        guard let name = TimeoutName(keyword: token.text, among: candidates) else {
            let names = candidates.map(\.keyword)
            let hint = closest(to: token.text, among: names).map { "did you mean '\($0)'?" }
                ?? "expected one of: " + names.joined(separator: ", ")
            throw error(at: token, "unknown \(kind) \(quoted(token.text)); \(hint)")
        }
        index += 1
        return name
    }

    private enum Clause: Int, CaseIterable {
        case from, to, port, limit, synproxy

        var keyword: String {
            switch self {
            case .from: "from"
            case .to: "to"
            case .port: "port"
            case .limit: "limit"
            case .synproxy: "synproxy"
            }
        }
    }

    private mutating func rule(_ action: RuleAction, location: SourceLocation) throws(RuleError) -> RuleStatement {
        // pf.conf's `block drop` and `block return`.
        if let token = peek, token.kind == .word, token.text == "drop" || token.text == "return",
           let hint = ForeignSyntax.hint(forRuleWord: token.text) {
            throw error(at: token, "unexpected \(token.display): \(hint)")
        }
        let direction = try direction()
        // The protocol may be left out, as in pf.conf: the rule is then for every protocol.
        let protocols: [(String, TrackedProtocol)] = [("tcp", .tcp), ("udp", .udp), ("icmp", .icmp), ("icmp6", .icmp6)]
        var protocolName: TrackedProtocol?
        // pf.conf's `proto tcp` is seqwall's `tcp`.
        if let token = peek, token.kind == .word, token.text == "proto" {
            index += 1
            protocolName = try keyword(protocols)
        } else if let token = peek, token.kind == .word {
            if let named = protocols.first(where: { $0.0 == token.text }) {
                index += 1
                protocolName = named.1
            } else if let hint = ForeignSyntax.hint(forRuleWord: token.text) {
                throw error(at: token, "unexpected \(token.display): \(hint)")
            } else if token.text != "all", !Clause.allCases.contains(where: { $0.keyword == token.text }) {
                throw error(at: token, "expected 'tcp', 'udp', 'icmp', 'icmp6', 'from', 'to', 'port' or end of line, found "
                            + "\(token.display) (seqwall tracks tcp, udp and ICMP echo; a rule without a protocol is for every protocol)")
            }
        }
        if protocolName == .icmp || protocolName == .icmp6 { try keyword([("echo", ())]) }
        // pf.conf's `all`: from any to any, which is what a rule without `from` and `to` says.
        if let token = peek, token.kind == .word, token.text == "all" {
            index += 1
            if let next = peek, next.kind == .word, [Clause.from, .to, .port].contains(where: { $0.keyword == next.text }) {
                throw error(at: next, "'all' is 'from any to any'; write '\(next.text)' without it")
            }
        }
        var from: [NetworkLiteral] = []
        var to: [NetworkLiteral] = []
        var fromTables: [TableNameLiteral] = []
        var toTables: [TableNameLiteral] = []
        var ports: [PortLiteral] = []
        var halfOpen: NumberLiteral?
        var limitLocation: SourceLocation?
        var synProxy: SynProxyLiteral?
        var conn: ConnectionLimitLiteral?
        var connRate: ConnectionLimitLiteral?
        var lastClause: Clause?
        var seen: Set<Clause> = []
        while let token = peek {
            guard token.kind == .word, let clause = Clause.allCases.first(where: { $0.keyword == token.text }) else {
                throw unexpectedInRule(token, after: lastClause)
            }
            // A rule may have one limit of each kind, each with its own `limit`.
            if seen.contains(clause) && clause != .limit {
                throw error(at: token, "'\(clause.keyword)' appears twice in one rule; use a comma-separated list")
            }
            if let last = lastClause, clause.rawValue < last.rawValue {
                throw error(at: token, "'\(clause.keyword)' must come before '\(last.keyword)'")
            }
            // pf reads `from X port N` as a source port; seqwall matches destination ports only,
            // so refuse the spelling rather than silently mean something else.
            if clause == .port && lastClause == .from {
                throw error(at: token, "'port' after 'from' would be a source port; seqwall matches destination ports: write 'to port'")
            }
            if clause == .port, let protocolName, !protocolName.hasPorts {
                throw error(at: token, "ICMP has no ports; 'port' applies to tcp and udp rules")
            }
            seen.insert(clause)
            lastClause = clause
            index += 1
            switch clause {
            case .from:
                (from, fromTables) = try networkList(allowingAny: true)
            case .to:
                // `to port 22`: no address list means any destination.
                if let next = peek, next.kind == .word, next.text == "port" { continue }
                (to, toTables) = try networkList(allowingAny: true)
            case .port:
                ports = try portList()
            case .limit:
                let location = self.location(of: token)
                enum Kind { case halfOpen, conn, connRate }
                guard let kindToken = peek else { throw expected("'half-open', 'conn' or 'conn-rate'") }
                let kind = try keyword([("half-open", Kind.halfOpen), ("conn", .conn), ("conn-rate", .connRate)])
                let repeated = switch kind {
                case .halfOpen: halfOpen != nil
                case .conn: conn != nil
                case .connRate: connRate != nil
                }
                if repeated { throw error(at: kindToken, "'limit \(kindToken.text)' appears twice in one rule") }
                switch kind {
                case .halfOpen:
                    limitLocation = location
                    halfOpen = try number()
                    try keyword([("per-source", ())])
                case .conn:
                    conn = try connectionLimit(rate: false, location: location)
                case .connRate:
                    connRate = try connectionLimit(rate: true, location: location)
                }
            case .synproxy:
                synProxy = try synProxyClause(location: self.location(of: token))
            }
        }
        return RuleStatement(action: action, direction: direction, protocolName: protocolName, from: from, to: to,
                             fromTables: fromTables, toTables: toTables, ports: ports,
                             halfOpenPerSource: halfOpen, limitLocation: limitLocation, connPerSource: conn,
                             connRatePerSource: connRate, synProxy: synProxy, location: location)
    }

    /// After `synproxy`: `mss N` and `wscale N`, each at most once, in either order (nft's
    /// `synproxy mss N wscale N`).
    private mutating func synProxyClause(location: SourceLocation) throws(RuleError) -> SynProxyLiteral {
        var mss: NumberLiteral?
        var windowScale: NumberLiteral?
        while let token = peek, token.kind == .word, token.text == "mss" || token.text == "wscale" {
            if (token.text == "mss" ? mss : windowScale) != nil {
                throw error(at: token, "'\(token.text)' appears twice after 'synproxy'")
            }
            index += 1
            if token.text == "mss" { mss = try number() } else { windowScale = try number() }
        }
        return SynProxyLiteral(mss: mss, windowScale: windowScale, location: location)
    }

    /// After `set synproxy`: `always`, or `adaptive` with optional `start P%` and `end P%`.
    private mutating func synProxyMode(location: SourceLocation) throws(RuleError) -> Statement {
        enum Mode { case always, adaptive }
        switch try keyword([("always", Mode.always), ("adaptive", .adaptive)], suggesting: true) {
        case .always:
            try expectEndOfLine()
            return .synProxyMode(start: nil, end: nil, adaptive: false, location: location)
        case .adaptive:
            var start: NumberLiteral?
            var end: NumberLiteral?
            if optionalKeyword("start") { start = try percentLiteral() }
            if optionalKeyword("end") { end = try percentLiteral() }
            try expectEndOfLine()
            return .synProxyMode(start: start, end: end, adaptive: true, location: location)
        }
    }

    /// The error for a token in a rule that is not the next clause: says which clauses may still
    /// follow, and notices the common slip of a list without its commas.
    private func unexpectedInRule(_ token: Token, after lastClause: Clause?) -> RuleError {
        if token.kind == .word, let hint = ForeignSyntax.hint(forRuleWord: token.text) {
            return error(at: token, "unexpected \(token.display): \(hint)")
        }
        let remaining = Clause.allCases.filter { $0.rawValue > (lastClause?.rawValue ?? -1) || ($0 == .limit && lastClause == .limit) }
        let choices = remaining.map { "'\($0.keyword)'" } + ["end of line"]
        var message = "expected \(alternatives(choices)), found \(token.display)"
        if token.kind == .word, let last = lastClause {
            let looksLikeListItem = switch last {
            case .from, .to: IPAddress(token.text.split(separator: "/", maxSplits: 1).first ?? "") != nil
                || token.text.hasPrefix("<") || token.text.hasPrefix("!<")
            case .port: token.text.first?.isASCII == true && token.text.first?.isNumber == true
            case .limit, .synproxy: false
            }
            if looksLikeListItem { message += " (separate list items with commas)" }
        }
        return error(at: token, message)
    }

    // MARK: Lists

    /// `any` (returned as empty lists) or addresses, networks and tables separated by commas.
    private mutating func networkList(allowingAny: Bool) throws(RuleError) -> ([NetworkLiteral], [TableNameLiteral]) {
        if allowingAny, let token = peek, token.kind == .word, token.text == "any" {
            index += 1
            if let next = peek, next.kind == .comma {
                throw error(at: token, "'any' cannot be combined with other addresses")
            }
            return ([], [])
        }
        var networks: [NetworkLiteral] = []
        var tables: [TableNameLiteral] = []
        repeat {
            if let token = peek, token.kind == .word, token.text.hasPrefix("<") || token.text.hasPrefix("!<") {
                let negated = token.text.hasPrefix("!")
                tables.append(TableNameLiteral(name: try tableName(token, negated: negated), negated: negated,
                                               location: location(of: token)))
                index += 1
                continue
            }
            if let token = peek, token.kind == .word, token.text.hasPrefix("!") {
                throw error(at: token, "'!' excepts an address inside a table only; a rule takes '!<table>'")
            }
            let first = networks.isEmpty && tables.isEmpty
            networks.append(try networkLiteral(allowingAny: allowingAny && first))
        } while consumeComma()
        return (networks, tables)
    }

    private mutating func portList() throws(RuleError) -> [PortLiteral] {
        var ports: [PortLiteral] = []
        repeat {
            ports.append(try portLiteral())
        } while consumeComma()
        return ports
    }

    private mutating func consumeComma() -> Bool {
        guard let token = peek, token.kind == .comma else { return false }
        index += 1
        return true
    }

    // MARK: Values

    private mutating func networkLiteral(allowingAny: Bool) throws(RuleError) -> NetworkLiteral {
        let what = allowingAny ? "an address, a network or 'any'" : "an address or network"
        guard let token = peek, token.kind == .word else { throw expected(what) }
        let text = token.text
        // A word with no digit, dot or colon is a keyword in the wrong place, not a bad address.
        if !text.contains(where: { $0.isNumber || $0 == "." || $0 == ":" }) {
            if text == "any" { throw error(at: token, "'any' cannot be combined with other addresses") }
            throw expected(what)
        }
        return try networkLiteral(token, skipping: 0)
    }

    /// The address or network in `token` after its first `skipping` characters (a `!`).
    private mutating func networkLiteral(_ token: Token, skipping: Int) throws(RuleError) -> NetworkLiteral {
        let text = token.text.dropFirst(skipping)
        index += 1
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let addressText = parts[0]
        guard let address = IPAddress(addressText) else {
            throw RuleError(location: location(of: token, offset: skipping),
                            message: "\(quoted(addressText)) is not an IPv4 or IPv6 address")
        }
        var prefixLength: Int?
        var prefixLocation = location(of: token, offset: skipping)
        if parts.count == 2 {
            let prefixText = parts[1]
            prefixLocation = location(of: token, offset: skipping + addressText.count + 1)
            guard let value = Parser.decimal(prefixText) else {
                throw RuleError(location: prefixLocation, message: "bad prefix length \(quoted(prefixText)) in \(quoted(text))")
            }
            prefixLength = value
        }
        return NetworkLiteral(text: String(text), address: address, prefixLength: prefixLength,
                              writtenAsIPv6: addressText.contains(":"), location: location(of: token, offset: skipping),
                              prefixLocation: prefixLocation)
    }

    private mutating func portLiteral() throws(RuleError) -> PortLiteral {
        if let token = peek, let hint = ForeignSyntax.hint(forPort: token.text) {
            throw error(at: token, "unexpected \(token.display): \(hint)")
        }
        guard let token = peek, token.kind == .word else { throw expected("a port number or range") }
        // A service name may itself hold a dash (`ftp-data`): the whole word is looked up first.
        if let port = ServiceName.port(token.text[...]) {
            index += 1
            return PortLiteral(text: token.text, lowerText: token.text[...], upperText: token.text[...], lower: port,
                               upper: port, location: location(of: token), upperLocation: location(of: token))
        }
        let parts = token.text.split(separator: "-", omittingEmptySubsequences: false)
        func port(_ text: Substring) -> Int? { Parser.decimal(text) ?? ServiceName.port(text) }
        guard parts.count <= 2, let lower = port(parts[0]), let upper = parts.count == 2 ? port(parts[1]) : lower else {
            if token.text.contains(where: \.isLetter) {
                throw error(at: token, "unknown service \(token.display); write the port number (the names seqwall knows "
                            + "are in seqwall.rules(5): ssh, http, https, domain, ...)")
            }
            throw expected("a port number or range")
        }
        index += 1
        let upperText = parts.count == 2 ? parts[1] : parts[0]
        let upperOffset = parts.count == 2 ? parts[0].count + 1 : 0
        return PortLiteral(text: token.text, lowerText: parts[0], upperText: upperText, lower: lower, upper: upper,
                           location: location(of: token), upperLocation: location(of: token, offset: upperOffset))
    }

    private mutating func number() throws(RuleError) -> NumberLiteral {
        guard let token = peek, token.kind == .word, let value = Parser.decimal(token.text[...]) else {
            throw expected("a number")
        }
        index += 1
        return NumberLiteral(text: token.text, value: value, location: location(of: token))
    }

    /// `20/s`: SYNs per second from one source.
    /// `25%`: a whole percentage, its range checked by the checker.
    private mutating func percentLiteral() throws(RuleError) -> NumberLiteral {
        guard let token = peek, token.kind == .word, token.text.hasSuffix("%"),
              let value = Parser.decimal(token.text.dropLast()) else { throw expected("a percentage such as 25%") }
        index += 1
        return NumberLiteral(text: token.text, value: value, location: location(of: token))
    }

    private mutating func rateLiteral() throws(RuleError) -> NumberLiteral {
        guard let token = peek, token.kind == .word else { throw expected("a rate such as 20/s") }
        let parts = token.text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[1] == "s", let value = Parser.decimal(parts[0]) else {
            throw error(at: token, "bad rate \(quoted(token.text)); expected connections per second such as 20/s")
        }
        index += 1
        return NumberLiteral(text: String(parts[0]), value: value, location: location(of: token))
    }

    private mutating func durationLiteral() throws(RuleError) -> DurationLiteral {
        guard let token = peek, token.kind == .word else { throw expected("a duration such as 30s or 5d") }
        let text = token.text
        guard let (amount, unit) = Parser.duration(text[...]) else {
            throw error(at: token, "bad duration \(quoted(text)); expected a whole number with unit s, m, h or d, such as 30s or 5d")
        }
        index += 1
        return DurationLiteral(text: text, amount: amount, unit: unit, location: location(of: token))
    }

    /// `30s`, `5m`, `2h`, `1d`, or bare seconds.
    static func duration(_ text: Substring) -> (Int, DurationUnit)? {
        let digits = text.prefix { $0.isASCII && $0.isNumber }
        let unit: DurationUnit? = switch text.dropFirst(digits.count) {
        case "", "s": .seconds
        case "m": .minutes
        case "h": .hours
        case "d": .days
        default: nil
        }
        guard let unit, let amount = Parser.decimal(digits) else { return nil }
        return (amount, unit)
    }

    /// Only ASCII digits, at least one. Saturates instead of overflowing (see NumberLiteral).
    static func decimal(_ text: Substring) -> Int? {
        guard !text.isEmpty else { return nil }
        var value = 0
        for character in text.utf8 {
            guard character >= 0x30, character <= 0x39 else { return nil }
            let digit = Int(character - 0x30)
            value = value > (NumberLiteral.saturation - digit) / 10 ? NumberLiteral.saturation : value * 10 + digit
        }
        return value
    }

    // MARK: Keywords

    private mutating func direction() throws(RuleError) -> Direction {
        try keyword([("in", Direction.inbound), ("out", .outbound)])
    }

    /// The value paired with the keyword that comes next, or an error naming all the choices;
    /// with `suggesting`, a near miss is named ("did you mean 'sampled'?").
    @discardableResult
    private mutating func keyword<Value>(_ choices: [(String, Value)], suggesting: Bool = false) throws(RuleError) -> Value {
        if let token = peek, token.kind == .word, let choice = choices.first(where: { $0.0 == token.text }) {
            index += 1
            return choice.1
        }
        let error = expected(alternatives(choices.map { "'\($0.0)'" }))
        if suggesting, let token = peek, token.kind == .word,
           let hint = closest(to: token.text, among: choices.map(\.0)) {
            throw RuleError(location: error.location, message: error.message + "; did you mean '\(hint)'?")
        }
        throw error
    }

    private mutating func optionalKeyword(_ word: String) -> Bool {
        guard let token = peek, token.kind == .word, token.text == word else { return false }
        index += 1
        return true
    }

    private func expectEndOfLine() throws(RuleError) {
        if peek != nil { throw expected("end of line") }
    }

    // MARK: Tokens and errors

    private var peek: Token? { index < tokens.count ? tokens[index] : nil }

    private func location(of token: Token, offset: Int = 0) -> SourceLocation {
        SourceLocation(file: file, line: token.line, column: token.column + offset)
    }

    private func error(at token: Token, _ message: String) -> RuleError {
        RuleError(location: location(of: token), message: message)
    }

    /// "expected X, found 'y'" at the offending token, or, when the line ran out,
    /// "expected X after 'y'" just after the last token.
    private func expected(_ what: String) -> RuleError {
        if let token = peek {
            return error(at: token, "expected \(what), found \(token.display)")
        }
        let last = tokens[tokens.count - 1]
        return RuleError(location: SourceLocation(file: file, line: last.line, column: last.endColumn),
                         message: "expected \(what) after \(last.display)")
    }
}

/// "'a'", "'a' or 'b'", "'a', 'b' or 'c'".
func alternatives(_ choices: [String]) -> String {
    guard let last = choices.last else { return "" }
    if choices.count == 1 { return last }
    return choices.dropLast().joined(separator: ", ") + " or " + last
}

/// The candidate a typo most likely meant: same word in another case, or at most two edits away.
func closest(to word: String, among candidates: [String]) -> String? {
    let lowered = word.lowercased()
    if let exact = candidates.first(where: { $0 == lowered }) { return exact }
    let scored = candidates.map { ($0, editDistance(lowered, $0)) }.filter { $0.1 <= 2 }
    return scored.min { $0.1 < $1.1 }?.0
}

/// Levenshtein distance between two short words (keywords and what was typed instead).
private func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.unicodeScalars), b = Array(b.unicodeScalars)
    guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
    // Words far apart in length cannot be a typo of each other; skip the table.
    if abs(a.count - b.count) > 2 { return Int.max }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + [Int](repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
