// CNetfilterQueue's shim includes <sys/socket.h> ahead of Glibc in some build orders, and then
// owns the MSG_* constants: importing it makes them visible whichever module was built first.
import CNetfilterQueue
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The daemon's system calls, wrapped as swift-system wraps its `system_*` functions: each
/// keeps the C convention (-1 and errno) so that callers read as the manual pages do, and goes
/// through `traced`, the seam where SystemCallMock records it and can make it fail. EINTR is
/// retried in one place (`retryingErrno`).
///
/// The per-packet calls stay outside the seam: NetfilterQueueSocket's recv and send and
/// `sendMessage` (a reject's answer) call the kernel directly, so the packet path pays nothing
/// for it. The clocks are not system calls on Linux (vDSO) and are not wrapped either.
enum SystemCall {
    /// Runs `call` unless an installed mock fails it: then errno is the mock's and the result -1.
    @inline(__always)
    static func traced<Result: FixedWidthInteger>(_ name: String, _ argument: @autoclosure () -> String,
                                                  _ call: () -> Result) -> Result {
        if SystemCallMock.isInstalled, let code = SystemCallMock.intercept(name, argument()) {
            errno = code
            return -1
        }
        return call()
    }

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

    /// Wall-clock time in nanoseconds since the Unix epoch (CLOCK_REALTIME): the only clock
    /// two processes share, for the state file's age.
    static func wallClockNanoseconds() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return spec.tv_sec < 0 ? 0 : UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
    }

    /// Sleeps until the wall clock reaches `nanoseconds` (CLOCK_REALTIME, TIMER_ABSTIME),
    /// through signals.
    static func sleepUntilWallClock(_ nanoseconds: UInt64) {
        var deadline = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        while clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &deadline, nil) == EINTR {}
    }

    // MARK: Files

    static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
        traced("open", path) { Glibc.open(path, flags, mode) }
    }

    static func openat(_ directory: Int32, _ name: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
        traced("openat", name) { Glibc.openat(directory, name, flags, mode) }
    }

    static func read(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int {
        traced("read", "\(descriptor)") { Glibc.read(descriptor, buffer, count) }
    }

    static func write(_ descriptor: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
        traced("write", "\(descriptor)") { Glibc.write(descriptor, buffer, count) }
    }

    static func fsync(_ descriptor: Int32) -> Int32 {
        traced("fsync", "\(descriptor)") { Glibc.fsync(descriptor) }
    }

    static func fchmod(_ descriptor: Int32, _ mode: mode_t) -> Int32 {
        traced("fchmod", "\(descriptor)") { Glibc.fchmod(descriptor, mode) }
    }

    static func fstat(_ descriptor: Int32, _ status: inout stat) -> Int32 {
        traced("fstat", "\(descriptor)") { Glibc.fstat(descriptor, &status) }
    }

    static func lstat(_ path: String, _ status: inout stat) -> Int32 {
        traced("lstat", path) { Glibc.lstat(path, &status) }
    }

    static func access(_ path: String, _ mode: Int32) -> Int32 {
        traced("access", path) { Glibc.access(path, mode) }
    }

    static func mkdir(_ path: String, _ mode: mode_t) -> Int32 {
        traced("mkdir", path) { Glibc.mkdir(path, mode) }
    }

    static func unlink(_ path: String) -> Int32 {
        traced("unlink", path) { Glibc.unlink(path) }
    }

    static func unlinkat(_ directory: Int32, _ name: String, _ flags: Int32) -> Int32 {
        traced("unlinkat", name) { Glibc.unlinkat(directory, name, flags) }
    }

    /// `argument` of the trace: the new name, the one a test picks out.
    static func renameat(_ fromDirectory: Int32, _ from: String, _ toDirectory: Int32, _ to: String) -> Int32 {
        traced("renameat", to) { Glibc.renameat(fromDirectory, from, toDirectory, to) }
    }

    @discardableResult
    static func close(_ descriptor: Int32) -> Int32 {
        traced("close", "\(descriptor)") { Glibc.close(descriptor) }
    }

    static func pipe(_ ends: inout [Int32]) -> Int32 {
        traced("pipe", "") { Glibc.pipe(&ends) }
    }

    static func fcntl(_ descriptor: Int32, _ command: Int32, _ value: Int32) -> Int32 {
        traced("fcntl", "\(descriptor)") { Glibc.fcntl(descriptor, command, value) }
    }

    static func fcntl(_ descriptor: Int32, _ command: Int32) -> Int32 {
        traced("fcntl", "\(descriptor)") { Glibc.fcntl(descriptor, command) }
    }

    static func poll(_ descriptors: inout [pollfd], _ milliseconds: Int32) -> Int32 {
        traced("poll", "\(descriptors.count)") { Glibc.poll(&descriptors, nfds_t(descriptors.count), milliseconds) }
    }

    static func poll(_ descriptor: inout pollfd, _ milliseconds: Int32) -> Int32 {
        traced("poll", "\(descriptor.fd)") { Glibc.poll(&descriptor, 1, milliseconds) }
    }
}
