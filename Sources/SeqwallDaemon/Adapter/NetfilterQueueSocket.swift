import CNetfilterQueue
#if canImport(Glibc)
import Glibc
#endif

/// One netlink socket bound to one NFQUEUE queue, through libmnl's socket calls (as
/// libnetfilter_queue's examples/nf-queue.c opens one): the kernel's side of a queue worker's
/// PacketSource and VerdictSink. The messages themselves are NetfilterQueueMessages'.
final class NetfilterQueueSocket: PacketSource, VerdictSink {
    private let socket: OpaquePointer
    let portID: UInt32
    let descriptor: Int32
    let queue: UInt16
    private var sequence: UInt32 = 1

    /// Opens a netlink socket and binds it to `queue` with `settings`; `scratch` holds the
    /// acknowledgments. A packet that arrives meanwhile goes to `onPacket`, decoded, so none is
    /// left without a verdict; its bytes are valid only during the call. Errors say what to do.
    init(queue: UInt16, settings: QueueSettings, scratch: ReceiveBatch,
         onPacket: (NetfilterQueuePacket) -> Void) throws(SystemError) {
        guard let socket = mnl_socket_open(NETLINK_NETFILTER) else {
            throw SystemError("opening a netfilter netlink socket (is nfnetlink_queue available? are you root?)")
        }
        self.socket = socket
        self.queue = queue
        guard mnl_socket_bind(socket, 0, pid_t(MNL_SOCKET_AUTOPID)) >= 0 else {
            let error = SystemError("binding the netlink socket")
            mnl_socket_close(socket)
            throw error
        }
        portID = mnl_socket_get_portid(socket)
        descriptor = mnl_socket_get_fd(socket)

        var size = settings.receiveBufferBytes
        if setsockopt(descriptor, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) < 0 {
            _ = setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }

        let buffer = UnsafeMutableRawBufferPointer(start: scratch.storage, count: scratch.storageSize)
        do {
            try request("binding queue \(queue)", scratch: buffer, onPacket: onPacket) {
                NetfilterQueueMessages.putCommand($0, queue: queue, bind: true, sequence: $1)
            }
            let mask = NetfilterQueueMessages.gsoFlag | NetfilterQueueMessages.failOpenFlag
            let flags = (settings.offloadsWhole ? NetfilterQueueMessages.gsoFlag : 0)
                | (settings.failOpen ? NetfilterQueueMessages.failOpenFlag : 0)
            try request("configuring queue \(queue)", scratch: buffer, onPacket: onPacket) {
                NetfilterQueueMessages.putParameters($0, queue: queue, copyRange: settings.copyRange,
                                                     queueLength: settings.queueLength, flags: flags, mask: mask,
                                                     sequence: $1)
            }
        } catch {
            mnl_socket_close(socket)
            throw error
        }
    }

    /// Sends a configuration message and waits for its acknowledgment (an NLMSG_ERROR that
    /// answers its sequence number). Packets that arrive meanwhile go to `onPacket`.
    private func request(_ what: String, scratch: UnsafeMutableRawBufferPointer,
                         onPacket: (NetfilterQueuePacket) -> Void,
                         build: (UnsafeMutableRawPointer, UInt32) -> Int) throws(SystemError) {
        sequence &+= 1
        let seq = sequence
        let length = build(scratch.baseAddress!, seq)
        guard mnl_socket_sendto(socket, scratch.baseAddress!, length) >= 0 else { throw SystemError(what) }
        while true {
            let received = mnl_socket_recvfrom(socket, scratch.baseAddress!, scratch.count)
            if received < 0 {
                if errno == EINTR || errno == ENOBUFS { continue }
                throw SystemError(what)
            }
            var walk = NetfilterQueueMessages.Walk(UnsafeRawBufferPointer(rebasing: scratch[0..<received]))
            while let message = walk.next() {
                if NetfilterQueueMessages.type(of: message) == UInt16(NLMSG_ERROR) {
                    guard NetfilterQueueMessages.answeredSequence(of: message) == seq else { continue }
                    let code = -NetfilterQueueMessages.errorCode(of: message)
                    if code == 0 { return }
                    throw refusal(what, code: code)
                }
                if case .packet(let packet) = NetfilterQueueMessages.decode(message) { onPacket(packet) }
            }
        }
    }

    /// The kernel's refusal of a configuration request, saying what to do about it.
    private func refusal(_ what: String, code: Int32) -> SystemError {
        // EPERM is the kernel's answer both to a sender without CAP_NET_ADMIN
        // (nfnetlink_rcv_msg) and to a queue another socket owns (nfqnl_recv_config, which
        // answers EBUSY to a second bind from the owner's own socket).
        if code == EPERM && ProcessCapabilities.hasEffective(ProcessCapabilities.netAdmin) == false {
            return SystemError("\(what): seqwall lacks CAP_NET_ADMIN, which binding an NFQUEUE queue needs: run it as root, or with the capability (systemd: AmbientCapabilities=CAP_NET_ADMIN)", code: code)
        }
        if code == EPERM || code == EBUSY || code == EEXIST {
            let owner = KernelQueueStatistics.owners()[queue].map { " (netlink port \($0))" } ?? ""
            return SystemError("\(what): another process (another seqwall?) holds this queue\(owner)", code: code)
        }
        return SystemError(what, code: code)
    }

    /// Netlink hands one queued packet per datagram: one recvmmsg takes a batch of them. An
    /// error met after some datagrams were taken is kept by the kernel for the next call
    /// (net/socket.c, do_recvmmsg: sk_err), so ENOBUFS is never lost.
    func receive(into batch: ReceiveBatch) -> Int {
        SystemCall.retryingErrno {
            Int(seqwall_recvmmsg(descriptor, batch.messages, UInt32(batch.capacity), Int32(MSG_DONTWAIT)))
        }
    }

    func send(_ messages: UnsafeRawPointer, length: Int) -> Int {
        SystemCall.retryingErrno { mnl_socket_sendto(socket, messages, length) }
    }

    /// Unbinds the queue (best effort) and closes the socket; the kernel forgets the queue.
    func close() {
        sequence &+= 1
        withUnsafeTemporaryAllocation(byteCount: NetfilterQueueMessages.configurationCapacity, alignment: 4) { buffer in
            let length = NetfilterQueueMessages.putCommand(buffer.baseAddress!, queue: queue, bind: false, sequence: sequence)
            _ = mnl_socket_sendto(socket, buffer.baseAddress!, length)
        }
        mnl_socket_close(socket)
    }
}
