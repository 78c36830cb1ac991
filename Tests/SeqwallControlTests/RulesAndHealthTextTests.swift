import Foundation
@testable import SeqwallControl
import SeqwallCore
import Testing

@Suite("rules show and the daemon's health in stats")
struct RulesAndHealthTextTests {
    private func counters(_ passed: UInt64, _ blocked: UInt64, _ rejected: UInt64, ago: UInt64?) -> RulesRecord.Counters {
        RulesRecord.Counters(passed: passed, blocked: blocked, rejected: rejected, last_match_seconds_ago: ago)
    }

    private var record: RulesRecord {
        RulesRecord(
            file: "/etc/seqwall/seqwall.rules", loaded_at: 1_796_305_963, inside: ["203.0.113.0/24"],
            defaults: [.init(number: nil, text: "default in block", location: nil, counters: counters(0, 4, 0, ago: 3)),
                       .init(number: nil, text: "default out pass", location: nil, counters: counters(9, 0, 0, ago: 3725))],
            rules: [.init(number: 1, text: "pass in tcp to port 22", location: "seqwall.rules:3:1",
                          counters: counters(2, 1, 0, ago: 0)),
                    .init(number: 2, text: "reject in udp port 53", location: "seqwall.rules:4:1",
                          counters: counters(0, 0, 0, ago: nil))],
            limits: .init(states: 1000, half_open: nil, half_open_per_source: 5, syn_rate_per_source: 10, syn_rate_burst: 20),
            timeouts: [.init(name: "tcp syn-sent", seconds: 30, text: "timeout tcp syn-sent 30s", is_default: false),
                       .init(name: "icmp", seconds: 30, text: "timeout icmp 30s", is_default: true)],
            pickup: false, drop_log: "sampled")
    }

    @Test("rules show: numbered rules with counters, every limit, defaults marked")
    func rulesText() {
        #expect(Formatters.rulesText(record) == """
            # /etc/seqwall/seqwall.rules, loaded 2026-12-03T13:52:43Z
            inside 203.0.113.0/24
            default in block
              [ passed 0  blocked 4  rejected 0  last match 3s ago ]
            default out pass
              [ passed 9  blocked 0  rejected 0  last match 1h2m5s ago ]
            @1 pass in tcp to port 22  # seqwall.rules:3:1
              [ passed 2  blocked 1  rejected 0  last match 0s ago ]
            @2 reject in udp port 53  # seqwall.rules:4:1
              [ passed 0  blocked 0  rejected 0  last match never ]
            limit states 1000
            limit half-open none
            limit half-open 5 per-source
            limit syn-rate 10/s burst 20 per-source
            timeout tcp syn-sent 30s
            timeout icmp 30s  # default
            set pickup off
            set drop-log sampled
            """)
    }

    @Test("rules show JSON: a rule that never matched has no last match, an unset limit no key")
    func rulesJSON() throws {
        let json = try ControlJSON.line(record)
        #expect(json.contains("\"counters\":{\"blocked\":0,\"passed\":0,\"rejected\":0},\"location\":\"seqwall.rules:4:1\""))
        #expect(json.contains("\"limits\":{\"half_open_per_source\":5,\"states\":1000,\"syn_rate_burst\":20,\"syn_rate_per_source\":10}"))
        #expect(try JSONDecoder().decode(RulesRecord.self, from: Data(json.utf8)) == record)
        // A reply carries it, and an old reply without it still decodes.
        let reply = ControlReply(ok: true, rules: record)
        #expect(try JSONDecoder().decode(ControlReply.self, from: Data(ControlJSON.line(reply).utf8)) == reply)
        #expect(try JSONDecoder().decode(ControlReply.self, from: Data("{\"ok\":true}".utf8)).rules == nil)
    }

    @Test("stats: uptime, the last reload, rule drops, a failing state file and warnings")
    func healthLines() throws {
        var stats = StatsRecord(queues: [.init(queue: 0, counters: TrackerCounters(), connections: 0, halfOpen: 0,
                                               connectionLimit: 10, enobufs: 0, kernel: nil)])
        #expect(!Formatters.statsText(stats).contains("uptime"), "a daemon that reports none of it")
        stats.uptime_seconds = 90061
        stats.last_reload = .init(at: 1_796_305_963, ok: false, error: "seqwall.rules:3:1: unknown word 'pas'")
        stats.rule_drops = [.init(number: nil, rule: "default in block", blocked: 4, rejected: 0),
                            .init(number: 2, rule: "reject in udp port 53", blocked: 0, rejected: 7)]
        stats.state_file = .init(path: "/var/lib/seqwall/state", ok: false, last_success_at: 1_796_305_900,
                                 last_error: "cannot write: No space left on device", last_error_at: 1_796_305_963,
                                 failures: 2)
        stats.warnings = ["no packet has reached queue 0"]
        let text = Formatters.statsText(stats)
        for line in ["uptime       1d1h1m1s",
                     "last reload  2026-12-03T13:52:43Z failed: seqwall.rules:3:1: unknown word 'pas'",
                     "rule drops   (every rule's counters: seqwall rules show)",
                     "  default in block  blocked 4  rejected 0",
                     "  @2 reject in udp port 53  blocked 0  rejected 7",
                     "state file   /var/lib/seqwall/state FAILING, last written 2026-12-03T13:51:40Z, 2 failed writes, last error at 2026-12-03T13:52:43Z: cannot write: No space left on device",
                     "WARNING: no packet has reached queue 0"] {
            #expect(text.contains(line + "\n") || text.hasSuffix(line), "\(line) in \(text)")
        }
        stats.last_reload = nil
        stats.rule_drops = []
        #expect(Formatters.statsText(stats).contains("last reload  none since the start"))
        #expect(Formatters.statsText(stats).contains("rule drops   none (every rule's counters: seqwall rules show)"))
        // An older CLI's view: the new keys are extra and optional.
        let decoded = try JSONDecoder().decode(StatsRecord.self, from: Data(ControlJSON.line(stats).utf8))
        #expect(decoded == stats)
    }

    @Test("the first line of a multi-line error")
    func firstLine() {
        #expect(DaemonHealth.firstLine("a:1:1: one\na:2:1: two") == "a:1:1: one")
        #expect(DaemonHealth.firstLine("single") == "single")
    }
}

@Suite("the owner of a control socket whose file is gone")
struct ControlSocketOwnerTests {
    @Test("listening sockets bound to the path, from /proc/net/unix")
    func listeningInodes() {
        let table = """
            Num       RefCount Protocol Flags    Type St Inode Path
            00000000db8b2383: 00000002 00000000 00010000 0001 01 126738 /run/seqwall/control.sock
            00000000db8b2384: 00000003 00000000 00000000 0001 03 126739 /run/seqwall/control.sock
            00000000db8b2385: 00000002 00000000 00010000 0001 01 126740 /run/other.sock
            00000000db8b2386: 00000002 00000000 00010000 0001 01 126741 /tmp/with space.sock
            00000000db8b2387: 00000002 00000000 00010000 0001 01 126742
            """
        // The connected one (flags 0, state 03) is a client's end, not the listener.
        #expect(ControlSocketOwner.listeningInodes(procNetUnix: table, path: "/run/seqwall/control.sock") == [126738])
        #expect(ControlSocketOwner.listeningInodes(procNetUnix: table, path: "/tmp/with space.sock") == [126741])
        #expect(ControlSocketOwner.listeningInodes(procNetUnix: table, path: "/run/seqwall/none.sock").isEmpty)
    }

    @Test("socket:[INODE] links")
    func socketInode() {
        #expect(ControlSocketOwner.socketInode(link: "socket:[126738]") == 126738)
        #expect(ControlSocketOwner.socketInode(link: "/dev/null") == nil)
        #expect(ControlSocketOwner.socketInode(link: "pipe:[5]") == nil)
    }

    @Test("the message names the pid and what re-creates the socket")
    func message() {
        #expect(ControlSocketOwner.message(path: "/run/seqwall/control.sock", owner: .init(pid: 42, command: "seqwall"))
            == "seqwall (pid 42) is running but its control socket /run/seqwall/control.sock is gone; `kill -HUP 42` (or `systemctl reload seqwall`) makes it again")
    }
}

@Suite("a running daemon found by its command line")
struct DaemonCommandLineTests {
    private func bytes(_ parts: [String]) -> [UInt8] { parts.flatMap { Array($0.utf8) + [0] } }

    @Test("--control PATH, --control=PATH, SEQWALL_CONTROL, the default; not seqwall run")
    func controlPath() {
        let environ = bytes(["PATH=/usr/bin", "SEQWALL_CONTROL=/run/env.sock"])
        #expect(ControlSocketOwner.daemonControlPath(
            cmdline: bytes(["/usr/bin/seqwall", "run", "--rules", "r", "--control", "/tmp/a.sock"]), environ: environ) == "/tmp/a.sock")
        #expect(ControlSocketOwner.daemonControlPath(
            cmdline: bytes(["seqwall", "run", "--control=/tmp/b.sock"]), environ: []) == "/tmp/b.sock")
        #expect(ControlSocketOwner.daemonControlPath(
            cmdline: bytes(["./seqwall", "run", "--rules", "r"]), environ: environ) == "/run/env.sock")
        #expect(ControlSocketOwner.daemonControlPath(
            cmdline: bytes(["seqwall", "run", "--rules", "r"]), environ: []) == ControlLimits.defaultSocketPath)
        #expect(ControlSocketOwner.daemonControlPath(cmdline: bytes(["seqwall", "stats"]), environ: []) == nil)
        #expect(ControlSocketOwner.daemonControlPath(cmdline: bytes(["vim", "run"]), environ: []) == nil)
        #expect(ControlSocketOwner.daemonControlPath(cmdline: [], environ: []) == nil)
    }
}
