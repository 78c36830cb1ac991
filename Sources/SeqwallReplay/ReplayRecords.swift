import SeqwallControl
import SeqwallCore

/// What replay says about one frame (`-o json`: one object of `"packets"`).
public struct PacketRecord: Encodable, Sendable, Equatable {
    /// 1 for the capture's first frame, as tcpdump --number counts.
    public var number: UInt64
    /// Capture time relative to the first frame, in nanoseconds (negative for a frame stamped
    /// before the first).
    public var relativeNanoseconds: Int64
    /// The same in seconds, for JSON.
    public var time: Double
    public var family: String?
    /// "tcp", "udp", "icmp", "icmpv6", or the IP protocol number of anything else.
    public var proto: String?
    public var src: String?
    public var dst: String?
    public var sport: UInt16?
    public var dport: UInt16?
    public var tcpFlags: TCPFlags?
    /// The flags by name ("SYN,ACK"), for JSON.
    public var flags: String?
    public var seq: UInt32?
    public var ack: UInt32?
    /// The raw window field.
    public var win: UInt16?
    /// TCP payload bytes.
    public var len: Int?
    /// The IP packet's length on the wire.
    public var wireLength: Int?
    /// "accept", "drop", "reject", or "skip" for a frame the tracker never saw.
    public var verdict = "skip"
    /// The drop reason (docs/design.md, Verdicts and drop reasons), `rule` for a reject, or the
    /// skip reason; absent for an accepted packet.
    public var reason: String?
    /// More about a skipped frame (its EtherType, ...).
    public var detail: String?
    /// The connection's state after the packet; absent when the table holds none for it.
    public var state: String?

    public init(number: UInt64, relativeNanoseconds: Int64) {
        self.number = number
        self.relativeNanoseconds = relativeNanoseconds
        time = Double(relativeNanoseconds) / 1_000_000_000
    }

    /// Fills in what the parser found.
    mutating func describe(_ parsed: ParsedPacket, endpoints: (source: IPAddress, destination: IPAddress)?,
                           wireLength: Int) {
        self.wireLength = wireLength
        if let endpoints {
            family = endpoints.source.isIPv4 ? "ipv4" : "ipv6"
            src = endpoints.source.description
            dst = endpoints.destination.description
        }
        switch parsed {
        case .tcp(let segment):
            proto = "tcp"
            sport = segment.sourcePort
            dport = segment.destinationPort
            tcpFlags = segment.flags
            flags = segment.flags.names
            seq = segment.sequence
            ack = segment.acknowledgment
            win = segment.window
            len = segment.payloadLength
        case .datagram(let datagram):
            let protocolName = TrackedProtocol(protocolNumber: datagram.key.protocolNumber) ?? .udp
            proto = protocolName.conntrackName
            if protocolName.hasPorts {
                sport = datagram.key.sourcePort
                dport = datagram.key.destinationPort
            }
        case .icmpError(let error):
            proto = error.source.isIPv4 ? TrackedProtocol.icmp.conntrackName : TrackedProtocol.icmp6.conntrackName
        case .neighbourDiscovery:
            proto = TrackedProtocol.icmp6.conntrackName
        case .other(let protocolNumber, _, _):
            proto = "\(protocolNumber)"
        case .invalid:
            break
        }
    }

    enum CodingKeys: String, CodingKey {
        case number, time, family, proto, src, dst, sport, dport, flags, seq, ack, win, len
        case wireLength = "wire_length", verdict, reason, detail, state
    }
}

/// Packets per verdict. Rejects are also counted as `rule` drops in the tracker's counters.
public struct VerdictCounts: Codable, Sendable, Equatable {
    public var accept: UInt64 = 0
    public var drop: UInt64 = 0
    public var reject: UInt64 = 0

    public init(accept: UInt64 = 0, drop: UInt64 = 0, reject: UInt64 = 0) {
        self.accept = accept
        self.drop = drop
        self.reject = reject
    }

    mutating func count(_ verdict: Verdict) {
        switch verdict {
        case .accept, .acceptRewritten: accept += 1
        case .drop: drop += 1
        case .reject: reject += 1
        }
    }
}

/// Everything after the last frame: the table as it was left, and the counters.
public struct ReplaySummary: Sendable, Equatable {
    /// Frames read from the capture.
    public var frames: UInt64
    public var skipped: [SkipReason: UInt64]
    /// Frames stamped earlier than one before them (the clock held still for them).
    public var clockWentBack: UInt64
    public var verdicts: VerdictCounts
    /// The final table, as `conntrack list -o json` shows it.
    public var connections: [ConnectionRecord]
    /// The tracker's counters, as `seqwall stats -o json` shows them (no queues).
    public var stats: StatsRecord
}

/// `{"file":...,"link_type":...,"snap_length":N,"frames":N,"skipped":{...},"clock_went_back":N}`.
struct CaptureRecord: Encodable {
    var file: String
    var link_type: String
    /// Bytes kept per frame: a packet's headers past this were not captured.
    var snap_length: Int
    var frames: UInt64
    var skipped: [String: UInt64]
    var clock_went_back: UInt64
    /// A pcapng capture of several interfaces: each one's; `link_type` and `snap_length` above
    /// are then the first interface's and the largest.
    var interfaces: [InterfaceRecord]?
}

/// `{"link_type":"EN10MB","snap_length":262144}`: one interface of a pcapng capture.
public struct InterfaceRecord: Encodable, Sendable, Equatable {
    public var link_type: String
    public var snap_length: Int

    public init(link_type: String, snap_length: Int) {
        self.link_type = link_type
        self.snap_length = snap_length
    }
}
