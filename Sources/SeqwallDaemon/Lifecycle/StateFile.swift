#if canImport(Glibc)
import Glibc
#endif

/// The state file on disk (`seqwall run --state-file PATH`); the format is StateSnapshot's.
///
/// Writing is atomic and never follows a planted link: a new file beside the target, created
/// with O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600, written and fsync'ed, renamed over the target
/// (rename(2) replaces a symlink at the target itself, never what it points to), and the
/// directory fsync'ed so the rename survives a power cut. A crash at any point leaves either
/// the old file or the new one.
///
/// Reading is OwnedFile's: a regular file, not a link, owned by us and writable by no one else
/// (whoever can write it can add connections to the table, that is, open the firewall), and
/// not larger than the tables.
enum StateFile {
    /// What reading found.
    enum ReadResult {
        case missing
        case contents([UInt8])
    }

    struct Problem: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func read(path: String, maximumBytes: Int) throws(Problem) -> ReadResult {
        do throws(OwnedFile.Problem) {
            guard let file = try OwnedFile.read(path: path, maximumBytes: maximumBytes, bound: "fit the table")
            else { return .missing }
            return .contents(file.bytes)
        } catch {
            throw Problem(error.description)
        }
    }

    static func write(_ bytes: [UInt8], to path: String) throws(Problem) {
        let (directory, name) = split(path)
        let directoryDescriptor = SystemCall.retryingErrno {
            Int(SystemCall.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC))
        }
        guard directoryDescriptor >= 0 else {
            throw Problem("cannot open directory \(directory): \(SystemError("open", code: Int32(-directoryDescriptor)))")
        }
        let directoryFile = Int32(directoryDescriptor)
        defer { SystemCall.close(directoryFile) }

        // A fresh name each try; O_EXCL fails on anything already there, a planted link too.
        var temporary = ""
        var descriptor = -Int(EEXIST)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<8 where descriptor == -Int(EEXIST) {
            temporary = ".\(name).\(getpid()).\(String(generator.next() as UInt64, radix: 36)).tmp"
            descriptor = SystemCall.retryingErrno {
                Int(SystemCall.openat(directoryFile, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600))
            }
        }
        guard descriptor >= 0 else {
            throw Problem("cannot create a file in \(directory): \(SystemError("open", code: Int32(-descriptor)))")
        }
        let file = Int32(descriptor)
        var renamed = false
        defer {
            if !renamed { _ = SystemCall.unlinkat(directoryFile, temporary, 0) }
        }
        do throws(Problem) {
            // The umask may only take bits away; make it exactly 0600 whatever it is.
            guard SystemCall.fchmod(file, 0o600) == 0 else { throw Problem("\(SystemError("fchmod"))") }
            var written = 0
            while written < bytes.count {
                let count = bytes.withUnsafeBytes { buffer in
                    SystemCall.retryingErrno { SystemCall.write(file, buffer.baseAddress! + written, buffer.count - written) }
                }
                guard count > 0 else { throw Problem("cannot write: \(SystemError("write", code: Int32(-count)))") }
                written += count
            }
            guard SystemCall.retryingErrno({ Int(SystemCall.fsync(file)) }) == 0 else { throw Problem("\(SystemError("fsync"))") }
        } catch {
            SystemCall.close(file)
            throw error
        }
        guard SystemCall.close(file) == 0 else { throw Problem("\(SystemError("close"))") }
        guard SystemCall.renameat(directoryFile, temporary, directoryFile, name) == 0 else {
            throw Problem("cannot rename into place: \(SystemError("rename"))")
        }
        renamed = true
        guard SystemCall.retryingErrno({ Int(SystemCall.fsync(directoryFile)) }) == 0 else {
            throw Problem("\(SystemError("fsync of \(directory)"))")
        }
    }

    /// The directory and the last component of `path` ("state" is "./state").
    static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }
}
