import CNetfilterQueue
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The socket calls of the control server, the metrics endpoint and the reject sender.
extension SystemCall {
    static func socket(_ family: Int32, _ type: Int32, _ protocolNumber: Int32) -> Int32 {
        traced("socket", "\(family)") { Glibc.socket(family, type, protocolNumber) }
    }

    static func bind(_ descriptor: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
        traced("bind", "\(descriptor)") { Glibc.bind(descriptor, address, length) }
    }

    static func listen(_ descriptor: Int32, _ backlog: Int32) -> Int32 {
        traced("listen", "\(descriptor)") { Glibc.listen(descriptor, backlog) }
    }

    static func connect(_ descriptor: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
        traced("connect", "\(descriptor)") { Glibc.connect(descriptor, address, length) }
    }

    static func accept(_ descriptor: Int32) -> Int32 {
        traced("accept", "\(descriptor)") { Glibc.accept(descriptor, nil, nil) }
    }

    static func shutdown(_ descriptor: Int32, _ how: Int32) -> Int32 {
        traced("shutdown", "\(descriptor)") { Glibc.shutdown(descriptor, how) }
    }

    static func send(_ descriptor: Int32, _ buffer: UnsafeRawPointer?, _ count: Int, _ flags: Int32) -> Int {
        traced("send", "\(descriptor)") { Glibc.send(descriptor, buffer, count, flags) }
    }

    static func recv(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int, _ flags: Int32) -> Int {
        traced("recv", "\(descriptor)") { Glibc.recv(descriptor, buffer, count, flags) }
    }

    /// setsockopt(2) with `value`'s bytes.
    @discardableResult
    static func setOption<Value>(_ descriptor: Int32, _ level: Int32, _ name: Int32, _ value: Value) -> Int32 {
        var value = value
        return traced("setsockopt", "\(descriptor)") {
            Glibc.setsockopt(descriptor, level, name, &value, socklen_t(MemoryLayout<Value>.size))
        }
    }

    /// A raw socket (the answers to rejected packets, RejectSender), closed on exec; needs
    /// CAP_NET_RAW. Each option is a (level, name, value bytes) set before it is returned.
    static func openRawSocket(family: Int32, protocolNumber: Int32,
                              options: [(level: Int32, name: Int32, value: [UInt8])] = []) throws(SystemError) -> Int32 {
        let descriptor = socket(family, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), protocolNumber)
        guard descriptor >= 0 else { throw SystemError("socket(\(family == AF_INET ? "AF_INET" : "AF_INET6"), SOCK_RAW, \(protocolNumber))") }
        for option in options {
            let result = option.value.withUnsafeBytes { bytes in
                traced("setsockopt", "\(descriptor)") {
                    Glibc.setsockopt(descriptor, option.level, option.name, bytes.baseAddress, socklen_t(bytes.count))
                }
            }
            if result < 0 {
                let error = SystemError("setsockopt(\(option.level), \(option.name)) on a raw socket")
                close(descriptor)
                throw error
            }
        }
        return descriptor
    }

    /// sendmsg(2) without blocking (MSG_DONTWAIT): bytes sent, or -errno. On the packet path
    /// (a reject's answer), so it calls the kernel directly, outside the mocking seam.
    @inline(__always)
    static func sendMessage(_ descriptor: Int32, _ message: UnsafePointer<msghdr>) -> Int {
        retryingErrno { sendmsg(descriptor, message, Int32(MSG_DONTWAIT)) }
    }

    /// Binds `descriptor` (`bind` calls `SystemCall.bind` with the caller's address) and
    /// listens with `backlog`. On failure the descriptor is closed and the error names `what`,
    /// e.g. "the control socket /run/seqwall/control.sock".
    static func bindAndListen(_ descriptor: Int32, _ what: String, backlog: Int32,
                              bind: () -> Int32) throws(SystemError) {
        guard bind() == 0 else {
            let error = SystemError("binding \(what)")
            close(descriptor)
            throw error
        }
        guard listen(descriptor, backlog) == 0 else {
            let error = SystemError("listening on \(what)")
            close(descriptor)
            throw error
        }
    }
}

/// The state sync's UDP socket (SyncService).
extension SystemCall {
    static func sendTo(_ descriptor: Int32, _ buffer: UnsafeRawPointer?, _ count: Int,
                       _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int {
        traced("sendto", "\(descriptor)") { Glibc.sendto(descriptor, buffer, count, Int32(MSG_DONTWAIT), address, length) }
    }

    /// The datagrams `messages` describe, in one call (sendmmsg(2)): how many went, or -1 when
    /// the first did not.
    static func sendMultiple(_ descriptor: Int32, _ messages: UnsafeMutablePointer<seqwall_mmsghdr>, _ count: Int) -> Int {
        traced("sendmmsg", "\(descriptor)") {
            Int(seqwall_sendmmsg(descriptor, messages, UInt32(count), Int32(MSG_DONTWAIT)))
        }
    }

    static func receiveFrom(_ descriptor: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int,
                            _ address: UnsafeMutablePointer<sockaddr>, _ length: UnsafeMutablePointer<socklen_t>) -> Int {
        traced("recvfrom", "\(descriptor)") { Glibc.recvfrom(descriptor, buffer, count, Int32(MSG_DONTWAIT), address, length) }
    }
}
