/// The packet and byte counters of a connection, kept by the engine for every accepted packet.
extension Connection {
    /// Counts one accepted packet of `wireLength` bytes going `direction`; a packet in the reply
    /// direction also marks the connection as replied (`[UNREPLIED]` goes).
    /// Forced inline: the packet path that calls it is too large for the optimizer to inline it.
    @inline(__always)
    public mutating func count(_ direction: FlowDirection, wireLength: Int) {
        if direction == .original {
            packetsOriginal &+= 1
            bytesOriginal &+= UInt64(wireLength)
        } else {
            status.insert(.seenReply)
            packetsReply &+= 1
            bytesReply &+= UInt64(wireLength)
        }
    }
}
