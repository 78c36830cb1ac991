import Foundation
import SeqwallCore
import SeqwallTestSupport
import Testing

@testable import SeqwallRules

private func address(_ text: String) -> IPAddress {
    guard let address = IPAddress(text) else { fatalError("bad test address \(text)") }
    return address
}

/// The error lines for `text`, or [] when it parses.
private func errorLines(_ text: String, file: String = "test.rules") -> [String] {
    do {
        _ = try RuleFile.parse(text: text, file: file)
        return []
    } catch {
        return error.errors.map(\.description)
    }
}

/// A fresh directory under the system's temporary directory, removed by `body`'s caller.
private func withTemporaryDirectory(_ body: (String) throws -> Void) throws {
    let directory = try TemporaryDirectory(prefix: "seqwall-rules")
    try body(directory.path)
}

@Suite("Matching parsed rules")
struct MatchingTests {
    static let policyText = """
        inside 203.0.113.0/24, 2001:db8:2::/64
        default in block
        default out pass
        pass in tcp from 198.51.100.0/25 to port 22, 8000-8100
        block in tcp from 198.51.100.66
        reject in tcp to 203.0.113.10 port 23
        pass in tcp to 2001:db8:2::/64 port 443
        block out tcp to port 25
        """

    struct Case: Sendable, CustomTestStringConvertible {
        let direction: Direction
        let source: String
        let destination: String
        let port: UInt16
        let action: RuleAction
        let ruleIndex: Int?

        var testDescription: String { "\(direction) \(source) -> [\(destination)]:\(port)" }
    }

    static let cases: [Case] = [
        // Rule 0: source in the /25 and a listed port or a port in the range.
        Case(direction: .inbound, source: "198.51.100.5", destination: "203.0.113.10", port: 22, action: .pass, ruleIndex: 0),
        Case(direction: .inbound, source: "198.51.100.5", destination: "203.0.113.10", port: 8000, action: .pass, ruleIndex: 0),
        Case(direction: .inbound, source: "198.51.100.5", destination: "203.0.113.10", port: 8100, action: .pass, ruleIndex: 0),
        Case(direction: .inbound, source: "198.51.100.5", destination: "203.0.113.10", port: 8101, action: .block, ruleIndex: nil),
        Case(direction: .inbound, source: "198.51.100.5", destination: "203.0.113.10", port: 21, action: .block, ruleIndex: nil),
        // Outside the /25: only the default is left.
        Case(direction: .inbound, source: "198.51.100.200", destination: "203.0.113.10", port: 22, action: .block, ruleIndex: nil),
        // First match wins: .66 is inside the /25, so port 22 passes before rule 1 blocks it.
        Case(direction: .inbound, source: "198.51.100.66", destination: "203.0.113.10", port: 22, action: .pass, ruleIndex: 0),
        Case(direction: .inbound, source: "198.51.100.66", destination: "203.0.113.10", port: 80, action: .block, ruleIndex: 1),
        // Destination host and port both have to match.
        Case(direction: .inbound, source: "198.51.100.200", destination: "203.0.113.10", port: 23, action: .reject, ruleIndex: 2),
        Case(direction: .inbound, source: "198.51.100.200", destination: "203.0.113.11", port: 23, action: .block, ruleIndex: nil),
        // IPv6 networks match IPv6 only.
        Case(direction: .inbound, source: "2001:db8:1::5", destination: "2001:db8:2::1", port: 443, action: .pass, ruleIndex: 3),
        Case(direction: .inbound, source: "2001:db8:1::5", destination: "2001:db8:3::1", port: 443, action: .block, ruleIndex: nil),
        Case(direction: .inbound, source: "198.51.100.200", destination: "203.0.113.10", port: 443, action: .block, ruleIndex: nil),
        // Direction: inbound rules never match outbound connections, and the other way round.
        Case(direction: .outbound, source: "203.0.113.10", destination: "198.51.100.1", port: 25, action: .block, ruleIndex: 4),
        Case(direction: .outbound, source: "198.51.100.5", destination: "203.0.113.10", port: 22, action: .pass, ruleIndex: nil),
        Case(direction: .inbound, source: "198.51.100.200", destination: "203.0.113.10", port: 25, action: .block, ruleIndex: nil),
    ]

    @Test("Policy.decide on a parsed policy", arguments: cases)
    func decide(_ testCase: Case) throws {
        let policy = try RuleFile.parse(text: MatchingTests.policyText, file: "match.rules")
        let decision = policy.decide(direction: testCase.direction, source: address(testCase.source),
                                     destination: address(testCase.destination), destinationPort: testCase.port)
        #expect(decision.action == testCase.action)
        #expect(decision.ruleIndex == testCase.ruleIndex)
    }

    @Test("the parsed policy holds what the file says")
    func parsedFields() throws {
        let policy = try RuleFile.parse(text: MatchingTests.policyText, file: "match.rules")
        #expect(policy.inside.map(\.description) == ["203.0.113.0/24", "2001:db8:2::/64"])
        #expect(policy.isInside(address("203.0.113.99")))
        #expect(!policy.isInside(address("198.51.100.1")))
        #expect(policy.rules.count == 5)
        let first = try #require(policy.rules.first)
        #expect(first.action == .pass && first.direction == .inbound)
        #expect(first.from.map(\.description) == ["198.51.100.0/25"])
        #expect(first.to.isEmpty)
        #expect(first.ports == [PortRange(22), PortRange(8000, 8100)])
        #expect(first.location == SeqwallCore.SourceLocation(file: "match.rules", line: 4, column: 1))
        #expect(RuleFile.canonicalText(of: first) == "pass in tcp from 198.51.100.0/25 to port 22, 8000-8100")
    }

    @Test("a rule matches its own protocol only; ICMP rules ignore ports")
    func protocols() throws {
        let policy = try RuleFile.parse(text: """
            pass in udp to port 53
            pass in icmp echo to 203.0.113.10
            pass in icmp6 echo
            pass in tcp to port 53
            """, file: "p.rules")
        func decide(_ protocolName: TrackedProtocol, _ destination: String, _ port: UInt16) -> Int? {
            let decision = policy.decide(protocolName: protocolName, direction: .inbound, source: address("198.51.100.7"),
                                         destination: address(destination), destinationPort: port)
            return decision.action == .pass ? decision.ruleIndex : nil
        }
        #expect(decide(.udp, "203.0.113.10", 53) == 0)
        #expect(decide(.udp, "203.0.113.10", 54) == nil)
        #expect(decide(.tcp, "203.0.113.10", 53) == 3)
        #expect(decide(.icmp, "203.0.113.10", 0) == 1)
        #expect(decide(.icmp, "203.0.113.11", 0) == nil)
        #expect(decide(.icmp6, "2001:db8:2::1", 0) == 2)
        #expect(policy.rules.map(\.protocolName) == [.udp, .icmp, .icmp6, .tcp])
    }

    @Test("from any and to any match everything")
    func anyMatchesAll() throws {
        let policy = try RuleFile.parse(text: "reject out tcp from any to any\n", file: "any.rules")
        #expect(policy.rules.first?.from == [] && policy.rules.first?.to == [])
        let v6 = policy.decide(direction: .outbound, source: address("2001:db8:2::1"), destination: address("2001:db8:1::1"), destinationPort: 1)
        let v4 = policy.decide(direction: .outbound, source: address("203.0.113.1"), destination: address("198.51.100.1"), destinationPort: 65535)
        #expect(v6.action == .reject && v4.action == .reject)
    }
}

@Suite("Durations")
struct DurationTests {
    @Test("units and bare seconds", arguments: [
        ("30", UInt32(30)), ("30s", 30), ("5m", 300), ("2h", 7200), ("5d", 432_000), ("1", 1),
        ("4294967295", UInt32.max), ("4294967295s", UInt32.max), ("1193046h", 4_294_965_600), ("49710d", 4_294_944_000),
        ("007s", 7),
    ])
    func valid(text: String, seconds: UInt32) throws {
        let policy = try RuleFile.parse(text: "timeout tcp established \(text)\n", file: "t.rules")
        #expect(policy.timeouts.established == seconds)
        #expect(policy.timeouts[.established] == seconds)
    }

    @Test("printed in the largest exact unit", arguments: [
        (UInt32(1), "1s"), (59, "59s"), (60, "1m"), (90, "90s"), (3600, "1h"), (5400, "90m"), (86400, "1d"),
        (90000, "25h"), (432_000, "5d"), (UInt32.max, "4294967295s"),
    ])
    func printed(seconds: UInt32, text: String) {
        #expect(RulePrinter.duration(seconds) == text)
    }

    @Test("zero, too long and malformed durations are errors", arguments: [
        ("0", "t.rules:1:25: timeout 0 is zero; it must be at least 1 second"),
        ("0d", "t.rules:1:25: timeout 0d is zero; it must be at least 1 second"),
        ("4294967296", "t.rules:1:25: timeout 4294967296 is too long (at most 4294967295 seconds)"),
        ("71582789m", "t.rules:1:25: timeout 71582789m is too long (at most 4294967295 seconds)"),
        ("99999999999999999999999d", "t.rules:1:25: timeout 99999999999999999999999d is too long (at most 4294967295 seconds)"),
        ("1.5h", "t.rules:1:25: bad duration '1.5h'; expected a whole number with unit s, m, h or d, such as 30s or 5d"),
        ("m", "t.rules:1:25: bad duration 'm'; expected a whole number with unit s, m, h or d, such as 30s or 5d"),
        ("5w", "t.rules:1:25: bad duration '5w'; expected a whole number with unit s, m, h or d, such as 30s or 5d"),
        ("-5s", "t.rules:1:25: bad duration '-5s'; expected a whole number with unit s, m, h or d, such as 30s or 5d"),
        ("5 m", "t.rules:1:27: expected end of line, found 'm'"),
    ])
    func invalid(text: String, message: String) {
        #expect(errorLines("timeout tcp established \(text)\n", file: "t.rules") == [message])
    }

    @Test("every timeout name sets its own field")
    func everyName() throws {
        for (offset, name) in TimeoutName.allCases.enumerated() {
            let seconds = UInt32(1000 + offset)
            let policy = try RuleFile.parse(text: "timeout \(name.statementText) \(seconds)", file: "t.rules")
            var expected = Policy()
            expected[keyPath: name.keyPath] = seconds
            #expect(policy.timeouts == expected.timeouts, "\(name.statementText)")
            #expect(policy.datagramTimeouts == expected.datagramTimeouts, "\(name.statementText)")
        }
    }
}

@Suite("Repeated settings")
struct RepeatedSettingTests {
    @Test("repeats that agree are accepted")
    func agreeing() throws {
        let policy = try RuleFile.parse(text: """
            default out reject
            default out reject
            limit half-open 10 per-source
            limit half-open 10 per-source
            timeout tcp time-wait 2m
            timeout tcp TIME_WAIT 120
            set pickup on
            set pickup on
            """, file: "r.rules")
        #expect(policy.defaultOutbound == .reject)
        #expect(policy.limits.halfOpenPerSource == 10)
        #expect(policy.timeouts.timeWait == 120)
        #expect(policy.pickup)
    }

    @Test("repeats that disagree name the first one", arguments: [
        ("limit half-open 10\nlimit half-open 11", "r.rules:2:1: 'limit half-open 11' contradicts 'limit half-open 10' at r.rules:1:1"),
        ("limit half-open 10 per-source\n\nlimit half-open 11 per-source",
         "r.rules:3:1: 'limit half-open 11 per-source' contradicts 'limit half-open 10 per-source' at r.rules:1:1"),
        ("limit syn-rate 20/s per-source\nlimit syn-rate 20/s burst 40 per-source",
         "r.rules:2:1: 'limit syn-rate 20/s burst 40 per-source' contradicts 'limit syn-rate 20/s burst 20 per-source' at r.rules:1:1"),
        ("default out pass\ndefault out block", "r.rules:2:1: 'default out block' contradicts 'default out pass' at r.rules:1:1"),
        ("timeout tcp syn_sent 30s\ntimeout tcp syn-sent 31s", "r.rules:2:1: 'timeout tcp syn-sent 31s' contradicts 'timeout tcp syn-sent 30s' at r.rules:1:1"),
    ])
    func disagreeing(text: String, message: String) {
        #expect(errorLines(text, file: "r.rules") == [message])
    }

    @Test("global and per-source half-open limits are separate settings")
    func separateSettings() throws {
        let policy = try RuleFile.parse(text: "limit half-open 4096\nlimit half-open 64 per-source\n", file: "r.rules")
        #expect(policy.limits.halfOpen == 4096)
        #expect(policy.limits.halfOpenPerSource == 64)
    }
}

@Suite("Loading files")
struct LoadingTests {
    @Test("a missing top-level file is reported at 1:1 with the system's reason")
    func missingFile() {
        #expect(throws: RuleErrors(errors: [RuleError(
            location: SeqwallCore.SourceLocation(file: "/nonexistent/seqwall.rules", line: 1, column: 1),
            message: "cannot read file: No such file or directory")])) {
            try RuleFile.load(path: "/nonexistent/seqwall.rules")
        }
    }

    @Test("a directory is not a rule file")
    func directory() throws {
        try withTemporaryDirectory { directory in
            do throws(RuleErrors) {
                _ = try RuleFile.load(path: directory)
                Issue.record("loaded a directory")
            } catch {
                #expect(error.description == "\(directory):1:1: cannot read file: Is a directory")
            }
        }
    }

    @Test("relativeTo opens relative to the base but names files as given")
    func relativeTo() throws {
        try withTemporaryDirectory { directory in
            try FileManager.default.createDirectory(atPath: directory + "/conf/sub", withIntermediateDirectories: true)
            try "include \"sub/more.rules\"\nset pickup on\n".write(toFile: directory + "/conf/main.rules", atomically: true, encoding: .utf8)
            try "limit states 17\n".write(toFile: directory + "/conf/sub/more.rules", atomically: true, encoding: .utf8)
            let policy = try RuleFile.load(path: "conf/main.rules", relativeTo: directory)
            #expect(policy.limits.states == 17 && policy.pickup)
            // Same through an absolute path and no base.
            #expect(try RuleFile.load(path: directory + "/conf/main.rules") == policy)

            try "limit states 1\n".write(toFile: directory + "/conf/sub/more.rules", atomically: true, encoding: .utf8)
            do throws(RuleErrors) {
                _ = try RuleFile.load(path: "conf/main.rules", relativeTo: directory)
                Issue.record("limit states 1 accepted")
            } catch {
                #expect(error.description == "conf/sub/more.rules:1:14: limit states 1 is out of range (16-67108864)")
            }
        }
    }

    @Test("text in memory includes files relative to its file's directory")
    func parseTextWithInclude() throws {
        try withTemporaryDirectory { directory in
            try "pass in tcp to port 22\n".write(toFile: directory + "/local.rules", atomically: true, encoding: .utf8)
            let policy = try RuleFile.parse(text: "include \"local.rules\"\ndefault in reject\n", file: directory + "/main.rules")
            #expect(policy.rules.map { RuleFile.canonicalText(of: $0) } == ["pass in tcp to port 22"])
            #expect(policy.rules.first?.location.file == directory + "/local.rules")
            #expect(policy.defaultInbound == .reject)
        }
    }

    @Test("a file that includes itself is a loop, also from memory")
    func selfInclude() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/self.rules"
            let text = "# includes itself\ninclude \"self.rules\"\n"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            #expect(errorLines(text, file: path) == ["\(path):2:9: include loop: \(path) -> \(path)"])
        }
    }

    @Test("includes nest at most 16 deep")
    func includeDepth() throws {
        try withTemporaryDirectory { directory in
            // level0 includes level1 ... includes level17: the 17th include is one too many.
            for level in 0...17 {
                try "include \"level\(level + 1).rules\"\n".write(toFile: "\(directory)/level\(level).rules", atomically: true, encoding: .utf8)
            }
            try "set pickup on\n".write(toFile: "\(directory)/level18.rules", atomically: true, encoding: .utf8)
            do throws(RuleErrors) {
                _ = try RuleFile.load(path: "level0.rules", relativeTo: directory)
                Issue.record("18 nested includes accepted")
            } catch {
                #expect(error.description == "level16.rules:1:9: includes nested too deeply (more than 16 levels)")
            }
            // Sixteen levels are fine.
            try "set pickup on\n".write(toFile: "\(directory)/level16.rules", atomically: true, encoding: .utf8)
            #expect(try RuleFile.load(path: "level0.rules", relativeTo: directory).pickup)
        }
    }

    @Test("files over 16 MiB are refused")
    func tooLarge() throws {
        try withTemporaryDirectory { directory in
            let path = directory + "/huge.rules"
            try Data(repeating: UInt8(ascii: "\n"), count: (16 << 20) + 1).write(to: URL(fileURLWithPath: path))
            do throws(RuleErrors) {
                _ = try RuleFile.load(path: path)
                Issue.record("huge file accepted")
            } catch {
                #expect(error.description == "\(path):1:1: cannot read file: file is larger than 16 MiB")
            }
        }
    }
}

@Suite("Errors")
struct ErrorTests {
    @Test("errors render as file:line:column: message, joined by newlines")
    func rendering() {
        let errors = RuleErrors(errors: [
            RuleError(location: SeqwallCore.SourceLocation(file: "a.rules", line: 3, column: 7), message: "first"),
            RuleError(location: SeqwallCore.SourceLocation(file: "dir/b.rules", line: 10, column: 1), message: "second"),
        ])
        #expect(errors.errors[0].description == "a.rules:3:7: first")
        #expect(errors.description == "a.rules:3:7: first\ndir/b.rules:10:1: second")
    }

    @Test("collection stops after 50 errors with a note")
    func cap() {
        // A typo of a keyword is still a rule file's line, so reading goes on after it.
        let lines = errorLines(String(repeating: "pas in tcp\n", count: 500))
        #expect(lines.count == Diagnostics.limit + 1)
        #expect(lines.first == "test.rules:1:1: unknown statement 'pas'; did you mean 'pass'?")
        #expect(lines.last == "test.rules:51:1: too many errors (more than 50); stopping here")
    }

    @Test("a line that starts no statement ends the file, quoting at most the start of its first token")
    func notARuleFile() {
        #expect(errorLines(String(repeating: "bogus\n", count: 500)) == [
            "test.rules:1:1: unknown statement 'bogus'; expected one of: include, inside, default, table, pass, block, reject, "
                + "limit, timeout, set; not a rule, so the rest of this file is not read",
        ])
        let secret = "root:" + String(repeating: "S", count: 200) + ":19700:0:99999:7:::"
        let lines = errorLines(secret + "\n" + secret + "\n")
        #expect(lines.count == 1)
        #expect(lines.first?.contains("'root:" + String(repeating: "S", count: 19) + "…'") == true)
        #expect(lines.first?.contains(String(repeating: "S", count: 20)) == false)
    }

    @Test("every error in a rule line is reported")
    func severalInOneLine() {
        #expect(errorLines("pass in tcp from 10.0.0.1/8, 2001:db8::1/32 to port 0, 9-8, 70000-80000\n") == [
            "test.rules:1:18: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?",
            "test.rules:1:30: 2001:db8::1/32 has host bits set; did you mean 2001:db8::/32?",
            "test.rules:1:53: port 0 is out of range (1-65535)",
            "test.rules:1:56: port range 9-8 is reversed; did you mean 8-9?",
            "test.rules:1:61: port 70000 is out of range (1-65535)",
            "test.rules:1:67: port 80000 is out of range (1-65535)",
        ])
    }

    @Test("messages for misplaced and missing words", arguments: [
        ("default", "test.rules:1:8: expected 'in' or 'out' after 'default'"),
        ("default sideways pass", "test.rules:1:9: expected 'in' or 'out', found 'sideways'"),
        ("pass", "test.rules:1:5: expected 'in' or 'out' after 'pass'"),
        ("pass in gre", "test.rules:1:9: expected 'tcp', 'udp', 'icmp', 'icmp6', 'from', 'to', 'port' or end of line, "
         + "found 'gre' (seqwall tracks tcp, udp and ICMP echo; a rule without a protocol is for every protocol)"),
        ("pass in icmp6", "test.rules:1:14: expected 'echo' after 'icmp6'"),
        ("pass in tcp from", "test.rules:1:17: expected an address, a network or 'any' after 'from'"),
        ("pass in tcp from to port 22", "test.rules:1:18: expected an address, a network or 'any', found 'to'"),
        ("pass in tcp to port", "test.rules:1:20: expected a port number or range after 'port'"),
        ("pass in tcp to port sshh", "test.rules:1:21: unknown service 'sshh'; write the port number (the names "
         + "seqwall knows are in seqwall.rules(5): ssh, http, https, domain, ...)"),
        ("pass in tcp to port 22-", "test.rules:1:21: expected a port number or range, found '22-'"),
        ("pass in tcp to port 1-2-3", "test.rules:1:21: expected a port number or range, found '1-2-3'"),
        ("pass in tcp bogus", "test.rules:1:13: expected 'from', 'to', 'port', 'limit', 'synproxy' or end of line, found 'bogus'"),
        ("pass in tcp from 198.51.100.1 198.51.100.2",
         "test.rules:1:31: expected 'to', 'port', 'limit', 'synproxy' or end of line, found '198.51.100.2' (separate list items with commas)"),
        ("pass in tcp limit half-open 5", "test.rules:1:30: expected 'per-source' after '5'"),
        ("pass in tcp limit states 5 per-source", "test.rules:1:19: expected 'half-open', 'conn' or 'conn-rate', found 'states'"),
        ("pass in tcp limit half-open 0 per-source", "test.rules:1:29: half-open limit 0 is out of range (1-67108864)"),
        ("inside any", "test.rules:1:8: 'any' cannot be combined with other addresses"),
        ("inside", "test.rules:1:7: expected an address or network after 'inside'"),
        ("inside 198.51.100.0/24,, 203.0.113.0/24", "test.rules:1:24: expected an address or network, found ','"),
        ("inside 256.1.1.1", "test.rules:1:8: '256.1.1.1' is not an IPv4 or IPv6 address"),
        ("inside 2001:db8::1::2/64", "test.rules:1:8: '2001:db8::1::2' is not an IPv4 or IPv6 address"),
        ("inside ::ffff:0:0/80", "test.rules:1:8: ::ffff:0:0/80 is an IPv4-mapped IPv6 address; write it as IPv4"),
        ("inside 198.51.100.0/", "test.rules:1:21: bad prefix length '' in '198.51.100.0/'"),
        ("limit", "test.rules:1:6: expected 'states', 'half-open', 'syn-rate', 'conn' or 'conn-rate' after 'limit'"),
        ("limit state 100", "test.rules:1:7: expected 'states', 'half-open', 'syn-rate', 'conn' or 'conn-rate', found 'state'"),
        ("limit states many", "test.rules:1:14: expected a number, found 'many'"),
        ("limit states -5", "test.rules:1:14: expected a number, found '-5'"),
        ("limit half-open 10 per-host", "test.rules:1:20: expected end of line, found 'per-host'"),
        ("limit syn-rate 0/s burst 5 per-source", "test.rules:1:16: syn rate 0 is out of range (1-67108864)"),
        ("limit syn-rate 20/s burst 0 per-source", "test.rules:1:27: burst 0 is out of range (1-67108864)"),
        ("limit syn-rate 20 per-source", "test.rules:1:16: bad rate '20'; expected connections per second such as 20/s"),
        ("timeout udp established 5d", "test.rules:1:13: unknown UDP timeout 'established'; expected one of: single, stream"),
        ("timeout sctp 5d", "test.rules:1:9: expected 'tcp', 'udp' or 'icmp', found 'sctp'"),
        ("timeout icmp echo 5d", "test.rules:1:14: bad duration 'echo'; expected a whole number with unit s, m, h or d, such as 30s or 5d"),
        ("timeout tcp none 5s", "test.rules:1:13: unknown TCP state 'none'; expected one of: syn-sent, syn-recv, established, fin-wait, close-wait, last-ack, time-wait, close, syn-sent2, retransmit, unacknowledged"),
        ("TIMEOUT tcp close 5s", "test.rules:1:1: unknown statement 'TIMEOUT'; did you mean 'timeout'?"),
        ("set pickup", "test.rules:1:11: expected 'on', 'off', 'grace' or 'ephemeral-ports' after 'pickup'"),
        ("set logging on", "test.rules:1:5: expected 'pickup', 'drop-log' or 'synproxy', found 'logging'"),
        ("include", "test.rules:1:8: expected a quoted file name after 'include'"),
        ("include \"\"", "test.rules:1:9: empty file name"),
        ("include \"a.rules\" \"b.rules\"", "test.rules:1:19: expected end of line, found \"b.rules\""),
        (", pass", "test.rules:1:1: expected a statement, found ','; not a rule, so the rest of this file is not read"),
        ("\"pass\" in tcp", "test.rules:1:1: expected a statement, found \"pass\"; not a rule, so the rest of this file is not read"),
    ])
    func message(text: String, expected: String) {
        #expect(errorLines(text) == [expected])
    }
}

@Suite("Lexer")
struct LexerTests {
    @Test("tokens carry their line and 1-based columns")
    func columns() {
        var lexer = Lexer(bytes: Array("# top\n  pass in tcp to port 22,80 # note\ninclude \"a b.rules\"\n\n".utf8), file: "f")
        var lines: [LexedLine] = []
        while let line = lexer.nextLine() { lines.append(line) }
        #expect(lines.map(\.number) == [1, 2, 3, 4])
        #expect(lines[0].tokens.isEmpty)
        let second = lines[1].tokens
        #expect(second.map(\.text) == ["pass", "in", "tcp", "to", "port", "22", ",", "80"])
        #expect(second.map(\.column) == [3, 8, 11, 15, 18, 23, 25, 26])
        #expect(second.map(\.endColumn) == [7, 10, 14, 17, 22, 25, 26, 28])
        #expect(second[6].kind == .comma)
        let third = lines[2].tokens
        #expect(third.count == 2 && third[1].kind == .string && third[1].text == "a b.rules")
        #expect(third[1].column == 9 && third[1].endColumn == 20)
    }

    @Test("columns count characters, not bytes")
    func unicodeColumns() {
        #expect(errorLines("# déjà vu\ninclude \"ünïcødé.rules\" x\n") == [
            "test.rules:2:25: expected end of line, found 'x'",
        ])
    }

    @Test("a byte order mark is skipped and does not count as a column")
    func byteOrderMark() throws {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("set pickup on\nset pickup yes\n".utf8)
        do {
            _ = try RuleFile.parse(bytes: bytes, file: "bom.rules")
            Issue.record("accepted pickup yes")
        } catch {
            #expect(error.description == "bom.rules:2:12: expected 'on', 'off', 'grace' or 'ephemeral-ports', found 'yes'")
        }
        #expect(try RuleFile.parse(bytes: bytes.dropLast(15) + [0x0A], file: "bom.rules").pickup)
    }

    @Test("invalid UTF-8 is reported where it starts")
    func invalidUTF8() {
        for (bytes, location) in [([0xFF], "1:1"), ([0x61, 0x0A, 0x62, 0xC3], "2:2"), ([0xED, 0xA0, 0x80], "1:1")] as [([UInt8], String)] {
            #expect(throws: (any Error).self) { try RuleFile.parse(bytes: bytes, file: "u") }
            do {
                _ = try RuleFile.parse(bytes: bytes, file: "u")
            } catch {
                #expect(error.description == "u:\(location): file is not valid UTF-8")
            }
        }
    }
}

@Suite("Canonical text")
struct CanonicalTextTests {
    @Test("a policy built in code prints normalized and parses back")
    func programmaticPolicy() throws {
        var policy = Policy()
        let here = SeqwallCore.SourceLocation(file: "code", line: 1, column: 1)
        let v6 = IPNetwork(address: address("2001:db8:1::"), prefixLength: 64)
        let v4 = IPNetwork(address: address("198.51.100.0"), prefixLength: 24)
        policy.inside = [IPNetwork(address: address("2001:db8:2::"), prefixLength: 64), IPNetwork(address: address("203.0.113.0"), prefixLength: 24)]
        policy.rules = [
            Rule(action: .pass, direction: .inbound, from: [v6, v4, v4], ports: [PortRange(443), PortRange(80), PortRange(81)], location: here),
            Rule(action: .reject, direction: .outbound, to: [v4], location: here),
        ]
        policy.limits.synRatePerSource = (rate: 5, burst: 7)
        policy.timeouts.close = 20
        let text = RuleFile.canonicalText(of: policy)
        #expect(text == """
            inside 203.0.113.0/24, 2001:db8:2::/64
            default in block
            default out pass
            pass in tcp from 198.51.100.0/24, 2001:db8:1::/64 to port 80-81, 443
            reject out tcp to 198.51.100.0/24
            limit states 262144
            limit syn-rate 5/s burst 7 per-source
            timeout tcp close 20s
            set pickup off

            """)
        let reparsed = try RuleFile.parse(text: text, file: "canonical.rules")
        #expect(RuleFile.canonicalText(of: reparsed) == text)
    }
}

@Suite("Robustness")
struct RobustnessTests {
    static let words = [
        "inside", "default", "pass", "block", "reject", "limit", "timeout", "set", "in", "out", "tcp", "from", "to",
        "any", "port", "half-open", "per-source", "states", "syn-rate", "burst", "pickup", "on", "off", "established",
        "syn_sent", "22", "0", "65535", "65536", "8000-8100", "9-1", "20/s", "5d", "30s", "0s", "99999999999999999999",
        "198.51.100.0/24", "198.51.100.1/24", "203.0.113.7", "2001:db8::/64", "2001:db8::1/129", "::", "::/0",
        "::ffff:1.2.3.4", "1.2.3.4/", "/", "-", ",", ",", "#", "\"", "\"x\"", "é", "\u{0}", "\t", "\r", "\n", "\n", "\n",
    ]

    @Test("random bytes never crash the loader, and every error has a real position")
    func randomBytes() {
        var generator = SplitMix64(seed: 1)
        for _ in 0..<2000 {
            let count = Int.random(in: 0..<200, using: &generator)
            // Half the inputs stay ASCII, which gets past the UTF-8 check into the lexer and parser.
            let range: ClosedRange<UInt8> = Bool.random(using: &generator) ? 0...255 : 0...127
            let bytes = (0..<count).map { _ in UInt8.random(in: range, using: &generator) }
            check(bytes)
        }
    }

    @Test("random word soup: accepted input round-trips through the canonical text")
    func randomWords() throws {
        var generator = SplitMix64(seed: 2)
        var accepted = 0
        for _ in 0..<5000 {
            let count = Int.random(in: 1..<24, using: &generator)
            let text = (0..<count).map { _ in RobustnessTests.words.randomElement(using: &generator) ?? "" }
                .joined(separator: Bool.random(using: &generator) ? " " : "")
            if let policy = check(Array(text.utf8)) {
                accepted += 1
                let canonical = RuleFile.canonicalText(of: policy)
                let reparsed = try RuleFile.parse(text: canonical, file: "canonical.rules")
                #expect(withoutLocations(reparsed) == withoutLocations(policy), "\(text)")
            }
        }
        #expect(accepted > 0)
    }

    @discardableResult
    private func check(_ bytes: [UInt8]) -> Policy? {
        do {
            return try RuleFile.parse(bytes: bytes, file: "fuzz.rules")
        } catch {
            #expect(!error.errors.isEmpty)
            #expect(error.errors.count <= Diagnostics.limit + 1)
            for item in error.errors {
                #expect(item.location.line >= 1 && item.location.column >= 1 && !item.message.isEmpty)
            }
            return nil
        }
    }
}

@Suite("set drop-log")
struct DropLogSettingTests {
    @Test("each mode parses; sampled is the default", arguments: DropLogMode.allCases)
    func modes(mode: DropLogMode) throws {
        let policy = try RuleFile.parse(text: "set drop-log \(mode.rawValue)\n", file: "test.rules")
        #expect(policy.dropLog == mode)
        let canonical = RuleFile.canonicalText(of: policy)
        #expect(canonical.contains("set drop-log") == (mode != .sampled))
        #expect(try RuleFile.parse(text: canonical, file: "canonical.rules").dropLog == mode)
    }

    @Test("a file that does not say has sampled")
    func defaultMode() throws {
        #expect(try RuleFile.parse(text: "default in block\n", file: "test.rules").dropLog == .sampled)
    }

    @Test("misspellings name the nearest choice")
    func misspellings() {
        #expect(errorLines("set drop-log sample\n")
            == ["test.rules:1:14: expected 'off', 'sampled' or 'full', found 'sample'; did you mean 'sampled'?"])
        #expect(errorLines("set drop-log verbose\n") == ["test.rules:1:14: expected 'off', 'sampled' or 'full', found 'verbose'"])
        #expect(errorLines("set droplog full\n")
            == ["test.rules:1:5: expected 'pickup', 'drop-log' or 'synproxy', found 'droplog'; did you mean 'drop-log'?"])
    }
}
