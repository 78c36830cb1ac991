import ArgumentParser
import Foundation
import Logging
import SeqwallControl
import SeqwallCore
import SeqwallDaemon
import SeqwallRules
import SeqwallTelemetry
import SeqwallVersion

@main
struct Seqwall: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seqwall",
        abstract: "A stateful firewall in userspace (TCP, UDP, ICMP), fed by NFQUEUE.",
        discussion: """
            nftables or iptables sends packets to an NFQUEUE; seqwall checks each against the TCP state \
            machine (UDP and ICMP echo flows and ICMP errors against the table) and the rule \
            files and gives the kernel a verdict.

            As a service (the .deb or make install): seqwall.service loads the diversion with \
            seqwall-divert (nft, or iptables where nftables cannot queue; host mode by default, \
            or gateway; IPv4 and IPv6), runs `seqwall run \
            --rules /etc/seqwall/seqwall.rules --control /run/seqwall/control.sock \
            --state-file /var/lib/seqwall/state`, reloads the rules on `systemctl reload \
            seqwall` (SIGHUP) and removes the diversion when it stops. The diversion files \
            (.nft and iptables-restore) and the shipped policy are installed in PREFIX/share/seqwall (rules/ in the \
            source tree); the daemon logs to the journal (journalctl -u seqwall). The rule \
            language is in seqwall.rules(5).
            """,
        version: "seqwall \(BuildVersion.description)",
        subcommands: [Run.self, Rules.self, Reload.self, Conntrack.self, TableCommand.self, Stats.self, SyncCommand.self, ReplayCapture.self]
    )

    /// Exit 0 on success and 1 on any error, with one line on stderr (seqwall(8), EXIT STATUS);
    /// help and version still exit 0.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }
            let message = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            FileHandle.standardError.write(Data("seqwall: \(message)\n".utf8))
            Foundation.exit(1)
        }
    }
}

/// `--control PATH`, shared by every command that talks to the daemon.
struct ControlOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "The daemon's control socket (default: $SEQWALL_CONTROL, else \(ControlLimits.defaultSocketPath)).",
        valueName: "path"))
    var control: String?

    var path: String { ControlClient.resolvePath(control) }

    /// Sends a request and turns a refusal into exit status 1 with the daemon's message.
    func send(_ request: ControlRequest, onConnection: (ConnectionRecord) -> Void = { _ in },
              onWatch: (WatchLine) -> Void = { _ in }) throws -> ControlReply {
        let reply: ControlReply
        do {
            reply = try ControlClient(path: path).send(request, onConnection: onConnection, onWatch: onWatch)
        } catch {
            throw CommandFailure(error.description)
        }
        guard reply.ok else { throw CommandFailure(reply.error ?? "seqwall refused the request") }
        return reply
    }
}

/// A one-line error on stderr and exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension ParsableCommand {
    static func fail(_ error: Error) -> Never {
        FileHandle.standardError.write(Data("seqwall: \(error)\n".utf8))
        Foundation.exit(1)
    }
}

// MARK: run

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the firewall in the foreground on one or more NFQUEUE queues.",
        discussion: """
            Logs go to stderr. SIGHUP reloads the rule files; SIGTERM or SIGINT stops cleanly \
            and releases the queues. Load a diversion to send packets to the queue: \
            `seqwall-divert start host` (or gateway), or rules/host.nft, rules/host.iptables \
            and their gateway twins by hand.
            """
    )

    @Option(name: .long, help: ArgumentHelp("The rule file to enforce.", valueName: "file"))
    var rules: String

    @Option(name: .long, parsing: .unconditionalSingleValue,
            help: ArgumentHelp("An NFQUEUE queue number to bind (repeatable; default 0).", valueName: "n"),
            transform: NumberArgument.parser(0...UInt16.max))
    var queue: [UInt16] = []

    @Option(name: .customLong("synproxy-queue"), parsing: .unconditionalSingleValue, help: ArgumentHelp(
        "A queue the diversion sends the synproxy rules' ports to, both directions (repeatable; bound too if not a --queue): only these copy whole packets and proxy; the other queues copy headers only (default: every queue copies whole packets when the rules have synproxy).",
        valueName: "n"), transform: NumberArgument.parser(0...UInt16.max))
    var synproxyQueue: [UInt16] = []

    @OptionGroup var control: ControlOption

    @Option(name: .customLong("state-file"), help: ArgumentHelp(
        "Where to keep the connection table across restarts: written at exit and every --state-interval, read at start.",
        valueName: "path"))
    var stateFile: String?

    @Option(name: .customLong("state-interval"), parsing: .unconditional, help: ArgumentHelp(
        "Seconds between snapshots of the table to --state-file (0: only at exit).", valueName: "seconds"),
        transform: NumberArgument.parser(0...UInt32.max))
    var stateInterval: UInt32 = 10

    @Option(name: .customLong("queue-length"), parsing: .unconditional,
            help: "Packets the kernel may hold for each queue.", transform: NumberArgument.parser(0...UInt32.max))
    var queueLength: UInt32 = 4096

    @Option(name: .customLong("copy-range"), parsing: .unconditional,
            help: "Bytes of each packet copied to seqwall (headers only are needed).",
            transform: NumberArgument.parser(0...UInt32.max))
    var copyRange: UInt32 = 256

    @Flag(name: .customLong("fail-open"), help: "When a queue is full, let the kernel accept packets instead of dropping them.")
    var failOpen = false

    @Option(name: .customLong("realtime-priority"), parsing: .unconditional, help: ArgumentHelp(
        "Run each queue's worker thread under SCHED_FIFO at this priority (1-99; default: the normal scheduler).",
        valueName: "n"), transform: NumberArgument.parser(Int32.min...Int32.max))
    var realtimePriority: Int32?

    /// swift-log's levels, least severe first.
    static let logLevels = Logger.Level.allCases.map(\.rawValue)

    @Option(name: .customLong("log-level"), help: ArgumentHelp(
        "One of \(Run.logLevels.joined(separator: ", ")).", valueName: "level"))
    var logLevel: String = "info"

    @Option(name: .long, help: ArgumentHelp(
        "Serve Prometheus metrics at http://ADDRESS:PORT/metrics (e.g. 127.0.0.1:9100 or [::1]:9100).",
        valueName: "address:port"))
    var metrics: String?

    @Option(name: .customLong("idle-warning"), help: ArgumentHelp(
        "Seconds a queue may go without a packet before seqwall checks the nft and iptables rulesets for a rule that sends to it, and warns when there is none (0: never; a queue no rule sends to is also warned about at the start).",
        valueName: "seconds"))
    var idleWarning: UInt32 = 60

    @Option(name: .customLong("sync-listen"), help: ArgumentHelp(
        "Take the state sync's messages from the peer at ADDRESS:PORT (numeric, as --metrics; docs/ha.md).",
        valueName: "address:port"))
    var syncListen: String?

    @Option(name: .customLong("sync-peer"), help: ArgumentHelp(
        "Send the state sync's messages to the peer's --sync-listen ADDRESS:PORT.", valueName: "address:port"))
    var syncPeer: String?

    @Option(name: .customLong("sync-key"), help: ArgumentHelp(
        "The sync's pre-shared key: 32 bytes, raw or as 64 hex digits, mode 600 (head -c32 /dev/urandom > FILE).",
        valueName: "file"))
    var syncKey: String?

    /// The three `--sync-*` options checked: all or none.
    private func syncOptions() throws -> SyncOptions? {
        let given = [syncListen, syncPeer, syncKey].compactMap { $0 }
        guard !given.isEmpty else { return nil }
        guard let syncListen, let syncPeer, let syncKey else {
            throw ValidationError("--sync-listen, --sync-peer and --sync-key go together")
        }
        func parse(_ option: String, _ text: String) throws -> MetricsAddress {
            switch MetricsAddress.parse(text) {
            case .success(let address): return address
            case .failure(let error): throw ValidationError("\(option): \(error)")
            }
        }
        let listen = try parse("--sync-listen", syncListen), peer = try parse("--sync-peer", syncPeer)
        guard listen.address.isIPv4 == peer.address.isIPv4 else {
            throw ValidationError("--sync-listen and --sync-peer must be of one address family")
        }
        return SyncOptions(listen: listen, peer: peer, keyPath: syncKey)
    }

    /// `--metrics` checked; nil when not given.
    private func metricsAddress() throws -> MetricsAddress? {
        guard let metrics else { return nil }
        switch MetricsAddress.parse(metrics) {
        case .success(let address): return address
        case .failure(let error): throw ValidationError("--metrics: \(error)")
        }
    }

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("unknown log level '\(logLevel)': use one of \(Run.logLevels.joined(separator: ", "))")
        }
        guard copyRange >= 128 && copyRange <= 65535 else {
            throw ValidationError("--copy-range must be between 128 and 65535 (IPv6 and TCP headers need at least 128)")
        }
        if let realtimePriority, !(1...99).contains(realtimePriority) {
            throw ValidationError("--realtime-priority must be between 1 and 99")
        }
        guard queueLength >= 1 else { throw ValidationError("--queue-length must be at least 1") }
        guard Set(queue).count == queue.count else { throw ValidationError("a --queue is given twice") }
        guard Set(synproxyQueue).count == synproxyQueue.count else {
            throw ValidationError("a --synproxy-queue is given twice")
        }
        if let stateFile, stateFile.isEmpty || stateFile.hasSuffix("/") {
            throw ValidationError("--state-file must name a file, not '\(stateFile)'")
        }
        _ = try metricsAddress()
        _ = try syncOptions()
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "seqwall")
        var options = DaemonOptions(rulesPath: rules)
        options.bindQueues(queue, synProxyQueues: synproxyQueue)
        options.controlPath = control.path
        options.settings.queueLength = queueLength
        options.settings.copyRange = copyRange
        options.settings.failOpen = failOpen
        options.settings.realtimePriority = realtimePriority
        options.stateFile = stateFile
        options.stateInterval = stateInterval
        options.metricsAddress = try metricsAddress()
        options.idleWarningSeconds = idleWarning
        options.sync = try syncOptions()
        let status = Daemon(options: options, logger: logger).run()
        if status != 0 { throw ExitCode(status) }
    }
}

// MARK: rules

struct Rules: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work with rule files.",
        subcommands: [Check.self, Show.self]
    )

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a rule file: silent and exit 0 when good, file:line:column errors and exit 1 when not.",
            discussion: "Warnings (file:line:column: warning: ...) go to standard error and leave the exit status 0."
        )

        @Flag(name: .long, help: "Print the rules in canonical form: what the daemon would enforce.")
        var print = false

        @Argument(help: ArgumentHelp("The rule file.", valueName: "file"))
        var file: String

        func run() throws {
            do {
                let (policy, warnings) = try RuleFile.loadWithWarnings(path: file)
                for warning in warnings { FileHandle.standardError.write(Data((warning.description + "\n").utf8)) }
                if print { Swift.print(RuleFile.canonicalText(of: policy), terminator: "") }
            } catch {
                FileHandle.standardError.write(Data((error.description + "\n").utf8))
                throw ExitCode(1)
            }
        }
    }
}

// MARK: reload

struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make the running daemon read its rule files again (the connection table stays)."
    )

    @OptionGroup var control: ControlOption

    func run() throws {
        do {
            let reply = try control.send(ControlRequest(command: .reload))
            if let message = reply.message { print(message) }
        } catch {
            Self.fail(error)
        }
    }
}

// MARK: stats

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show packet, drop and connection counters, per queue and the kernel's own."
    )

    @Option(name: .shortAndLong, help: "text or json.")
    var output: ReportFormat = .text

    @OptionGroup var control: ControlOption

    func run() throws {
        do {
            let reply = try control.send(ControlRequest(command: .stats))
            guard let stats = reply.stats else { throw CommandFailure("seqwall sent no statistics") }
            switch output {
            case .json:
                print(try ReportFormat.prettyJSON(stats))
            default:
                print(Formatters.statsText(stats))
            }
        } catch {
            Self.fail(error)
        }
    }
}
