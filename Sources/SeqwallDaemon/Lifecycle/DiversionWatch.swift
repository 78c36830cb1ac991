import Foundation
import Logging
import SeqwallTelemetry
#if canImport(Glibc)
import Glibc
#endif

/// Notices queues nothing is sent to. Without a diversion (rules/host.iptables, seqwall-divert)
/// the daemon runs, binds its queues and answers `stats` with `seen 0`, as if it protected the
/// host. So at the start, and while a queue stays without packets for `idle`
/// (docs/operations.md, "What the daemon says about itself"), it reads the firewall's rulesets
/// (`nft list ruleset`, `iptables-save`, `ip6tables-save`, and the -legacy ones where
/// installed) for rules that queue to it; a queue none of them names gets a warning in the
/// log, at growing intervals, and in `stats`. With none of those commands there, it can only
/// say that no packet came.
///
/// Owned by the main thread; reads the workers' counters through their mailboxes.
final class DiversionWatch {
    /// What the rulesets say about one queue.
    enum Finding: Equatable {
        case diverted
        /// The commands in `looked` ran and none of their rules sends here.
        case notDiverted(looked: [String])
        /// No command could be run.
        case unknown
    }

    static let commands: [[String]] = [["nft", "list", "ruleset"], ["iptables-save"], ["ip6tables-save"],
                                       ["iptables-legacy-save"], ["ip6tables-legacy-save"]]
    static let commandTimeoutSeconds = 5
    /// The longest gap between two log warnings about the same queue.
    static let maximumWarningGap: UInt64 = 3600 * 1_000_000_000

    let queues: [UInt16]
    let idle: UInt64
    private let logger: Logger
    private var seen: [UInt16: UInt64] = [:]
    private var lastPacket: [UInt16: UInt64] = [:]
    private var nextWarning: [UInt16: UInt64] = [:]
    private var warningGap: [UInt16: UInt64] = [:]
    private var lastScan: UInt64 = 0
    private var findings: [UInt16: Finding] = [:]
    /// The standing warnings, for `stats`.
    private(set) var warnings: [String] = []

    /// `idleSeconds`: how long a queue may go without a packet before it is looked into again.
    init(queues: [UInt16], idleSeconds: UInt32, logger: Logger) {
        self.queues = queues
        idle = UInt64(idleSeconds) * 1_000_000_000
        self.logger = logger
    }

    /// How often `check` wants to run.
    var interval: UInt64 { min(idle, 10 * 1_000_000_000) }

    /// At the start: a queue no rule sends to is warned about at once.
    func start(now: UInt64) {
        for queue in queues {
            lastPacket[queue] = now
            seen[queue] = 0
        }
        scan(now: now)
        var standing: [String] = []
        for queue in queues {
            guard case .notDiverted(let looked) = findings[queue] else { continue }
            let text = Self.notDivertedText(queue: queue, looked: looked, quietSeconds: nil)
            logger.warning("\(text)")
            standing.append(text)
            warningGap[queue] = idle
            nextWarning[queue] = now &+ idle
        }
        warnings = standing
    }

    /// `packets`: each queue's packets seen so far. Logs what is due and updates `warnings`.
    func check(packets: [UInt16: UInt64], now: UInt64) {
        var idleQueues: [UInt16] = []
        for queue in queues {
            let count = packets[queue] ?? 0
            if count != seen[queue] {
                seen[queue] = count
                lastPacket[queue] = now
                warningGap[queue] = nil
                nextWarning[queue] = nil
            } else if now &- (lastPacket[queue] ?? now) >= idle {
                idleQueues.append(queue)
            }
        }
        // A quiet queue a rule does send to is normal (a host at night): its rulesets are read
        // again ten times less often than those of a queue without one.
        let diverted = idleQueues.allSatisfy { findings[$0] == .diverted }
        if !idleQueues.isEmpty && now &- lastScan >= (diverted ? 10 * idle : idle) { scan(now: now) }
        var standing: [String] = []
        for queue in idleQueues {
            let text: String
            switch findings[queue] ?? .unknown {
            case .diverted:
                continue
            case .notDiverted(let looked):
                text = Self.notDivertedText(queue: queue, looked: looked,
                                            quietSeconds: seen[queue] == 0 ? nil : (now &- (lastPacket[queue] ?? now)) / 1_000_000_000)
            case .unknown:
                // Without a way to read the rulesets, only a queue that never saw a packet is
                // suspect: a quiet one is normal.
                guard seen[queue] == 0 else { continue }
                text = "queue \(queue): no packet has arrived since the start (\((now &- (lastPacket[queue] ?? now)) / 1_000_000_000) s), "
                    + "and no nft or iptables-save command was found to check for a rule that sends here: is a diversion loaded?"
            }
            standing.append(text)
            if now >= nextWarning[queue] ?? 0 {
                logger.warning("\(text)")
                let gap = min(max(idle, (warningGap[queue] ?? 0) * 2), DiversionWatch.maximumWarningGap)
                warningGap[queue] = gap
                nextWarning[queue] = now &+ gap
            }
        }
        // A queue that was warned about at the start keeps its warning until a packet comes.
        for queue in queues where !idleQueues.contains(queue) && seen[queue] == 0 {
            if case .notDiverted(let looked) = findings[queue] {
                standing.append(Self.notDivertedText(queue: queue, looked: looked, quietSeconds: nil))
            }
        }
        warnings = standing.sorted()
    }

    /// `quietSeconds`: how long since the last packet; nil when none ever came.
    static func notDivertedText(queue: UInt16, looked: [String], quietSeconds: UInt64?) -> String {
        "queue \(queue): no firewall rule sends packets here (looked in: \(looked.joined(separator: ", "))) "
            + (quietSeconds.map { "and none has arrived for \($0) s" } ?? "and none has arrived")
            + ": seqwall decides nothing and protects nothing until a diversion is loaded "
            + "(seqwall-divert start, or rules/host.iptables or rules/gateway.iptables)"
    }

    /// Reads the rulesets and sets `findings`.
    private func scan(now: UInt64) {
        lastScan = now
        var ranges: [ClosedRange<UInt16>] = []
        var looked: [String] = []
        for command in DiversionWatch.commands {
            guard let output = DiversionWatch.run(command) else { continue }
            looked.append(command.joined(separator: " "))
            ranges += command[0] == "nft" ? DiversionRules.nftQueues(output) : DiversionRules.iptablesQueues(output)
        }
        for queue in queues {
            if ranges.contains(where: { $0.contains(queue) }) {
                findings[queue] = .diverted
            } else {
                findings[queue] = looked.isEmpty ? .unknown : .notDiverted(looked: looked)
            }
        }
    }

    /// The command's standard output, or nil when it is not installed, fails or hangs.
    static func run(_ command: [String]) -> String? {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
            + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        guard let executable = directories.lazy.map({ "\($0)/\(command[0])" })
            .first(where: { SystemCall.access($0, X_OK) == 0 }) else { return nil }
        return SystemCall.runCommand(executable, Array(command.dropFirst()), timeoutSeconds: commandTimeoutSeconds)
    }
}
