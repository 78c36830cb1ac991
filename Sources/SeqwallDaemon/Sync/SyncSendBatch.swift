import CNetfilterQueue
#if canImport(Glibc)
import Glibc
#endif

/// A turn's datagrams to the peer in one `sendmmsg` (SyncService): each copied into a slot of
/// its own, with the `seqwall_mmsghdr`/`iovec` arrays that describe them, all allocated once.
/// One system call a turn instead of one a datagram: on a busy master each call's entry and
/// exit (and the preemption that comes with returning to user space) was a good part of the
/// sync thread's time (BENCHMARKS.md, State sync end to end).
final class SyncSendBatch {
    let capacity: Int
    let slotSize: Int
    private let storage: UnsafeMutableRawPointer
    private let messages: UnsafeMutablePointer<seqwall_mmsghdr>
    private let vectors: UnsafeMutablePointer<iovec>
    /// The peer's address, which every message names (the socket is not connected: it
    /// receives from whoever sends, and SyncService tells the peer from the rest).
    private let address: UnsafeMutablePointer<sockaddr_storage>
    private var count = 0

    /// Failed datagrams, one each, since the batch was made.
    private(set) var errors: UInt64 = 0

    init(peer: SocketAddress, capacity: Int = 32, slotSize: Int) {
        self.capacity = capacity
        self.slotSize = slotSize
        storage = .allocate(byteCount: capacity * slotSize, alignment: 64)
        messages = .allocate(capacity: capacity)
        vectors = .allocate(capacity: capacity)
        address = .allocate(capacity: 1)
        address.initialize(to: sockaddr_storage())
        let length = peer.withPointer { pointer, length in
            UnsafeMutableRawPointer(address).copyMemory(from: pointer, byteCount: Int(length))
            return length
        }
        for index in 0..<capacity {
            vectors[index] = iovec(iov_base: storage + index * slotSize, iov_len: 0)
            messages[index] = seqwall_mmsghdr(vector: vectors + index, name: UnsafeMutableRawPointer(address),
                                              nameLength: length)
        }
    }

    deinit {
        storage.deallocate()
        messages.deallocate()
        vectors.deallocate()
        address.deallocate()
    }

    /// Queues `datagram` for `socket`, sending what is queued first when the batch is full.
    /// A datagram that does not go is counted in `errors` and the rest still go (a peer that
    /// is down answers with ICMP unreachable: the protocol's resends and bulks make up for
    /// what did not go).
    func add(_ datagram: UnsafeBufferPointer<UInt8>, on socket: Int32) {
        guard datagram.count <= slotSize else {
            // Never, for a datagram of the protocol (at most 1,500 bytes with the IP and UDP
            // headers, docs/sync-protocol.md): sent alone, in its order.
            flush(on: socket)
            let sent = SystemCall.sendTo(socket, datagram.baseAddress, datagram.count,
                                         UnsafeRawPointer(address).assumingMemoryBound(to: sockaddr.self),
                                         messages[0].msg_hdr.msg_namelen)
            if sent < 0 { errors += 1 }
            return
        }
        if count == capacity { flush(on: socket) }
        if let base = datagram.baseAddress { vectors[count].iov_base.copyMemory(from: base, byteCount: datagram.count) }
        vectors[count].iov_len = datagram.count
        count += 1
    }

    /// Sends what is queued, `capacity` datagrams a call at most.
    func flush(on socket: Int32) {
        var first = 0
        while first < count {
            let sent = SystemCall.sendMultiple(socket, messages + first, count - first)
            if sent > 0 {
                first += sent
            } else {
                // The first of those left did not go: counted, and the rest tried.
                errors += 1
                first += 1
            }
        }
        count = 0
    }
}
