#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call: what was attempted and the errno it gave.
public struct SystemError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let code: Int32

    public init(_ operation: String, code: Int32 = errno) {
        self.operation = operation
        self.code = code
    }

    public var description: String { "\(operation): \(String(cString: strerror(code)))" }
}

/// The packet path's system calls go through these small wrappers (as swift-system does):
/// EINTR is retried in one place.
enum SystemCall {
    /// Retries on EINTR; returns -errno on failure instead of throwing: on the packet path an
    /// error is counted, not thrown.
    @inline(__always)
    static func retryingErrno(_ call: () -> Int) -> Int {
        while true {
            let result = call()
            if result >= 0 { return result }
            if errno == EINTR { continue }
            return -Int(errno)
        }
    }

    /// Monotonic clock in nanoseconds (CLOCK_MONOTONIC: does not jump with the wall clock).
    @inline(__always)
    static func monotonicNanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
    }

    /// Asks for transparent huge pages on a large region of the connection table (the
    /// ConnectionTable's memory advisor, called before the region is first touched). At a
    /// million connections its arrays span some 44,000 4 KiB pages and nearly every lookup
    /// would miss the TLB; on 2 MiB pages they fit in it. Only advice: when the kernel has no
    /// transparent huge pages (EINVAL) or they are off (`never`), the table works on small
    /// pages as before, so the result is not checked.
    static func adviseHugePages(_ start: UnsafeMutableRawPointer, _ length: Int) {
        _ = madvise(start, length, MADV_HUGEPAGE)
    }

    /// Wall-clock time in nanoseconds since the Unix epoch (CLOCK_REALTIME): the only clock
    /// two processes share, for the state file's age.
    static func wallClockNanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return spec.tv_sec < 0 ? 0 : UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
    }

    /// A small text file read whole (a /proc file, whose size stat cannot tell); empty when it
    /// cannot be opened.
    static func readText(_ path: String) -> String {
        guard let file = fopen(path, "r") else { return "" }
        defer { fclose(file) }
        var text = ""
        var buffer = [CChar](repeating: 0, count: 512)
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            text += String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        return text
    }
}
