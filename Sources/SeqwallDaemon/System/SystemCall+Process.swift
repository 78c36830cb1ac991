#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Signals, child processes, /proc reads and the interface list.
extension SystemCall {
    /// Blocks `signals` in the calling thread (and every thread it starts afterwards).
    static func blockSignals(_ signals: inout sigset_t) {
        _ = traced("pthread_sigmask", "") { pthread_sigmask(SIG_BLOCK, &signals, nil) }
    }

    /// Waits for one of `signals` (blocked) for at most `nanoseconds`, or without end (nil).
    /// Returns the signal, or 0 when the time ran out or the wait was interrupted.
    static func waitForSignal(_ signals: inout sigset_t, nanoseconds: UInt64?) -> Int32 {
        if let nanoseconds {
            var timeout = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
            let received = traced("sigtimedwait", "") { sigtimedwait(&signals, nil, &timeout) }
            return max(received, 0)
        }
        var received: Int32 = 0
        let result = traced("sigwait", "") { sigwait(&signals, &received) }
        return result == 0 ? received : 0
    }

    /// Sends `signal` to one thread of this process.
    static func signalThread(_ thread: pthread_t, _ signal: Int32) {
        _ = traced("pthread_kill", "\(signal)") { pthread_kill(thread, signal) }
    }

    static func ignoreSignal(_ signal: Int32) {
        _ = Glibc.signal(signal, SIG_IGN)
    }

    /// A small text file read whole (a /proc file, whose size stat cannot tell); empty when it
    /// cannot be opened.
    static func readText(_ path: String) -> String {
        let descriptor = retryingErrno { Int(open(path, O_RDONLY | O_CLOEXEC)) }
        guard descriptor >= 0 else { return "" }
        let file = Int32(descriptor)
        defer { close(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { buffer in
                retryingErrno { read(file, buffer.baseAddress, buffer.count) }
            }
            if count <= 0 { break }
            bytes += chunk[0..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The IPv4 broadcast addresses (host order) of this namespace's interfaces
    /// (getifaddrs(3)): each address's broadcast address if it has one, and, as the kernel adds
    /// broadcast routes for them whether or not one was given (fib_add_ifaddr), the first and
    /// last address of each subnet wider than /31. None when the call fails.
    static func ipv4BroadcastAddresses() -> [UInt32] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard traced("getifaddrs", "", { getifaddrs(&list) }) == 0 else { return [] }
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
        let spawned = traced("posix_spawn", executable) { posix_spawn(&pid, executable, &actions, &attributes, argv, environ) }
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
            let ready = poll(&descriptor, Int32(min(1000, (deadline - now) / 1_000_000 + 1)))
            if ready < 0 && errno != EINTR { break }
            guard ready > 0 else { continue }
            let count = chunk.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            output.append(contentsOf: chunk[0..<count])
        }
        if timedOut { _ = traced("kill", "\(pid)") { kill(pid, SIGKILL) } }
        var status: Int32 = 0
        while traced("waitpid", "\(pid)", { waitpid(pid, &status, 0) }) < 0 && errno == EINTR {}
        // WIFEXITED and WEXITSTATUS, which Swift does not import: exited normally with 0.
        guard !timedOut, status & 0x7f == 0, (status >> 8) & 0xff == 0 else { return nil }
        return String(decoding: output, as: UTF8.self)
    }
}
