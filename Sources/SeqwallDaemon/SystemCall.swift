// CNetfilterQueue's shim includes <sys/socket.h> ahead of Glibc in some build orders, and then
// owns the MSG_* constants: importing it makes them visible whichever module was built first.
import CNetfilterQueue
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

    /// A raw socket (the answers to rejected packets, RejectSender), closed on exec; needs
    /// CAP_NET_RAW. Each option is a (level, name, value bytes) set before it is returned.
    static func openRawSocket(family: Int32, protocolNumber: Int32,
                              options: [(level: Int32, name: Int32, value: [UInt8])] = []) throws(SystemError) -> Int32 {
        let descriptor = socket(family, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), protocolNumber)
        guard descriptor >= 0 else { throw SystemError("socket(\(family == AF_INET ? "AF_INET" : "AF_INET6"), SOCK_RAW, \(protocolNumber))") }
        for option in options {
            let result = option.value.withUnsafeBytes {
                setsockopt(descriptor, option.level, option.name, $0.baseAddress, socklen_t($0.count))
            }
            if result < 0 {
                let error = SystemError("setsockopt(\(option.level), \(option.name)) on a raw socket")
                close(descriptor)
                throw error
            }
        }
        return descriptor
    }

    /// The IPv4 broadcast addresses (host order) of this namespace's interfaces
    /// (getifaddrs(3)): each address's broadcast address if it has one, and, as the kernel adds
    /// broadcast routes for them whether or not one was given (fib_add_ifaddr), the first and
    /// last address of each subnet wider than /31. None when the call fails.
    static func ipv4BroadcastAddresses() -> [UInt32] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return [] }
        defer { freeifaddrs(list) }
        // sockaddr_in: the address after the 2-byte family and port, in network order.
        func value(_ address: UnsafeMutablePointer<sockaddr>) -> UInt32 {
            UInt32(bigEndian: UnsafeRawPointer(address).load(fromByteOffset: 4, as: UInt32.self))
        }
        var addresses: [UInt32] = []
        var entry = list
        while let current = entry {
            defer { entry = current.pointee.ifa_next }
            guard let address = current.pointee.ifa_addr, address.pointee.sa_family == sa_family_t(AF_INET) else {
                continue
            }
            let own = value(address)
            if let netmask = current.pointee.ifa_netmask {
                let mask = value(netmask)
                if mask.nonzeroBitCount < 31 {
                    addresses.append(own & mask)
                    addresses.append(own | ~mask)
                }
            }
            // Without a broadcast address (`ip addr add` without `brd`) glibc puts the
            // address itself in this field (IFA_ADDRESS, read as a peer's): no broadcast.
            if current.pointee.ifa_flags & UInt32(IFF_BROADCAST) != 0,
               let broadcast = current.pointee.ifa_ifu.ifu_broadaddr, value(broadcast) != own {
                addresses.append(value(broadcast))
            }
        }
        return addresses
    }

    /// sendmsg(2) without blocking (MSG_DONTWAIT): bytes sent, or -errno.
    @inline(__always)
    static func sendMessage(_ descriptor: Int32, _ message: UnsafePointer<msghdr>) -> Int {
        retryingErrno { sendmsg(descriptor, message, Int32(MSG_DONTWAIT)) }
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

    /// Runs `executable` with `arguments` (no shell), its standard input and error on
    /// /dev/null, and returns its standard output when it exits 0 within `timeoutSeconds`; nil
    /// otherwise (it is killed when it takes longer). posix_spawn, not Foundation's Process:
    /// the child starts with an empty signal mask and default handlers, whatever this
    /// process blocks, and nothing here needs a run loop.
    static func runCommand(_ executable: String, _ arguments: [String], timeoutSeconds: Int) -> String? {
        var pipeEnds: [Int32] = [0, 0]
        guard pipe(&pipeEnds) == 0 else { return nil }
        let (readEnd, writeEnd) = (pipeEnds[0], pipeEnds[1])
        // Nothing else in the daemon starts processes, so no other child can inherit them.
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var defaults = sigset_t()
        sigfillset(&defaults)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        close(writeEnd)
        defer { close(readEnd) }
        guard spawned == 0 else { return nil }

        var output = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        let deadline = monotonicNanoseconds() &+ UInt64(timeoutSeconds) * 1_000_000_000
        var timedOut = false
        while true {
            let now = monotonicNanoseconds()
            guard now < deadline else { timedOut = true; break }
            var descriptor = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(min(1000, (deadline - now) / 1_000_000 + 1)))
            if ready < 0 && errno != EINTR { break }
            guard ready > 0 else { continue }
            let count = chunk.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            output.append(contentsOf: chunk[0..<count])
        }
        if timedOut { kill(pid, SIGKILL) }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED and WEXITSTATUS, which Swift does not import: exited normally with 0.
        guard !timedOut, status & 0x7f == 0, (status >> 8) & 0xff == 0 else { return nil }
        return String(decoding: output, as: UTF8.self)
    }
}
