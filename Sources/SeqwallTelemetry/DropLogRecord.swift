import SeqwallCore

/// One dropped packet as the drop log shows it. Plain values only, so a worker can hand it to
/// the logging thread through a ring without allocating; the line is built on that thread.
public struct DropLogRecord: Sendable, Equatable {
    /// A `reject` rule's packet (answered with a RST) rather than a silent drop.
    public var rejected: Bool
    public var reason: DropReason
    /// nil when the packet is too broken to tell (then so are the fields below).
    public var protocolNumber: UInt8?
    public var source: IPAddress?
    public var destination: IPAddress?
    public var sourcePort: UInt16?
    public var destinationPort: UInt16?
    public var flags: TCPFlags?
    public var sequence: UInt32?
    public var acknowledgment: UInt32?
    public var window: UInt16?
    /// Payload bytes (TCP: from the IP length fields).
    public var length: Int?
    /// The state of the packet's connection in the table after the verdict (NONE when it has
    /// none): a dropped packet changes no state, a rejected SYN leaves a CLOSE entry.
    public var state: TCPState
    public var queue: UInt16
    /// An IP fragment's identification, offset in bytes and M flag (`fragment` drops only).
    public var identification: UInt32?
    public var fragmentOffset: Int?
    public var moreFragments = false

    public init(reason: DropReason, rejected: Bool = false, state: TCPState = .none, queue: UInt16) {
        self.reason = reason
        self.rejected = rejected
        self.state = state
        self.queue = queue
    }

    /// The fields of a parsed packet.
    public init(_ packet: ParsedPacket, reason: DropReason, rejected: Bool = false, state: TCPState = .none,
                queue: UInt16) {
        self.init(reason: reason, rejected: rejected, state: state, queue: queue)
        switch packet {
        case .tcp(let segment):
            setAddresses(6, segment.source, segment.destination)
            sourcePort = segment.sourcePort
            destinationPort = segment.destinationPort
            flags = segment.flags
            sequence = segment.sequence
            acknowledgment = segment.acknowledgment
            window = segment.window
            length = segment.payloadLength
        case .datagram(let datagram):
            let key = datagram.key
            setAddresses(key.protocolNumber, key.source, key.destination)
            // An echo's "ports" are its id and type/code marker (ICMPEcho): not ports.
            if TrackedProtocol(protocolNumber: key.protocolNumber)?.hasPorts == true {
                sourcePort = key.sourcePort
                destinationPort = key.destinationPort
            }
        case .icmpError(let error):
            setAddresses(error.source.isIPv4 ? TrackedProtocol.icmpNumber : TrackedProtocol.icmp6Number,
                         error.source, error.destination)
        case .neighbourDiscovery(let source, let destination):
            setAddresses(TrackedProtocol.icmp6Number, source, destination)
        case .other(let number, let source, let destination):
            setAddresses(number, source, destination)
        case .invalid:
            break
        }
    }

    /// A fragment's fields (IPFragment): addresses, protocol, the ports of a first fragment
    /// that holds them, identification and offset.
    public init(_ fragment: IPFragment, reason: DropReason, queue: UInt16) {
        self.init(reason: reason, queue: queue)
        setAddresses(fragment.protocolNumber, fragment.source, fragment.destination)
        sourcePort = fragment.sourcePort
        destinationPort = fragment.destinationPort
        identification = fragment.identification
        fragmentOffset = fragment.offset
        moreFragments = fragment.moreFragments
    }

    private mutating func setAddresses(_ protocolNumber: UInt8, _ source: IPAddress, _ destination: IPAddress) {
        self.protocolNumber = protocolNumber
        self.source = source
        self.destination = destination
    }

    /// `drop reason=seq-above-window proto=tcp src=198.51.100.10 dst=203.0.113.10 sport=40000
    /// dport=8080 flags=ACK,PSH seq=1 ack=2 win=502 len=10 state=ESTABLISHED queue=0` (one line):
    /// `drop` or `reject`, then always the same keys in the same order; `-` where the packet
    /// has no such field. Stable: scripts may parse it. A fragment's line ends in three more:
    /// `ipid=54321 fragoff=1480 mf=1` (identification, offset in bytes, more fragments).
    public var line: String {
        var line = rejected ? "reject" : "drop"
        line += " reason=\(reason.name)"
        line += " proto=\(protocolNumber.map(DropLogRecord.protocolName) ?? "-")"
        line += " src=\(text(source)) dst=\(text(destination))"
        line += " sport=\(text(sourcePort)) dport=\(text(destinationPort))"
        line += " flags=\(flags.map(DropLogRecord.flagNames) ?? "-")"
        line += " seq=\(text(sequence)) ack=\(text(acknowledgment)) win=\(text(window)) len=\(text(length))"
        line += " state=\(state.name) queue=\(queue)"
        if let identification, let fragmentOffset {
            line += " ipid=\(identification) fragoff=\(fragmentOffset) mf=\(moreFragments ? 1 : 0)"
        }
        return line
    }

    /// conntrack's protocol names; others by number.
    static func protocolName(_ number: UInt8) -> String {
        switch number {
        case 1: "icmp"
        case 6: "tcp"
        case 17: "udp"
        case 58: "icmpv6"
        default: String(number)
        }
    }

    /// `SYN,ACK`; `NONE` for a segment without flags (a NULL scan).
    static func flagNames(_ flags: TCPFlags) -> String { flags.names }

    private func text<Value: CustomStringConvertible>(_ value: Value?) -> String {
        value.map(\.description) ?? "-"
    }
}
