/// Where a queue worker's verdicts go: the kernel's NFQUEUE socket (NetfilterQueueSocket), or a
/// fake one in tests. The worker encodes a batch's verdict messages with NetfilterQueueMessages
/// one after the other in one buffer and hands them over in one call per batch.
protocol VerdictSink: AnyObject {
    /// Sends `length` bytes of netlink messages as one datagram. Returns the bytes sent, or
    /// -errno (ENOBUFS, EPERM, ...): the worker counts the failure as a send error, and the
    /// batch's packets wait in the kernel's queue until it is unbound.
    func send(_ messages: UnsafeRawPointer, length: Int) -> Int
}
