import SeqwallControl
import SeqwallCore

/// The tracker's clock during a replay: each frame's capture time in nanoseconds since the
/// epoch. The tracker needs a clock that never goes back (expiry times are absolute); a capture
/// may go back (merged files, a stepped clock), so the clock holds still until the capture
/// catches up, and counts how often that happened.
public struct ReplayClock: Sendable {
    /// The tracker's `now`.
    public private(set) var now: UInt64 = 0
    /// The first frame's time, to print times relative to it.
    public private(set) var start: Int64?
    /// Frames stamped earlier than a frame before them.
    public private(set) var wentBack: UInt64 = 0

    public init() {}

    /// Moves to a frame's time; returns the frame's own time relative to the first frame (which
    /// is negative for a frame stamped before it).
    public mutating func advance(seconds: Int64, nanoseconds: Int64) -> Int64 {
        let time = ReplayClock.nanoseconds(seconds: seconds, nanoseconds: nanoseconds)
        let start = self.start ?? time
        if self.start == nil {
            self.start = time
            now = UInt64(max(0, time))
        }
        let clamped = UInt64(max(0, time))
        if clamped < now { wentBack += 1 } else { now = clamped }
        let (relative, overflow) = time.subtractingReportingOverflow(start)
        return overflow ? (time < start ? .min : .max) : relative
    }

    /// Seconds and nanoseconds as one count, saturating rather than trapping on a damaged
    /// timestamp.
    static func nanoseconds(seconds: Int64, nanoseconds: Int64) -> Int64 {
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, carry) = scaled.addingReportingOverflow(nanoseconds)
        if carry { return nanoseconds < 0 ? .min : .max }
        return sum
    }
}

/// Why a frame was not handed to the tracker. None of these is a drop: the live firewall would
/// never have seen such a frame.
public enum SkipReason: String, Sendable, CaseIterable, Codable {
    /// Not IPv4 or IPv6 (ARP, LLDP, ...): the kernel does not queue it to seqwall.
    case notIP = "non-ip"
    /// The frame ends inside its link-layer header.
    case linkTruncated = "link-truncated"
    /// The capture's snap length cut the frame inside its IP or TCP headers: what the packet
    /// was cannot be known, and the daemon (which copies at least 128 bytes) would have seen
    /// it whole. Not a `truncated` drop: that is for packets cut short on the wire.
    case snapTruncated = "snap-truncated"
    /// Gateway mode, Linux cooked capture: the copy of a forwarded packet as it left the
    /// capturing host. FORWARD sees each packet once, on the way in.
    case outgoingCopy = "outgoing-copy"
    /// Host mode: a packet neither to nor from a `--host` address, which INPUT and OUTPUT
    /// would not see.
    case notHost = "not-host"
}

/// One capture replayed through a tracker, frame by frame: decode the link layer, move the
/// clock, expire what timed out, judge the packet as the daemon would, and say what happened.
public final class Replay {
    public let tracker: ConnectionTracker
    public let link: LinkLayer
    /// Host mode: packets to one of these are INPUT, from one are OUTPUT. Empty: gateway mode,
    /// every packet judged as FORWARD would judge it (`PacketHook.other`, `inside` decides).
    public let hosts: [IPAddress]
    public private(set) var clock = ReplayClock()
    public private(set) var frames: UInt64 = 0
    public private(set) var skipped: [SkipReason: UInt64] = [:]
    public private(set) var verdicts = VerdictCounts()
    /// When the table was last swept of expired connections.
    private var sweptAt: UInt64?

    /// How often, on the capture's clock, expired connections are swept out: the daemon's
    /// worker sweeps the whole table about once a second (QueueWorker), so that expired
    /// half-open connections stop counting and their slots free up at the same moments.
    public static let sweepInterval: UInt64 = 1_000_000_000

    /// `frames`, when known, sizes the table to the capture: a capture of N frames can open at
    /// most N connections, so a table of min(N, `limit states`) is never full where the
    /// policy's would not be, and each expiry pass has that many fewer slots to look at.
    public init(policy: Policy, link: LinkLayer, hosts: [IPAddress] = [], frames: Int? = nil) {
        tracker = ConnectionTracker(policy: policy, capacity: frames.map { min(policy.limits.states, max(1, $0)) })
        self.link = link
        self.hosts = hosts
    }

    /// Judges one frame and describes it.
    public func replay(_ frame: CapturedFrame) -> PacketRecord {
        frames += 1
        let relative = clock.advance(seconds: frame.seconds, nanoseconds: frame.nanoseconds)
        var record = PacketRecord(number: frames, relativeNanoseconds: relative)
        sweepIfDue()

        let offset: Int
        let outgoing: Bool
        switch (frame.link ?? link).decode(frame.bytes) {
        case .notIP(let what):
            return skip(record, .notIP, detail: what)
        case .truncated:
            return skip(record, .linkTruncated, detail: "\(Counted.text(frame.bytes.count, "byte")) captured")
        case .ip(let start, let sent):
            (offset, outgoing) = (start, sent)
        }

        let bytes = UnsafeRawBufferPointer(rebasing: frame.bytes[offset...])
        let (packet, wireLength) = Replay.trimmed(bytes, wireLength: frame.originalLength - offset)
        let parsed = PacketParser.parse(packet, wireLength: wireLength)
        let endpoints = Replay.endpoints(of: parsed, packet)
        record.describe(parsed, endpoints: endpoints, wireLength: wireLength)
        if parsed == .invalid(.truncated) && packet.count < wireLength {
            return skip(record, .snapTruncated, detail: "\(packet.count) of \(Counted.text(wireLength, "byte")) captured")
        }
        if outgoing && hosts.isEmpty {
            return skip(record, .outgoingCopy, detail: "the forwarded copy leaving the capturing host")
        }

        let hook: PacketHook
        if hosts.isEmpty {
            hook = .other
        } else if let endpoints {
            if hosts.contains(endpoints.destination) { hook = .input }
            else if hosts.contains(endpoints.source) { hook = .output }
            else { return skip(record, .notHost, detail: nil) }
        } else {
            // Too damaged to have addresses: the parser drops it whatever the hook.
            hook = .input
        }

        // The daemon's own call, on the same bytes and lengths it would have been given.
        let verdict = tracker.process(packet, wireLength: wireLength, hook: hook, now: clock.now)
        verdicts.count(verdict)
        record.verdict = Replay.name(of: verdict)
        if case .drop(let reason) = verdict { record.reason = reason.name }
        if verdict == .reject { record.reason = DropReason.rule.name }
        if case .tcp(let segment) = parsed { record.state = stateAfter(segment)?.name }
        return record
    }

    /// Sweeps once more at the capture's last timestamp and collects the table and counters.
    public func finish() -> ReplaySummary {
        expire(now: clock.now)
        var connections: [Connection] = []
        tracker.forEachConnection { connection in
            if connection.expiresAt > clock.now { connections.append(connection) }
        }
        // The table's order depends on its random hash seed: sort, so that one capture always
        // replays to the same text.
        connections.sort { a, b in
            (a.key.source, a.key.destination, a.key.sourcePort, a.key.destinationPort)
                < (b.key.source, b.key.destination, b.key.sourcePort, b.key.destinationPort)
        }
        var stats = StatsRecord(queues: [QueueMetrics(queue: 0, tracker: tracker, now: clock.now)])
        // No queue was involved: the per-queue and kernel figures do not apply. The limit is
        // the policy's, whatever size the table was given for this capture.
        stats.queues = []
        stats.connections.limit = tracker.policy.limits.states
        return ReplaySummary(
            frames: frames, skipped: skipped, clockWentBack: clock.wentBack, verdicts: verdicts,
            connections: connections.map { ConnectionRecord($0, now: clock.now) }, stats: stats)
    }

    // MARK: Expiry

    private func sweepIfDue() {
        if let sweptAt, clock.now &- sweptAt < Replay.sweepInterval { return }
        expire(now: clock.now)
    }

    /// The one place replay expires connections: a whole pass over the table.
    private func expire(now: UInt64) {
        tracker.expireAll(now: now)
        sweptAt = now
    }

    // MARK: Helpers

    /// "accept", "drop" or "reject", as the JSON says it.
    static func name(of verdict: Verdict) -> String {
        switch verdict {
        case .accept, .acceptRewritten: "accept"
        case .drop: "drop"
        case .reject: "reject"
        }
    }

    private func skip(_ record: PacketRecord, _ reason: SkipReason, detail: String?) -> PacketRecord {
        var record = record
        skipped[reason, default: 0] += 1
        record.verdict = "skip"
        record.reason = reason.rawValue
        record.detail = detail
        return record
    }

    /// The state of the connection `segment` belongs to after it was judged; nil when there is
    /// none (never opened, or just closed and removed).
    private func stateAfter(_ segment: TCPSegment) -> TCPState? {
        guard let (connection, _) = tracker.connection(for: FlowKey(segment)) else { return nil }
        return connection.expiresAt > clock.now ? connection.state : nil
    }

    /// The IP packet as the kernel hands it to netfilter: ip_rcv and ipv6_rcv trim the frame
    /// to the IP length (pskb_trim_rcsum), so Ethernet padding and trailers count neither in
    /// the bytes nor in the wire length. A length field larger than the frame is left for the
    /// parser to judge.
    static func trimmed(_ packet: UnsafeRawBufferPointer, wireLength: Int) -> (UnsafeRawBufferPointer, Int) {
        var length = 0
        switch packet.first.map({ $0 >> 4 }) {
        case 4 where packet.count >= 4:
            length = Int(packet.bigEndian16(at: 2))
        case 6 where packet.count >= 6:
            let payload = Int(packet.bigEndian16(at: 4))
            // Payload length 0 is a jumbogram or BIG TCP: the frame's length is the packet's.
            length = payload == 0 ? 0 : 40 + payload
        default:
            break
        }
        guard length > 0 && length < wireLength else { return (packet, wireLength) }
        return (UnsafeRawBufferPointer(rebasing: packet.prefix(length)), length)
    }

    /// The packet's addresses, from the parse or, when it failed, from the fixed IP header.
    static func endpoints(of parsed: ParsedPacket, _ packet: UnsafeRawBufferPointer)
        -> (source: IPAddress, destination: IPAddress)? {
        if let addresses = parsed.addresses { return addresses }
        switch packet.first.map({ $0 >> 4 }) {
        case 4 where packet.count >= 20:
            return (IPAddress(ipv4: packet.bigEndian32(at: 12)), IPAddress(ipv4: packet.bigEndian32(at: 16)))
        case 6 where packet.count >= 40:
            return (IPAddress(high: packet.bigEndian64(at: 8), low: packet.bigEndian64(at: 16)),
                    IPAddress(high: packet.bigEndian64(at: 24), low: packet.bigEndian64(at: 32)))
        default:
            return nil
        }
    }
}


extension UnsafeRawBufferPointer {
    func bigEndian32(at offset: Int) -> UInt32 {
        UInt32(bigEndian16(at: offset)) << 16 | UInt32(bigEndian16(at: offset + 2))
    }

    func bigEndian64(at offset: Int) -> UInt64 {
        UInt64(bigEndian32(at: offset)) << 32 | UInt64(bigEndian32(at: offset + 4))
    }
}

extension Replay {
    /// Replays the capture at `path` and writes the report. Throws, before anything is written,
    /// when the file cannot be opened as a capture or its link layer is not one replay reads.
    /// A file damaged part-way (a tcpdump killed mid-write, say) still gets its table and
    /// counters for the frames before the damage; the damage is returned, for the caller to
    /// report as an error.
    public static func run(path: String, policy: Policy, hosts: [IPAddress], format: ReplayReport.Format,
                           write: @escaping (String) -> Void) throws -> CaptureError? {
        // A first pass counts the frames, to size the table (not possible on a pipe).
        var frames: Int?
        if path != "-" { frames = try CaptureFile(path: path).countFrames() }
        let capture = try CaptureFile(path: path)
        guard let link = LinkLayer(dataLinkType: capture.dataLinkType) else {
            throw CaptureError("\(path): link type \(capture.dataLinkName) (\(capture.dataLinkType)) is not supported: "
                + "replay reads Ethernet, raw IP, Linux cooked (SLL, SLL2) and BSD loopback captures")
        }
        let replay = Replay(policy: policy, link: link, hosts: hosts, frames: frames)
        var report = ReplayReport(format: format, write: write)
        var damage: CaptureError?
        while true {
            do {
                guard let record = try capture.read(replay.replay) else { break }
                try report.packet(record)
            } catch let error as CaptureError {
                damage = CaptureError("\(error.description) (after frame \(replay.frames))")
                break
            }
        }
        let interfaces = capture.interfaces?.map {
            InterfaceRecord(link_type: CaptureFile.name(ofDataLinkType: $0.dataLinkType), snap_length: $0.snapLength)
        }
        try report.finish(replay.finish(), file: path, linkType: capture.dataLinkName, snapLength: capture.snapLength,
                          interfaces: interfaces)
        return damage
    }
}
