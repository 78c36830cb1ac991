import SeqwallCore
import SeqwallTelemetry
#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address and port as the socket calls take and give them (sockaddr_in,
/// sockaddr_in6): the metrics listener's and the state sync's.
struct SocketAddress {
    private(set) var storage = sockaddr_storage()

    var length: socklen_t {
        socklen_t(storage.ss_family == sa_family_t(AF_INET) ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
    }

    var family: Int32 { Int32(storage.ss_family) }

    init(_ endpoint: MetricsAddress) {
        withUnsafeMutableBytes(of: &storage) { raw in
            if endpoint.address.isIPv4 {
                let address = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in.self)
                address.pointee.sin_family = sa_family_t(AF_INET)
                address.pointee.sin_port = endpoint.port.bigEndian
                address.pointee.sin_addr.s_addr = endpoint.address.ipv4Value.bigEndian
            } else {
                let address = raw.baseAddress!.assumingMemoryBound(to: sockaddr_in6.self)
                address.pointee.sin6_family = sa_family_t(AF_INET6)
                address.pointee.sin6_port = endpoint.port.bigEndian
                withUnsafeMutableBytes(of: &address.pointee.sin6_addr) { bytes in
                    for index in 0..<8 {
                        bytes[index] = UInt8(truncatingIfNeeded: endpoint.address.high >> UInt64(56 - 8 * index))
                        bytes[index + 8] = UInt8(truncatingIfNeeded: endpoint.address.low >> UInt64(56 - 8 * index))
                    }
                }
            }
        }
    }

    /// What recvfrom wrote, nil for a family other than IPv4 and IPv6.
    init?(received storage: sockaddr_storage) {
        guard storage.ss_family == sa_family_t(AF_INET) || storage.ss_family == sa_family_t(AF_INET6) else { return nil }
        self.storage = storage
    }

    /// The address and port, IPv4 as IPv4 (not mapped).
    var endpoint: MetricsAddress {
        var copy = storage
        return withUnsafeBytes(of: &copy) { raw in
            if storage.ss_family == sa_family_t(AF_INET) {
                let address = raw.load(as: sockaddr_in.self)
                return MetricsAddress(address: IPAddress(ipv4: UInt32(bigEndian: address.sin_addr.s_addr)),
                                      port: UInt16(bigEndian: address.sin_port))
            }
            let address = raw.load(as: sockaddr_in6.self)
            var high: UInt64 = 0, low: UInt64 = 0
            withUnsafeBytes(of: address.sin6_addr) { bytes in
                for index in 0..<8 {
                    high = high << 8 | UInt64(bytes[index])
                    low = low << 8 | UInt64(bytes[index + 8])
                }
            }
            return MetricsAddress(address: IPAddress(high: high, low: low), port: UInt16(bigEndian: address.sin6_port))
        }
    }

    func withPointer<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        var copy = storage
        return withUnsafePointer(to: &copy) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
