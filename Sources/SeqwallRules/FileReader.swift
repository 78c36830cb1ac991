#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Which file a path names, whatever path reached it: include loops through `..`, symlinks or
/// hard links are still loops.
struct FileIdentity: Hashable, Sendable {
    let device: UInt64
    let inode: UInt64

    init(_ info: stat) {
        device = UInt64(truncatingIfNeeded: info.st_dev)
        inode = UInt64(truncatingIfNeeded: info.st_ino)
    }
}

/// Reads rule files with plain POSIX calls, so a failure comes back as the system's own words
/// ("No such file or directory", "Permission denied") for the operator to act on.
enum FileReader {
    struct Failure: Error {
        let reason: String
    }

    struct Contents {
        let bytes: [UInt8]
        let identity: FileIdentity
    }

    /// The whole file, refusing anything over `limit` bytes (checked while reading too, since
    /// a pipe or a device has no size to check up front).
    static func read(path: String, limit: Int) -> Result<Contents, Failure> {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return .failure(Failure(reason: systemError(errno))) }
        defer { close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return .failure(Failure(reason: systemError(errno))) }
        if info.st_mode & S_IFMT == S_IFDIR { return .failure(Failure(reason: systemError(EISDIR))) }
        let tooLarge = Failure(reason: "file is larger than \(limit >> 20) MiB")
        if info.st_mode & S_IFMT == S_IFREG, Int(info.st_size) > limit { return .failure(tooLarge) }

        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { buffer in systemRead(descriptor, buffer.baseAddress, buffer.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(Failure(reason: systemError(errno)))
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > limit { return .failure(tooLarge) }
        }
        return .success(Contents(bytes: bytes, identity: FileIdentity(info)))
    }

    /// The identity of an existing file, for text parsed from memory that claims to be that file.
    static func identity(ofPath path: String) -> FileIdentity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileIdentity(info)
    }

    private static func systemError(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "error \(code)" }
        return String(cString: text)
    }
}

/// The C library's read(2); inside `FileReader` the bare name would mean `read(path:limit:)`.
private func systemRead(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
    read(descriptor, buffer, count)
}
