/// Queue settings shared by every bound queue.
public struct QueueSettings: Sendable {
    /// Bytes of each packet copied to seqwall: enough for IPv6 with extension headers and TCP
    /// with options. Payload beyond the headers is never needed.
    public var copyRange: UInt32 = 256
    /// Packets the kernel holds for seqwall before it drops (or, with fail-open, accepts) new
    /// ones.
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
