import ArgumentParser
import Foundation
import SeqwallCore
import SeqwallReplay
import SeqwallRules

struct ReplayCapture: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Run a capture (pcap or pcapng) through the tracker and the rules, offline.",
        discussion: """
            Each packet is judged as `seqwall run` would judge it, on the capture's own clock \
            (so timeouts replay as they happened): one line per packet with its verdict and \
            reason (ACCEPT and the connection's state, DROP and why, REJECT rule, or SKIP for a \
            frame the firewall would never see, such as ARP), then the connection table left \
            at the end (conntrack -L layout), then the counters.

            Gateway mode is the default: a packet is `in` when it goes toward an `inside` \
            network. For a capture taken on a host in host mode, give its addresses with \
            --host: packets to one of them are INPUT (`in`), packets from one are OUTPUT \
            (`out`), and packets neither to nor from one are skipped. In gateway mode, the \
            copies a Linux cooked capture (tcpdump -i any) shows leaving the gateway are \
            skipped, since FORWARD sees each packet once; capture with -Q in to leave them out.

            Link layers: Ethernet (with VLAN tags), raw IP, Linux cooked (SLL, SLL2) and BSD \
            loopback. A frame the snap length cut inside its IP or TCP headers is skipped \
            (snap-truncated); one cut only in its payload is judged in full.
            """
    )

    @Argument(help: ArgumentHelp("The capture file (\"-\" reads standard input).", valueName: "file.pcap"))
    var file: String

    @Option(name: .long, help: ArgumentHelp("The rule file to judge the packets by.", valueName: "file"))
    var rules: String

    @Option(name: .long, help: ArgumentHelp(
        "Host mode: an address of the capturing host (repeatable). Packets to it are INPUT, from it OUTPUT.",
        valueName: "addr"))
    var host: [String] = []

    @Option(name: .shortAndLong, help: "text or json.")
    var output: ReportFormat = .text

    func validate() throws {
        for address in host where IPAddress(address) == nil {
            throw ValidationError("bad --host address '\(address)'")
        }
    }

    func run() throws {
        let policy: Policy
        do {
            policy = try RuleFile.load(path: rules)
        } catch {
            // The first problem as `rules check` prints it, file:line:column first; `rules
            // check` lists them all.
            let first = error.errors.first.map(\.description) ?? error.description
            FileHandle.standardError.write(Data((first + "\n").utf8))
            throw ExitCode(1)
        }
        let damage: Error?
        do {
            damage = try Replay.run(
                path: file, policy: policy, hosts: host.compactMap { IPAddress($0) },
                format: output == .json ? .json : .text) { print($0) }
        } catch {
            Self.fail(error)
        }
        if let damage { Self.fail(damage) }
    }
}
