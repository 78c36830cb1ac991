import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A filesystem Unix socket address, shared by the client and the daemon's listener.
public enum UnixSocketAddress {
    /// `sockaddr_un` for `path`; nil when the path does not fit in sun_path.
    public static func make(_ path: String) -> sockaddr_un? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        guard path.utf8.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
            raw[path.utf8.count] = 0
        }
        return address
    }

    /// Calls connect(2) or bind(2) style functions with the address as a `sockaddr`.
    public static func with<Result>(_ address: sockaddr_un,
                                    _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        var address = address
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
