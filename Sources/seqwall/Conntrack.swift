import ArgumentParser
import Foundation
import SeqwallControl
import SeqwallCore

struct Conntrack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect and manage the connection table, as conntrack(8) does for the kernel's.",
        subcommands: [List.self, Watch.self, Count.self, Delete.self, Flush.self]
    )
}

/// The filters of list, count and delete (conntrack's own option names).
struct FilterOptions: ParsableArguments {
    @Option(name: .customShort("p"), help: ArgumentHelp("Protocol: tcp, udp, icmp or icmpv6.", valueName: "proto"))
    var proto: String?

    @Option(name: .long, help: ArgumentHelp("A state such as ESTABLISHED or syn-sent.", valueName: "state"))
    var state: String?

    @Option(name: .customShort("s"), help: ArgumentHelp("Original source address or network.", valueName: "addr"))
    var source: String?

    @Option(name: .customShort("d"), help: ArgumentHelp("Original destination address or network.", valueName: "addr"))
    var destination: String?

    @Option(name: .long, help: ArgumentHelp("Original source port.", valueName: "n"))
    var sport: UInt16?

    @Option(name: .long, help: ArgumentHelp("Original destination port.", valueName: "n"))
    var dport: UInt16?

    @Option(name: .customShort("f"), help: ArgumentHelp("Address family: ipv4 or ipv6.", valueName: "family"))
    var family: String?

    var filter: ConnectionFilter {
        ConnectionFilter(proto: proto, state: state, source: source, destination: destination,
                         sourcePort: sport, destinationPort: dport, family: family)
    }

    var isEmpty: Bool {
        proto == nil && state == nil && source == nil && destination == nil && sport == nil && dport == nil && family == nil
    }

    func validate() throws {
        // Check here too, so a typo fails before the daemon is asked.
        do { _ = try filter.compiled() } catch { throw ValidationError(error.description) }
    }
}

extension Conntrack {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List connections (conntrack -L).")

        @OptionGroup var filters: FilterOptions

        @Option(name: .shortAndLong, help: "line (the conntrack -L layout) or json.")
        var output: OutputFormat = .line

        @OptionGroup var control: ControlOption

        func validate() throws {
            guard output != .text else { throw ValidationError("list prints line or json") }
        }

        func run() throws {
            do {
                var records: [ConnectionRecord] = []
                let reply = try control.send(ControlRequest(command: .list, filter: filters.filter)) { record in
                    if output == .line { print(Formatters.conntrackLine(record)) } else { records.append(record) }
                }
                if output == .json {
                    print(try ControlJSON.line(records))
                }
                FileHandle.standardError.write(Data((Formatters.listSummary(count: reply.count ?? records.count) + "\n").utf8))
            } catch {
                Self.fail(error)
            }
        }
    }

    struct Watch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show connections as they are created, change state and end (conntrack -E).",
            discussion: "Runs until interrupted. A watcher that cannot keep up loses events (counted on stderr) rather than slowing the firewall."
        )

        @Option(name: .shortAndLong, help: "line (the conntrack -E layout) or json (one object a line).")
        var output: OutputFormat = .line

        @OptionGroup var control: ControlOption

        func validate() throws {
            guard output != .text else { throw ValidationError("watch prints line or json") }
        }

        func run() throws {
            do {
                let reply = try control.send(ControlRequest(command: .watch)) { _ in } onWatch: { line in
                    if let event = line.watch {
                        // Unbuffered: each event shows the moment it happens, even into a pipe.
                        let text = output == .json ? (try? ControlJSON.line(event)) ?? "" : Formatters.eventLine(event)
                        FileHandle.standardOutput.write(Data((text + "\n").utf8))
                    }
                    if let lost = line.lost {
                        FileHandle.standardError.write(Data("seqwall: \(lost) events lost: this watcher fell behind\n".utf8))
                    }
                }
                if let message = reply.message { FileHandle.standardError.write(Data("seqwall: \(message)\n".utf8)) }
            } catch {
                Self.fail(error)
            }
        }
    }

    struct Count: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Count connections (conntrack -C).")

        @OptionGroup var filters: FilterOptions
        @OptionGroup var control: ControlOption

        func run() throws {
            do {
                print(try control.send(ControlRequest(command: .count, filter: filters.filter)).count ?? 0)
            } catch {
                Self.fail(error)
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete the connections the filters select (conntrack -D); at least one filter is required."
        )

        @OptionGroup var filters: FilterOptions
        @OptionGroup var control: ControlOption

        func validate() throws {
            guard !filters.isEmpty else {
                throw ValidationError("give at least one filter (use `seqwall conntrack flush` to delete everything)")
            }
        }

        func run() throws {
            do {
                let reply = try control.send(ControlRequest(command: .delete, filter: filters.filter)) { record in
                    print(Formatters.conntrackLine(record))
                }
                let count = reply.count ?? 0
                print("seqwall: \(count) flow entr\(count == 1 ? "y has" : "ies have") been deleted.")
            } catch {
                Self.fail(error)
            }
        }
    }

    struct Flush: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete every connection (conntrack -F).")

        @OptionGroup var control: ControlOption

        func run() throws {
            do {
                let reply = try control.send(ControlRequest(command: .flush))
                print("seqwall: connection tracking table has been emptied (\(reply.count ?? 0) entries).")
                if let message = reply.message { print("seqwall: \(message).") }
            } catch {
                Self.fail(error)
            }
        }
    }
}
