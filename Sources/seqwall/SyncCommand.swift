import ArgumentParser
import Foundation
import SeqwallControl

/// `seqwall sync status`: the state sync with the peer (docs/ha.md).
struct SyncCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "The state sync between two seqwall nodes.",
        subcommands: [Status.self]
    )

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the sync with the peer: in sync or not, lag, messages, resends, refused messages, bulk progress.",
            discussion: """
                With --check, print nothing and exit 0 only when this node is in sync (a bulk from the \
                peer's current start has completed and nothing was lost since), 1 otherwise or when \
                seqwall does not answer: a health check for keepalived's track_script (docs/ha.md).
                """
        )

        @Flag(name: .long, help: "Exit 0 when in sync, 1 when not; print nothing.")
        var check = false

        @Option(name: .shortAndLong, help: "text or json.")
        var output: ReportFormat = .text

        @OptionGroup var control: ControlOption

        func run() throws {
            let status: SyncStatus
            do {
                let reply = try control.send(ControlRequest(command: .sync))
                guard let sync = reply.sync else { throw CommandFailure("seqwall sent no sync status") }
                status = sync
            } catch {
                if check { throw ExitCode(1) }
                Self.fail(error)
            }
            if check { throw ExitCode(status.in_sync ? 0 : 1) }
            switch output {
            case .json: print(try ReportFormat.prettyJSON(status))
            default: print(Formatters.syncText(status))
            }
        }
    }
}
