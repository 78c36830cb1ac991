#if canImport(Glibc)
import Glibc
#endif

/// A file whose contents open the firewall or speak for it (the state file, the sync key),
/// read only if it is really ours: opened with O_NOFOLLOW (a symlink is refused, ELOOP) and
/// O_NONBLOCK (a FIFO planted there cannot hang the start), then checked with fstat on the open
/// descriptor: a regular file, owned by seqwall's user, writable by no one else, not larger
/// than the caller's bound.
enum OwnedFile {
    struct Problem: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The bytes and the mode of the file at `path`, or nil when there is none. `bound` says
    /// what `maximumBytes` is, for the message of a file over it.
    static func read(path: String, maximumBytes: Int, bound: String) throws(Problem) -> (bytes: [UInt8], mode: mode_t)? {
        let descriptor = SystemCall.retryingErrno {
            Int(SystemCall.open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY))
        }
        if descriptor == -Int(ENOENT) { return nil }
        if descriptor == -Int(ELOOP) { throw Problem("is a symbolic link; not following it") }
        guard descriptor >= 0 else { throw Problem("cannot open: \(SystemError("open", code: Int32(-descriptor)))") }
        let file = Int32(descriptor)
        defer { SystemCall.close(file) }

        var status = stat()
        guard SystemCall.fstat(file, &status) == 0 else { throw Problem("\(SystemError("fstat"))") }
        guard status.st_mode & S_IFMT == S_IFREG else { throw Problem("is not a regular file") }
        guard status.st_uid == geteuid() else { throw Problem("is owned by uid \(status.st_uid), not by seqwall's uid \(geteuid())") }
        guard status.st_mode & (S_IWGRP | S_IWOTH) == 0 else {
            throw Problem("is writable by group or others (mode \(String(status.st_mode & 0o777, radix: 8)))")
        }
        let size = Int(status.st_size)
        guard size <= maximumBytes else { throw Problem("is too large: \(size) bytes, at most \(maximumBytes) \(bound)") }

        // One byte more than fstat said, to notice a file that grows while it is read.
        var bytes = [UInt8](repeating: 0, count: size + 1)
        var filled = 0
        while filled < bytes.count {
            let count = bytes.withUnsafeMutableBytes { buffer in
                SystemCall.retryingErrno { SystemCall.read(file, buffer.baseAddress! + filled, buffer.count - filled) }
            }
            guard count >= 0 else { throw Problem("cannot read: \(SystemError("read", code: Int32(-count)))") }
            if count == 0 { break }
            filled += count
        }
        guard filled <= size else { throw Problem("changed while it was read") }
        bytes.removeLast(bytes.count - filled)
        return (bytes, status.st_mode)
    }
}
