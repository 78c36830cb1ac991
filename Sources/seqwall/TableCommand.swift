import ArgumentParser
import Foundation
import SeqwallControl

extension TableOperation: ExpressibleByArgument {}

/// `seqwall table NAME ...`: pfctl -t NAME -T ... for seqwall's address tables.
struct TableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "table",
        abstract: "Show, change or test an address table of the running daemon, without a reload.",
        discussion: """
            show; add ADDR...; delete ADDR...; flush; replace FILE; test ADDR... \
            Changes reach every queue between packets. A persist table keeps them across reloads \
            and, with --state-file, restarts; any other table goes back to the rule files' entries \
            at the next reload. test exits 0 when every address matches, 1 otherwise (pfctl -T test).
            """
    )

    @Argument(help: "The table's name, as in the rules (without < >).")
    var name: String

    @Argument(help: "show, add, delete, flush, replace or test.")
    var operation: TableOperation

    @Argument(help: "Addresses or networks (add, delete, test; `!ADDR` for an exception), or the file (replace).")
    var values: [String] = []

    @OptionGroup var control: ControlOption

    /// `drop` or `<drop>`, as the rules write it.
    private var bareName: String {
        name.hasPrefix("<") && name.hasSuffix(">") ? String(name.dropFirst().dropLast()) : name
    }

    func validate() throws {
        guard !bareName.isEmpty else { throw ValidationError("a table name is needed") }
        switch operation {
        case .show, .flush:
            guard values.isEmpty else { throw ValidationError("\(operation.rawValue) takes no further arguments") }
        case .add, .delete, .test:
            guard !values.isEmpty else { throw ValidationError("\(operation.rawValue) needs at least one address") }
        case .replace:
            guard values.count == 1 else { throw ValidationError("replace needs exactly one file") }
        }
    }

    func run() throws {
        var request = TableRequest(name: bareName, operation: operation)
        switch operation {
        case .add, .delete, .test:
            request.addresses = values
        case .replace:
            // The daemon reads the file: give it a path that does not depend on our directory.
            let file = values[0]
            request.file = file.hasPrefix("/") ? file : FileManager.default.currentDirectoryPath + "/" + file
        case .show, .flush:
            break
        }
        do {
            let reply = try control.send(ControlRequest(command: .table, table: request))
            switch operation {
            case .show:
                for entry in reply.entries ?? [] { print(entry) }
            case .test:
                print(reply.message ?? "")
                if (reply.count ?? 0) < values.count { Foundation.exit(1) }
            default:
                print(reply.message ?? "")
            }
        } catch {
            Self.fail(error)
        }
    }
}
