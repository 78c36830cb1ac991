/// One parsed TCP segment with its IP endpoints: a value, no references, ready for the tracker.
public struct TCPSegment: Sendable, Equatable {
    public var source: IPAddress
    public var destination: IPAddress
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var sequence: UInt32
    public var acknowledgment: UInt32
    public var flags: TCPFlags
    /// The raw (unscaled) window field.
    public var window: UInt16
    /// Bytes of TCP payload (from the IP length fields, not from what was captured).
    public var payloadLength: Int
    public var options: TCPOptions
    /// The packet's length on the wire, for byte counters.
    public var wireLength: Int

    public init(source: IPAddress, destination: IPAddress, sourcePort: UInt16, destinationPort: UInt16,
                sequence: UInt32, acknowledgment: UInt32, flags: TCPFlags, window: UInt16,
                payloadLength: Int = 0, options: TCPOptions = TCPOptions(), wireLength: Int = 0) {
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.sequence = sequence
        self.acknowledgment = acknowledgment
        self.flags = flags
        self.window = window
        self.payloadLength = payloadLength
        self.options = options
        self.wireLength = wireLength
    }

    /// An all-zero segment, for the parser to write into (PacketParser.parse(_:wireLength:tcp:)).
    init() {
        self.init(source: IPAddress(high: 0, low: 0), destination: IPAddress(high: 0, low: 0), sourcePort: 0,
                  destinationPort: 0, sequence: 0, acknowledgment: 0, flags: [], window: 0)
    }

    /// Sequence number just past this segment: SYN and FIN each take one (RFC 9293 3.4).
    public var end: UInt32 {
        var length = UInt32(truncatingIfNeeded: payloadLength)
        if flags.contains(.syn) { length &+= 1 }
        if flags.contains(.fin) { length &+= 1 }
        return sequence &+ length
    }
}
