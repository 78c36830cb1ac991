/// One packet of a batch handed to the tracker at once: its bytes as queued (cut at the copy
/// range), its length on the wire, and the hook it was seen at.
public struct QueuedPacket {
    public var bytes: UnsafeRawBufferPointer
    public var wireLength: Int
    public var hook: PacketHook

    public init(bytes: UnsafeRawBufferPointer, wireLength: Int, hook: PacketHook) {
        self.bytes = bytes
        self.wireLength = wireLength
        self.hook = hook
    }
}
