/// One packet of a batch handed to the tracker at once: its bytes as queued (cut at the copy
/// range), its length on the wire, and the hook it was seen at.
public struct QueuedPacket {
    public var bytes: UnsafeRawBufferPointer
    public var wireLength: Int
    public var hook: PacketHook

    @inline(__always)
    public init(bytes: UnsafeRawBufferPointer, wireLength: Int, hook: PacketHook) {
        self.bytes = bytes
        self.wireLength = wireLength
        self.hook = hook
    }
}

extension ConnectionTracker {
    /// The most packets one `process(batch:verdicts:now:)` call takes (the daemon's receive
    /// batch).
    public static let batchCapacity = 64

    /// Decides up to `batchCapacity` packets: `verdicts[i]` for `packets[i]`, exactly as
    /// `process(_:wireLength:hook:now:)` would decide them one after the other, in order.
    public func process(batch packets: UnsafeBufferPointer<QueuedPacket>, verdicts: UnsafeMutablePointer<Verdict>,
                        now: UInt64) {
        precondition(packets.count <= ConnectionTracker.batchCapacity, "a batch holds at most batchCapacity packets")
        for index in packets.indices {
            let packet = packets[index]
            verdicts[index] = process(packet.bytes, wireLength: packet.wireLength, hook: packet.hook, now: now)
        }
    }
}
