/// Where a queue worker's packets come from: the kernel's NFQUEUE socket
/// (NetfilterQueueSocket), or a fake one in tests. The worker calls it once per batch, never
/// per packet, and decodes what it delivers with NetfilterQueueMessages, so a source deals in
/// datagrams of netlink bytes only.
protocol PacketSource: AnyObject {
    /// A descriptor that polls readable while datagrams wait (poll(2), POLLIN).
    var descriptor: Int32 { get }

    /// Takes the waiting datagrams without blocking, one per slot of `batch`, up to its
    /// capacity, filling in each slot's length and flags (MSG_TRUNC for one cut short) as
    /// recvmmsg(2) does. Returns how many, or -errno: -EAGAIN when none waits, -ENOBUFS when
    /// messages were lost (the worker counts it and receives again).
    func receive(into batch: ReceiveBatch) -> Int

    /// Lets go of the queue; no receive follows.
    func close()
}
