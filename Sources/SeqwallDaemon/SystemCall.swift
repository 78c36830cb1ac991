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
}
