/// An ICMP or ICMPv6 error (RFC 792, RFC 4443 2.4) and the packet it quotes.
public struct ICMPError: Sendable, Equatable {
    /// The error's own addresses: from the router or host that sent it, to the quoted packet's
    /// sender (if it is genuine).
    public var source: IPAddress
    public var destination: IPAddress
    public var type: UInt8
    public var code: UInt8
    /// The flow key of the quoted packet, in the direction that packet was sent: the reverse of
    /// the error's own direction.
    public var quoted: FlowKey
    /// The sequence number of a quoted TCP segment (within the 8 bytes of transport header
    /// every error carries, RFC 792); 0 for other protocols.
    public var quotedSequence: UInt32
    public var wireLength: Int

    public init(source: IPAddress, destination: IPAddress, type: UInt8, code: UInt8, quoted: FlowKey,
                quotedSequence: UInt32 = 0, wireLength: Int = 0) {
        self.source = source
        self.destination = destination
        self.type = type
        self.code = code
        self.quoted = quoted
        self.quotedSequence = quotedSequence
        self.wireLength = wireLength
    }
}
