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
            protocolNumber = 6
            source = segment.source
            destination = segment.destination
            sourcePort = segment.sourcePort
            destinationPort = segment.destinationPort
            flags = segment.flags
            sequence = segment.sequence
            acknowledgment = segment.acknowledgment
            window = segment.window
            length = segment.payloadLength
        case .datagram(let datagram):
            let key = datagram.key
            protocolNumber = key.protocolNumber
            source = key.source
            destination = key.destination
            // An echo's "ports" are its id and type/code marker (ICMPEcho): not ports.
            if TrackedProtocol(protocolNumber: key.protocolNumber)?.hasPorts == true {
                sourcePort = key.sourcePort
                destinationPort = key.destinationPort
            }
        case .icmpError(let error):
            protocolNumber = error.source.isIPv4 ? TrackedProtocol.icmpNumber : TrackedProtocol.icmp6Number
            source = error.source
            destination = error.destination
        case .neighbourDiscovery(let source, let destination):
            protocolNumber = TrackedProtocol.icmp6Number
            self.source = source
            self.destination = destination
        case .other(let number, let source, let destination):
            protocolNumber = number
            self.source = source
            self.destination = destination
        case .invalid:
            break
        }
    }

    /// A fragment's fields (IPFragment): addresses, protocol, the ports of a first fragment
    /// that holds them, identification and offset.
    public init(_ fragment: IPFragment, reason: DropReason, queue: UInt16) {
        self.init(reason: reason, queue: queue)
        protocolNumber = fragment.protocolNumber
        source = fragment.source
        destination = fragment.destination
        sourcePort = fragment.sourcePort
        destinationPort = fragment.destinationPort
        identification = fragment.identification
        fragmentOffset = fragment.offset
        moreFragments = fragment.moreFragments
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

/// The `sampled` drop log's budget: a token bucket, `burst` lines at once and `rate` a second
/// after that, kept per worker on the worker's clock (the rate the drop log always had).
public struct DropLogSampler: Sendable {
    public static let rate: UInt64 = 10
    public static let burst: UInt64 = 20
    static let interval = 1_000_000_000 / rate

    private var tokens = DropLogSampler.burst
    /// When the last whole token was added; a part-token's time is carried over, so the long-run
    /// rate is `rate` exactly.
    private var refilledAt: UInt64?

    public init() {}

    /// Whether a line may be written now; false means it is counted as suppressed instead.
    @inline(__always)
    public mutating func admit(now: UInt64) -> Bool {
        if let last = refilledAt, now > last {
            let added = (now - last) / DropLogSampler.interval
            if added > 0 {
                tokens = min(DropLogSampler.burst, tokens + added)
                refilledAt = tokens == DropLogSampler.burst ? now : last + added * DropLogSampler.interval
            }
        } else if refilledAt == nil {
            refilledAt = now
        }
        guard tokens > 0 else { return false }
        tokens -= 1
        return true
    }
}

/// The lines that say what the drop log left out, so that nothing goes missing unannounced.
public enum DropLogSummary {
    /// How often the `sampled` summary comes, at most (the kernel's printk rate limit uses the
    /// same five seconds: DEFAULT_RATELIMIT_INTERVAL).
    public static let intervalNanoseconds: UInt64 = 5_000_000_000

    /// `sampled` left these out to keep to its rate.
    public static func suppressed(_ count: UInt64, queue: UInt16) -> String {
        "\(Counted.text(count, "drop line")) suppressed on queue \(queue) (set drop-log sampled: \(DropLogSampler.rate)/s, burst \(DropLogSampler.burst))"
    }

    /// How often the warning about fragments in the queue comes, at most.
    public static let fragmentWarningIntervalNanoseconds: UInt64 = 60_000_000_000

    /// IP fragments reached the queue: the diversion does not turn on the kernel's
    /// reassembly (then datagrams larger than the path's MTU are lost), or the kernel would not
    /// reassemble them. Says what to do about it.
    public static func fragments(_ count: UInt64, queue: UInt16) -> String {
        "\(count) IP fragments reached queue \(queue) and were dropped (reason fragment): either the diversion does not turn on the kernel's reassembly, and every datagram larger than the MTU is lost (use the shipped diversion, seqwall-divert start, or turn reassembly on in yours; docs/design.md, Fragments), or the kernel would not reassemble them (an IPv6 first fragment without its whole header chain, RFC 8200 4.5)"
    }

    /// The ring to the logging thread was full: the log could not keep up.
    public static func lost(_ count: UInt64, queue: UInt16) -> String {
        "\(Counted.text(count, "drop line")) lost on queue \(queue): the log could not keep up"
    }
}
