import ArgumentParser
import Foundation
import SeqwallControl

extension Rules {
    /// `seqwall rules show`: what the running daemon enforces, as pfctl -vsr shows pf's rules.
    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the ruleset the running daemon enforces, with per-rule counters and every limit and timeout in force.",
            discussion: """
                Each rule is numbered (@N, in evaluation order) and followed by the new \
                connections it passed, blocked and rejected and when it last matched, summed \
                over the queues; the defaults have their own counters. Limits and timeouts are \
                all shown, the kernel's defaults included. A reload keeps the counters of the \
                rules it keeps; a new or changed rule starts from zero.
                """
        )

        @Option(name: .shortAndLong, help: "text or json.")
        var output: ReportFormat = .text

        @OptionGroup var control: ControlOption

        func run() throws {
            do {
                let reply = try control.send(ControlRequest(command: .rules))
                guard let rules = reply.rules else {
                    throw CommandFailure("seqwall sent no ruleset (is it older than this command?)")
                }
                switch output {
                case .json:
                    print(try ReportFormat.prettyJSON(rules))
                default:
                    print(Formatters.rulesText(rules))
                }
            } catch {
                Self.fail(error)
            }
        }
    }
}
