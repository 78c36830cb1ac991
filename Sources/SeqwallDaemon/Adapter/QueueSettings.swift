/// The settings a queue is bound with: the same for every queue, but for the copy range, GSO
/// and proxying on the queues that carry the `synproxy` rules' ports (Daemon+SynProxy.swift).
public struct QueueSettings: Sendable {
    /// Bytes of each packet copied to seqwall: enough for IPv6 with extension headers and TCP
    /// with options. Payload beyond the headers is never needed.
    public var copyRange: UInt32 = 256
    /// Whether offloaded (GSO) packets are queued whole, unsegmented, with their checksum left
    /// to the device (NFQA_CFG_F_GSO). Without it the kernel segments them and fills in every
    /// checksum before queueing (nfqnl_enqueue_packet, skb_checksum_help), which a packet
    /// seqwall rewrites needs: its checksum is updated for the change (RFC 1624), so it must
    /// be whole to begin with.
    public var offloadsWhole = true
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

    /// Whether this queue's worker proxies the connections of `synproxy` rules. False on the
    /// other queues when `--synproxy-queue` names those that do: their copies are headers only
    /// (ConnectionTracker.proxiesSynProxyRules).
    public var proxiesSynProxyRules = true

    public init() {}

    /// The largest IP packet (its 16-bit length field).
    public static let wholePacket: UInt32 = 65535

    /// These settings for a queue that proxies `synproxy` rules' connections (docs/synproxy.md):
    /// every packet copied whole, as a proxied connection's packets are rewritten and a
    /// verdict's payload becomes the packet, and checksummed and segmented by the kernel before
    /// queueing.
    public func copyingWholePackets() -> QueueSettings {
        var settings = self
        settings.copyRange = QueueSettings.wholePacket
        settings.offloadsWhole = false
        return settings
    }
}
