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
