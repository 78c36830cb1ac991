import ArgumentParser
import Foundation
import SeqwallControl
import SeqwallCore

struct Conntrack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect and manage the connection table, as conntrack(8) does for the kernel's.",
        subcommands: [List.self, Get.self, Watch.self, Count.self, Delete.self, Flush.self]
    )
}

/// The filters of list, count, delete and watch (conntrack's own option names).
struct FilterOptions: ParsableArguments {
    @Option(name: .customShort("p"), help: ArgumentHelp("Protocol: tcp, udp, icmp or icmpv6.", valueName: "proto"))
    var proto: String?

    @Option(name: .long, help: ArgumentHelp("A state such as ESTABLISHED or syn-sent.", valueName: "state"))
    var state: String?

    @Option(name: .customShort("s"), help: ArgumentHelp("Original source address or network.", valueName: "addr"))
    var source: String?

    @Option(name: .customShort("d"), help: ArgumentHelp("Original destination address or network.", valueName: "addr"))
    var destination: String?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Original source port.", valueName: "n"),
            transform: NumberArgument.parser(0...UInt16.max))
    var sport: UInt16?

    @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Original destination port.", valueName: "n"),
            transform: NumberArgument.parser(0...UInt16.max))
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

        @Option(name: .shortAndLong, help: "line (the conntrack -L layout), extended (conntrack -L -o extended with counters: packets and bytes per direction) or json.")
        var output: ConnectionFormat = .line

        @OptionGroup var control: ControlOption

        func run() throws {
            do {
                var records: [ConnectionRecord] = []
                let reply = try control.send(ControlRequest(command: .list, filter: filters.filter)) { record in
                    if output == .json { records.append(record) } else { print(Formatters.conntrackLine(record, extended: output == .extended)) }
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

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the connection with one exact tuple (conntrack -G); exit 1 when there is none.",
            discussion: """
                Give the protocol (tcp or udp), both addresses and both ports. The tuple may be \
                the original direction's or the reply's, as with conntrack -G.
                """
        )

        @Option(name: .customShort("p"), help: ArgumentHelp("Protocol: tcp or udp.", valueName: "proto"))
        var proto: String

        @Option(name: .customShort("s"), help: ArgumentHelp("Source address.", valueName: "addr"))
        var source: String

        @Option(name: .customShort("d"), help: ArgumentHelp("Destination address.", valueName: "addr"))
        var destination: String

        @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Source port.", valueName: "n"),
                transform: NumberArgument.parser(0...UInt16.max))
        var sport: UInt16

        @Option(name: .long, parsing: .unconditional, help: ArgumentHelp("Destination port.", valueName: "n"),
                transform: NumberArgument.parser(0...UInt16.max))
        var dport: UInt16

        @Option(name: .shortAndLong, help: "line, extended or json.")
        var output: ConnectionFormat = .line

        @OptionGroup var control: ControlOption

        /// The tuple as filters: the original direction's, then the reply direction's.
        var filters: [ConnectionFilter] {
            [ConnectionFilter(proto: proto, source: source, destination: destination, sourcePort: sport, destinationPort: dport),
             ConnectionFilter(proto: proto, source: destination, destination: source, sourcePort: dport, destinationPort: sport)]
        }

        func validate() throws {
            guard ["tcp", "udp", "6", "17"].contains(proto.lowercased()) else {
                throw ValidationError("get looks up tcp and udp tuples; for '\(proto)' use `seqwall conntrack list -p \(proto)` with filters")
            }
            guard let from = IPAddress(source), let to = IPAddress(destination) else {
                throw ValidationError("get needs one address for -s and one for -d (no networks): '\(IPAddress(source) == nil ? source : destination)'")
            }
            guard from.isIPv4 == to.isIPv4 else { throw ValidationError("-s and -d are of different families; no connection has both") }
        }

        func run() throws {
            do {
                var found: [ConnectionRecord] = []
                for filter in filters where found.isEmpty {
                    _ = try control.send(ControlRequest(command: .list, filter: filter)) { found.append($0) }
                }
                guard !found.isEmpty else {
                    throw CommandFailure("no connection has this tuple")
                }
                if output == .json {
                    print(try ControlJSON.line(found[0]))
                } else {
                    print(Formatters.conntrackLine(found[0], extended: output == .extended))
                }
            } catch {
                Self.fail(error)
            }
        }
    }

    struct Watch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show connections as they are created, change state and end (conntrack -E).",
            discussion: """
                Runs until interrupted. -e selects events (NEW, UPDATE, DESTROY, ALL; \
                comma-separated, as conntrack -E -e), and the filters of list select \
                connections (-p tcp). A watcher that cannot keep up loses events (counted on \
                stderr) rather than slowing the firewall.
                """
        )

        @Option(name: .customShort("e"), help: ArgumentHelp("Events to show: NEW, UPDATE, DESTROY or ALL, comma-separated (default ALL).", valueName: "events"))
        var events: String?

        @OptionGroup var filters: FilterOptions

        @Option(name: .shortAndLong, help: "line (the conntrack -E layout), extended (with the family and counters) or json (one object a line).")
        var output: ConnectionFormat = .line

        @OptionGroup var control: ControlOption

        var selection: EventSelection {
            get throws { try events.map { list throws(FilterError) in try EventSelection(list: list) } ?? .all }
        }

        func validate() throws {
            do { _ = try selection } catch { throw ValidationError("-e: \(error)") }
        }

        func run() throws {
            do {
                let selection = try self.selection
                let request = ControlRequest(command: .watch, filter: filters.isEmpty ? nil : filters.filter,
                                             events: events == nil ? nil : selection.names)
                let reply = try control.send(request) { _ in } onWatch: { line in
                    // The daemon selects the events already; a daemon older than -e sends them all.
                    if let event = line.watch, selection.contains(event.event) {
                        // Unbuffered: each event shows the moment it happens, even into a pipe.
                        let text = output == .json ? (try? ControlJSON.line(event)) ?? ""
                            : Formatters.eventLine(event, extended: output == .extended)
                        FileHandle.standardOutput.write(Data((text + "\n").utf8))
                    }
                    if let lost = line.lost {
                        FileHandle.standardError.write(Data("seqwall: \(Counted.text(lost, "event")) lost: this watcher fell behind\n".utf8))
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
                // As conntrack -D: deleting nothing is a failure a script can see.
                if count == 0 { throw CommandFailure("no connection matches the filters") }
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
                print("seqwall: connection tracking table has been emptied (\(Counted.text(reply.count ?? 0, "entry", "entries"))).")
                if let message = reply.message { print("seqwall: \(message).") }
            } catch {
                Self.fail(error)
            }
        }
    }
}
