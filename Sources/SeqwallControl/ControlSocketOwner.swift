import Foundation

/// Who still listens on a control socket whose file is gone. A listening Unix socket keeps the
/// path it was bound to after the file is removed, and /proc/net/unix still shows it (with
/// flag __SO_ACCEPTCON, 0x10000); the process holding that socket has a descriptor that reads
/// `socket:[INODE]` under /proc/PID/fd. So when connecting finds no file, the CLI can tell
/// "not running" from "running, but its socket file is gone".
public enum ControlSocketOwner {
    public struct Owner: Equatable, Sendable {
        public let pid: Int32
        /// /proc/PID/comm: "seqwall" for the daemon.
        public let command: String

        public init(pid: Int32, command: String) {
            self.pid = pid
            self.command = command
        }
    }

    /// The process listening on a Unix socket bound to `path`, if this process can see it
    /// (another user's descriptors need root).
    public static func find(path: String) -> Owner? {
        guard let table = try? String(contentsOfFile: "/proc/net/unix", encoding: .utf8) else { return nil }
        let inodes = listeningInodes(procNetUnix: table, path: path)
        guard !inodes.isEmpty,
              let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return nil }
        for entry in entries {
            guard let pid = Int32(entry),
                  let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(entry)/fd") else { continue }
            for descriptor in descriptors {
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/fd/\(descriptor)"),
                      let inode = socketInode(link: target), inodes.contains(inode) else { continue }
                let command = (try? String(contentsOfFile: "/proc/\(entry)/comm", encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
                return Owner(pid: pid, command: command)
            }
        }
        return nil
    }

    /// A running `seqwall run` found by its command line (/proc/PID/cmdline), with the control
    /// socket path it was given (`--control`, else its SEQWALL_CONTROL, else the default).
    /// The fallback for what /proc/net/unix cannot show: it lists the sockets of this network
    /// namespace only, and a daemon in another one is still reached through the path.
    public static func runningDaemons() -> [(pid: Int32, control: String)] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        var daemons: [(pid: Int32, control: String)] = []
        for entry in entries {
            guard let pid = Int32(entry), pid != getpid(),
                  let cmdline = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { continue }
            let environment = FileManager.default.contents(atPath: "/proc/\(entry)/environ") ?? Data()
            if let control = daemonControlPath(cmdline: Array(cmdline), environ: Array(environment)) {
                daemons.append((pid, control))
            }
        }
        return daemons.sorted { $0.pid < $1.pid }
    }

    /// The control path of a `seqwall run` command line (NUL-separated, as /proc shows it);
    /// nil when it is not one.
    static func daemonControlPath(cmdline: [UInt8], environ: [UInt8]) -> String? {
        let arguments = cmdline.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        guard arguments.count >= 2, (arguments[0] as NSString).lastPathComponent == "seqwall",
              arguments[1] == "run" else { return nil }
        var control: String?
        for (index, argument) in arguments.enumerated() {
            if argument == "--control", index + 1 < arguments.count {
                control = arguments[index + 1]
            } else if argument.hasPrefix("--control=") {
                control = String(argument.dropFirst("--control=".count))
            }
        }
        if let control, !control.isEmpty { return control }
        for variable in environ.split(separator: 0) {
            let text = String(decoding: variable, as: UTF8.self)
            if text.hasPrefix("SEQWALL_CONTROL="), text.count > "SEQWALL_CONTROL=".count {
                return String(text.dropFirst("SEQWALL_CONTROL=".count))
            }
        }
        return ControlLimits.defaultSocketPath
    }

    /// What the CLI says when nothing answers at `path`: the process still holding the
    /// socket, else a daemon running with this path or another one; nil when none is found.
    public static func explanation(path: String) -> String? {
        if let owner = find(path: path) { return message(path: path, owner: owner) }
        let daemons = runningDaemons()
        if let same = daemons.first(where: { $0.control == path }) {
            return message(path: path, owner: Owner(pid: same.pid, command: "seqwall"))
        }
        guard let other = daemons.first else { return nil }
        return "seqwall is not running on \(path) (nothing listens there), but seqwall (pid \(other.pid)) runs with "
            + "its control socket at \(other.control): use --control \(other.control) (or SEQWALL_CONTROL)"
    }

    /// The inodes of listening sockets bound to `path` in /proc/net/unix's text
    /// (`Num RefCount Protocol Flags Type St Inode Path`).
    static func listeningInodes(procNetUnix text: String, path: String) -> Set<UInt64> {
        var inodes = Set<UInt64>()
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 8, String(fields[7...].joined(separator: " ")) == path,
                  let flags = UInt32(fields[3], radix: 16), flags & 0x10000 != 0,
                  let inode = UInt64(fields[6]) else { continue }
            inodes.insert(inode)
        }
        return inodes
    }

    /// INODE from `socket:[INODE]`.
    static func socketInode(link: String) -> UInt64? {
        guard link.hasPrefix("socket:["), link.hasSuffix("]") else { return nil }
        return UInt64(link.dropFirst("socket:[".count).dropLast())
    }

    /// What the CLI says when nothing answers at `path` but `owner` still holds the socket.
    public static func message(path: String, owner: Owner) -> String {
        let who = owner.command == "seqwall" ? "seqwall (pid \(owner.pid))" : "process \(owner.pid) (\(owner.command))"
        return "\(who) is running but its control socket \(path) is gone; `kill -HUP \(owner.pid)` "
            + "(or `systemctl reload seqwall`) makes it again"
    }
}
