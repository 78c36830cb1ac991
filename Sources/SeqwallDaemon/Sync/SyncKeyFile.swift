import SeqwallSync
#if canImport(Glibc)
import Glibc
#endif

/// Reads the sync key (`--sync-key`): a regular file, not a link, owned by seqwall's user and
/// readable by no one else (SyncKey says why), small. Every refusal says what to fix.
enum SyncKeyFile {
    struct Problem: Error, CustomStringConvertible {
        let description: String
    }

    static func read(path: String) throws(Problem) -> SyncKey {
        func problem(_ text: String) -> Problem { Problem(description: "sync key \(path) \(text)") }
        let descriptor = SystemCall.retryingErrno { Int(SystemCall.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) }
        if descriptor == -Int(ENOENT) { throw problem("does not exist; make one with: head -c32 /dev/urandom > \(path); chmod 600 \(path)") }
        if descriptor == -Int(ELOOP) { throw problem("is a symbolic link; not following it") }
        guard descriptor >= 0 else { throw problem("cannot be opened: \(SystemError("open", code: Int32(-descriptor)))") }
        let file = Int32(descriptor)
        defer { SystemCall.close(file) }
        var status = stat()
        guard SystemCall.fstat(file, &status) == 0 else { throw problem("\(SystemError("fstat"))") }
        guard status.st_mode & S_IFMT == S_IFREG else { throw problem("is not a regular file") }
        guard status.st_uid == geteuid() else { throw problem("is owned by uid \(status.st_uid), not by seqwall's uid \(geteuid())") }
        guard status.st_size <= 256 else { throw problem("is too large to be a key (\(status.st_size) bytes)") }
        var bytes = [UInt8](repeating: 0, count: 257)
        let count = bytes.withUnsafeMutableBytes { buffer in
            SystemCall.retryingErrno { SystemCall.read(file, buffer.baseAddress!, buffer.count) }
        }
        guard count >= 0 else { throw problem("cannot be read: \(SystemError("read", code: Int32(-count)))") }
        do {
            return try SyncKey(fileContents: Array(bytes.prefix(count)), mode: UInt32(status.st_mode))
        } catch {
            throw problem(error.description)
        }
    }
}
