import CNetfilterQueue
#if canImport(Glibc)
import Glibc
#endif

/// Queue settings shared by every bound queue.
public struct QueueSettings: Sendable {
    /// Bytes of each packet copied to us: enough for IPv6 with extension headers and TCP with
    /// options. Payload beyond the headers is never needed.
    public var copyRange: UInt32 = 256
    /// Packets the kernel holds for us before it drops (or, with fail-open, accepts) new ones.
    public var queueLength: UInt32 = 4096
    /// When the queue is full the kernel accepts packets instead of dropping them.
    public var failOpen = false
    /// Socket receive buffer, bytes (SO_RCVBUFFORCE, as root).
    public var receiveBufferBytes: Int32 = 8 * 1024 * 1024
    /// SCHED_FIFO priority (1-99) for each queue's worker thread, or nil for the normal
    /// scheduler (the default). A worker blocks in poll between batches, so a real-time one
    /// takes its CPU only while packets wait; the kernel's RT throttling
    /// (kernel.sched_rt_runtime_us) still leaves other tasks a share.
    public var realtimePriority: Int32?

    public init() {}
}

/// One netlink socket bound to one NFQUEUE queue, through libmnl (as libnetfilter_queue's
/// examples/nf-queue.c does). The wrapper around every netlink system call of the adapter.
final class NetfilterQueueSocket {
    let socket: OpaquePointer
    let portID: UInt32
    let descriptor: Int32
    let queue: UInt16
    private var sequence: UInt32 = 1

    /// Opens a netlink socket and binds it to `queue` with `settings`. Errors say what to do.
    init(queue: UInt16, settings: QueueSettings, scratch: UnsafeMutableRawPointer, scratchSize: Int,
         onPacket: (UnsafePointer<nlmsghdr>) -> Void) throws(SystemError) {
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

        do {
            try request("binding queue \(queue)", scratch: scratch, scratchSize: scratchSize, onPacket: onPacket) {
                seqwall_nfq_put_command($0, queue, UInt8(NFQNL_CFG_CMD_BIND.rawValue), $1)
            }
            let flags = seqwall_nfq_flag_gso() | (settings.failOpen ? seqwall_nfq_flag_fail_open() : 0)
            let mask = seqwall_nfq_flag_gso() | seqwall_nfq_flag_fail_open()
            try request("configuring queue \(queue)", scratch: scratch, scratchSize: scratchSize, onPacket: onPacket) {
                seqwall_nfq_put_parameters($0, queue, settings.copyRange, settings.queueLength, flags, mask, $1)
            }
        } catch {
            mnl_socket_close(socket)
            throw error
        }
    }

    /// Sends a configuration message and waits for its acknowledgment. Packets that arrive
    /// meanwhile go to `onPacket` so none is left without a verdict.
    private func request(_ what: String, scratch: UnsafeMutableRawPointer, scratchSize: Int,
                         onPacket: (UnsafePointer<nlmsghdr>) -> Void,
                         build: (UnsafeMutableRawPointer, UInt32) -> UInt32) throws(SystemError) {
        sequence &+= 1
        let seq = sequence
        let length = build(scratch, seq)
        guard mnl_socket_sendto(socket, scratch, Int(length)) >= 0 else { throw SystemError(what) }
        while true {
            let received = mnl_socket_recvfrom(socket, scratch, scratchSize)
            if received < 0 {
                if errno == EINTR || errno == ENOBUFS { continue }
                throw SystemError(what)
            }
            let result = withoutActuallyEscaping(onPacket) { handler -> Int32 in
                withUnsafePointer(to: handler) { context in
                    mnl_cb_run(scratch, received, seq, portID, { message, data in
                        guard let message, let data else { return MNL_CB_OK }
                        if message.pointee.nlmsg_type == seqwall_nfq_packet_message_type() {
                            data.assumingMemoryBound(to: ((UnsafePointer<nlmsghdr>) -> Void).self).pointee(message)
                        }
                        return MNL_CB_OK
                    }, UnsafeMutableRawPointer(mutating: context))
                }
            }
            if result < 0 {
                let code = errno
                // EPERM is the kernel's answer both to a sender without CAP_NET_ADMIN
                // (nfnetlink_rcv_msg) and to a queue another socket owns (nfqnl_recv_config,
                // which answers EBUSY to a second bind from the owner's own socket).
                if code == EPERM && ProcessCapabilities.hasEffective(ProcessCapabilities.netAdmin) == false {
                    throw SystemError("\(what): seqwall lacks CAP_NET_ADMIN, which binding an NFQUEUE queue needs: run it as root, or with the capability (systemd: AmbientCapabilities=CAP_NET_ADMIN)", code: code)
                }
                if code == EPERM || code == EBUSY || code == EEXIST {
                    let owner = KernelQueueStatistics.owners()[queue].map { " (netlink port \($0))" } ?? ""
                    throw SystemError("\(what): another process (another seqwall?) holds this queue\(owner)", code: code)
                }
                throw SystemError(what, code: code)
            }
            if result == MNL_CB_STOP { return }
        }
    }

    /// Takes the waiting datagrams, up to the batch's capacity, one per slot, in one system
    /// call without waiting: how many, or -errno (EAGAIN when none is waiting; ENOBUFS when the
    /// kernel had to drop messages for us). Netlink hands one queued packet per datagram.
    /// An error met after some datagrams were taken is kept by the kernel for the next call
    /// (net/socket.c, do_recvmmsg: sk_err), so ENOBUFS is never lost.
    @inline(__always)
    func receive(_ batch: ReceiveBatch) -> Int {
        SystemCall.retryingErrno {
            Int(seqwall_recvmmsg(descriptor, batch.messages, UInt32(batch.capacity), Int32(MSG_DONTWAIT)))
        }
    }

    /// Sends `length` bytes of netlink messages at once (a batch of verdicts).
    @inline(__always)
    func send(_ buffer: UnsafeRawPointer, length: Int) -> Int {
        SystemCall.retryingErrno { mnl_socket_sendto(socket, buffer, length) }
    }

    /// Unbinds the queue (best effort) and closes the socket; the kernel forgets the queue.
    func close(scratch: UnsafeMutableRawPointer) {
        sequence &+= 1
        let length = seqwall_nfq_put_command(scratch, queue, UInt8(NFQNL_CFG_CMD_UNBIND.rawValue), sequence)
        _ = mnl_socket_sendto(socket, scratch, Int(length))
        mnl_socket_close(socket)
    }
}
