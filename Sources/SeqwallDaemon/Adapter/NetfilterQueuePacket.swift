import SeqwallCore

/// One queued packet, as NetfilterQueueMessages reads it from an NFQNL_MSG_PACKET message. Its
/// bytes point into the receive buffer, valid until the next receive.
struct NetfilterQueuePacket {
    var queue: UInt16 = 0
    var packetID: UInt32 = 0
    /// ETH_P_IP, ETH_P_IPV6, ...
    var hardwareProtocol: UInt16 = 0
    var hook = PacketHook.other
    /// Interface indexes, 0 when the kernel sent none (no input device on LOCAL_OUT, ...).
    var inputInterface: UInt32 = 0
    var outputInterface: UInt32 = 0
    var mark: UInt32 = 0
    /// The copied bytes (the queue's copy range at most).
    var payload = UnsafeRawBufferPointer(start: nil, count: 0)
    /// NFQA_CAP_LEN, the packet's length on the wire, when the copy was cut short; 0 when the
    /// copy is the whole packet.
    var capturedLength: UInt32 = 0

    /// The packet's length on the wire.
    @inline(__always)
    var wireLength: Int { capturedLength != 0 ? Int(capturedLength) : payload.count }

    /// The packet as the tracker takes it.
    @inline(__always)
    var queued: QueuedPacket { QueuedPacket(bytes: payload, wireLength: wireLength, hook: hook) }
}
