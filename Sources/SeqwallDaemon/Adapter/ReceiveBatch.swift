import CNetfilterQueue
#if canImport(Glibc)
import Glibc
#endif

/// Buffers for one `recvmmsg` on a netlink socket: `capacity` datagrams, each into its own
/// fixed-size slot, with the `seqwall_mmsghdr`/`iovec` arrays that describe them. Allocated once per
/// worker; a receive only rewrites what the kernel fills in, so the packet path allocates
/// nothing.
///
/// A slot holds one queued packet's message: the copied bytes (the queue's copy range) plus the
/// netlink header, nfgenmsg and the attributes the kernel adds around them
/// (nfqnl_build_packet_message: packet header, mark, timestamp, interface indexes, hardware
/// address, cap length, skb info, ... together well under 300 bytes), with a wide margin. A
/// message that still does not fit comes back with MSG_TRUNC and is counted as malformed, never
/// read in part.
final class ReceiveBatch {
    /// Room beside the copied packet bytes for the netlink and nfqueue headers and attributes.
    static let messageOverhead = 1024

    let capacity: Int
    /// Bytes per slot: the copy range plus `messageOverhead`, rounded up to a cache line.
    let slotSize: Int
    /// All slots, one after the other; also the scratch buffer for configuration requests.
    let storage: UnsafeMutableRawPointer
    let messages: UnsafeMutablePointer<seqwall_mmsghdr>
    private let vectors: UnsafeMutablePointer<iovec>

    init(capacity: Int, copyRange: Int) {
        self.capacity = capacity
        slotSize = (copyRange + ReceiveBatch.messageOverhead + 63) & ~63
        storage = .allocate(byteCount: capacity * slotSize, alignment: 64)
        messages = .allocate(capacity: capacity)
        vectors = .allocate(capacity: capacity)
        for index in 0..<capacity {
            vectors[index] = iovec(iov_base: storage + index * slotSize, iov_len: slotSize)
            messages[index] = seqwall_mmsghdr(vector: vectors + index)
        }
    }

    deinit {
        storage.deallocate()
        messages.deallocate()
        vectors.deallocate()
    }

    /// All slots as one buffer (the configuration requests' scratch, used before any batch).
    var storageSize: Int { capacity * slotSize }

    /// Slot `index`, whatever it holds.
    @inline(__always)
    func slot(_ index: Int) -> UnsafeMutableRawPointer { storage + index * slotSize }

    /// Datagram `index` of the last receive, or nil when the kernel had to cut it (MSG_TRUNC:
    /// it did not fit its slot).
    @inline(__always)
    func message(_ index: Int) -> UnsafeRawBufferPointer? {
        let message = messages[index]
        if message.msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0 { return nil }
        return UnsafeRawBufferPointer(start: slot(index), count: min(Int(message.msg_len), slotSize))
    }

    /// Datagram `index` of the last receive as far as its slot holds it, cut short or not.
    @inline(__always)
    func truncatedMessage(_ index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: slot(index), count: min(Int(messages[index].msg_len), slotSize))
    }
}
