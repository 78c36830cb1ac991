/// The segments the SYN proxy writes (SynProxySegment) while deciding packets: the cookie
/// SYN-ACKs to clients, the SYNs and ACKs to servers, the window updates and RSTs to clients,
/// as whole IP packets, for the owner to send once the batch's verdicts are out and then
/// reset. Preallocated at a fixed capacity, so that writing one allocates nothing; a segment
/// that does not fit is not written, and the tracker counts it lost (its peer retransmits, and
/// the handshake is tried again).
public final class SynProxyOutbox {
    /// Two per packet of a full batch: no packet makes more than two (the server's SYN-ACK).
    public static let defaultCapacity = 2 * ConnectionTracker.batchCapacity

    public let capacity: Int
    public private(set) var count = 0
    private let storage: UnsafeMutableRawPointer
    private let lengths: UnsafeMutablePointer<Int>

    public init(capacity: Int = SynProxyOutbox.defaultCapacity) {
        self.capacity = max(1, capacity)
        storage = .allocate(byteCount: self.capacity * SynProxySegment.capacity, alignment: 16)
        lengths = .allocate(capacity: self.capacity)
    }

    deinit {
        storage.deallocate()
        lengths.deallocate()
    }

    /// Writes `segment` as the next packet to send; false when the outbox is full.
    func append(_ segment: TCPSegment) -> Bool {
        guard count < capacity else { return false }
        lengths[count] = SynProxySegment.write(segment, into: storage + count * SynProxySegment.capacity)
        count += 1
        return true
    }

    /// Packet `index`, a whole IP packet.
    public subscript(index: Int) -> UnsafeRawBufferPointer {
        precondition(index >= 0 && index < count, "outbox index out of range")
        return UnsafeRawBufferPointer(start: storage + index * SynProxySegment.capacity, count: lengths[index])
    }

    /// Forgets the packets (they were sent).
    public func reset() { count = 0 }
}
