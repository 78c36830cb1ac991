import SeqwallCore
import SeqwallTestSupport

/// One TCP segment of a workload: the headers only, since the NFQUEUE copy range (256 bytes)
/// cuts the payload off; `payloadLength` goes into the IP length field as on the wire.
struct SegmentSpec {
    /// The most bytes `packet()` returns: an IPv6 header and a TCP header with SYN options.
    static let maximumHeaderBytes = 40 + 40

    var source: (address: IPAddress, port: UInt16)
    var destination: (address: IPAddress, port: UInt16)
    var sequence: UInt32
    var acknowledgment: UInt32
    var flags: TCPFlags
    var window: UInt16
    var payloadLength: Int = 0
    /// Timestamps (RFC 7323) on every segment, as Linux sends them.
    var timestampValue: UInt32 = 1
    var timestampEcho: UInt32 = 0
    /// The payload captured too (a proxied connection's packets are copied whole).
    var whole = false

    /// The IP and TCP headers as captured, and the length on the wire. Linux's option layouts:
    /// a SYN carries MSS 1460, SACK-permitted, timestamps, NOP and window scale 7, every other
    /// segment NOP, NOP and timestamps.
    func packet() -> (captured: [UInt8], wireLength: Int) {
        var builder = PacketBuilder(source: source.address, destination: destination.address)
        builder.sourcePort = source.port
        builder.destinationPort = destination.port
        builder.sequence = sequence
        builder.acknowledgment = acknowledgment
        builder.flags = flags
        builder.window = window
        let timestamps = TCPOptionSpec.timestamps(value: timestampValue, echo: timestampEcho)
        builder.options = flags.contains(.syn)
            ? [.mss(1460), .sackPermitted, timestamps, .noOperation, .windowScale(7)]
            : [.noOperation, .noOperation, timestamps]
        let headerLength = (builder.isIPv6 ? 40 : 20) + 20 + builder.optionBytes.count
        let wireLength = headerLength + payloadLength
        if whole {
            builder.payloadLength = payloadLength
            return (builder.build(), wireLength)
        }
        if builder.isIPv6 {
            builder.ipv6PayloadLength = UInt16(wireLength - 40)
        } else {
            builder.ipv4TotalLength = UInt16(wireLength)
        }
        let captured = builder.build()
        precondition(captured.count == headerLength && headerLength <= Self.maximumHeaderBytes)
        return (captured, wireLength)
    }
}
