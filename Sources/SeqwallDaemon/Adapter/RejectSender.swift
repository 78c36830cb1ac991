#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Sends the answers to rejected packets (RejectAnswer) from the firewall's own network
/// namespace, through raw sockets, so that a `reject` works whatever diversion feeds the
/// queue and no verdict needs a mark or a rule of the operator's:
///
/// - IPv4, RST and port unreachable: AF_INET with IPPROTO_RAW, header included (raw(7)); the
///   kernel fills in a zero source address from the route, and the header checksum.
/// - IPv6 RST: AF_INET6 with IPPROTO_RAW and IPV6_HDRINCL, the header as built.
/// - ICMPv6 port unreachable: an ICMPv6 socket, so that the kernel chooses the source when the
///   answer has none (a forwarded datagram: the route's, as icmpv6_send does) and computes the
///   checksum over it (RFC 3542 3.1); a given source goes in an IPV6_PKTINFO message. Its
///   receive side is shut by an ICMP6_FILTER that blocks every type, so it never copies the
///   host's ICMPv6 traffic.
///
/// Every answer leaves through the namespace's routing and its OUTPUT hook, like the one the
/// kernel's REJECT sends. Opening the sockets needs CAP_NET_RAW. One sender per queue worker,
/// touched only by its thread; it allocates its message buffers once.
final class RejectSender: AnswerSender {
    private let ipv4: Int32
    private let ipv6: Int32
    private let icmpv6: Int32
    private let message: UnsafeMutablePointer<msghdr>
    private let vector: UnsafeMutablePointer<iovec>
    private let address4: UnsafeMutablePointer<sockaddr_in>
    private let address6: UnsafeMutablePointer<sockaddr_in6>
    /// One IPV6_PKTINFO control message: a 16-byte cmsghdr, then the 20-byte in6_pktinfo,
    /// padded to 8 bytes (CMSG_SPACE).
    private static let controlLength = 16 + 24
    private let control: UnsafeMutableRawPointer

    private static let on: [UInt8] = withUnsafeBytes(of: Int32(1)) { Array($0) }
    /// ICMP6_FILTER_SETBLOCKALL: every bit set blocks every type.
    private static let blockAll = [UInt8](repeating: 0xFF, count: 32)
    /// IPV6_HDRINCL (linux/in6.h), not in every libc's headers.
    private static let ipv6HeaderIncluded: Int32 = 36
    /// ICMP6_FILTER (netinet/icmp6.h).
    private static let icmp6Filter: Int32 = 1

    init() throws(SystemError) {
        ipv4 = try SystemCall.openRawSocket(family: AF_INET, protocolNumber: Int32(IPPROTO_RAW))
        do {
            ipv6 = try SystemCall.openRawSocket(family: AF_INET6, protocolNumber: Int32(IPPROTO_RAW),
                                                options: [(Int32(IPPROTO_IPV6), RejectSender.ipv6HeaderIncluded, RejectSender.on)])
        } catch {
            close(ipv4)
            throw error
        }
        do {
            icmpv6 = try SystemCall.openRawSocket(family: AF_INET6, protocolNumber: Int32(IPPROTO_ICMPV6),
                                                  options: [(Int32(IPPROTO_ICMPV6), RejectSender.icmp6Filter, RejectSender.blockAll)])
        } catch {
            close(ipv4)
            close(ipv6)
            throw error
        }
        message = .allocate(capacity: 1)
        vector = .allocate(capacity: 1)
        address4 = .allocate(capacity: 1)
        address6 = .allocate(capacity: 1)
        control = .allocate(byteCount: RejectSender.controlLength, alignment: 8)
    }

    deinit {
        close(ipv4)
        close(ipv6)
        close(icmpv6)
        message.deallocate()
        vector.deallocate()
        address4.deallocate()
        address6.deallocate()
        control.deallocate()
    }

    /// Sends one answer as RejectAnswer built it (a whole IP packet of `length` bytes).
    /// `scope` is the interface the refused packet came in on (or went out on), for an IPv6
    /// link-local destination. Returns the bytes sent, or -errno.
    func send(_ packet: UnsafeRawPointer, length: Int, scope: UInt32) -> Int {
        message.initialize(to: msghdr())
        if packet.load(as: UInt8.self) >> 4 == 4 {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            memcpy(&address.sin_addr, packet + 16, 4)
            address4.initialize(to: address)
            vector.initialize(to: iovec(iov_base: UnsafeMutableRawPointer(mutating: packet), iov_len: length))
            message.pointee.msg_name = UnsafeMutableRawPointer(address4)
            message.pointee.msg_namelen = socklen_t(MemoryLayout<sockaddr_in>.size)
            message.pointee.msg_iov = vector
            message.pointee.msg_iovlen = 1
            return SystemCall.sendMessage(ipv4, message)
        }
        var address = sockaddr_in6()
        address.sin6_family = sa_family_t(AF_INET6)
        memcpy(&address.sin6_addr, packet + 24, 16)
        address.sin6_scope_id = scope
        address6.initialize(to: address)
        message.pointee.msg_name = UnsafeMutableRawPointer(address6)
        message.pointee.msg_namelen = socklen_t(MemoryLayout<sockaddr_in6>.size)
        message.pointee.msg_iov = vector
        message.pointee.msg_iovlen = 1
        guard packet.load(fromByteOffset: 6, as: UInt8.self) == UInt8(IPPROTO_ICMPV6) else {
            vector.initialize(to: iovec(iov_base: UnsafeMutableRawPointer(mutating: packet), iov_len: length))
            return SystemCall.sendMessage(ipv6, message)
        }
        // The ICMPv6 socket takes the message without the IPv6 header.
        vector.initialize(to: iovec(iov_base: UnsafeMutableRawPointer(mutating: packet + 40), iov_len: length - 40))
        if packet.load(fromByteOffset: 8, as: UInt64.self) != 0 || packet.load(fromByteOffset: 16, as: UInt64.self) != 0 {
            let header = control.bindMemory(to: cmsghdr.self, capacity: 1)
            header.pointee.cmsg_len = 16 + 20
            header.pointee.cmsg_level = Int32(IPPROTO_IPV6)
            header.pointee.cmsg_type = Int32(IPV6_PKTINFO)
            // struct in6_pktinfo (RFC 3542 6.1): the source address, then interface index 0
            // (the route's).
            (control + 16).copyMemory(from: packet + 8, byteCount: 16)
            (control + 32).storeBytes(of: UInt32(0), as: UInt32.self)
            message.pointee.msg_control = control
            message.pointee.msg_controllen = RejectSender.controlLength
        }
        let sent = SystemCall.sendMessage(icmpv6, message)
        return sent < 0 ? sent : sent + 40
    }
}
