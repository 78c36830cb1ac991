import CNetfilterQueue
#if canImport(Glibc)
import Glibc
#endif

/// A `recvmmsg`/`sendmmsg` message of one buffer (ReceiveBatch, SyncSendBatch): its iovec
/// `vector`, and for a datagram socket that is not connected the address it goes to.
extension seqwall_mmsghdr {
    init(vector: UnsafeMutablePointer<iovec>, name: UnsafeMutableRawPointer? = nil, nameLength: socklen_t = 0) {
        var header = msghdr()
        header.msg_name = name
        header.msg_namelen = nameLength
        header.msg_iov = vector
        header.msg_iovlen = 1
        self.init(msg_hdr: header, msg_len: 0)
    }
}
