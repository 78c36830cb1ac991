import SeqwallCore

/// A seeded mix of a connection number into 32 bits: initial sequence numbers that look random
/// but are the same every run.
@inline(__always)
func scramble(_ value: Int, _ salt: UInt64) -> UInt32 {
    var generator = SplitMix64(seed: UInt64(truncatingIfNeeded: value) &* 0x100_0000_01B3 ^ salt)
    return UInt32(truncatingIfNeeded: generator.next())
}

/// What one pass of a workload did, checked after the measured region.
public struct PassOutcome {
    public var packets: Int
    public var accepted: Int
}

/// Packets prepared pass by pass outside the measured region, then run through a tracker.
public protocol Workload: AnyObject {
    var tracker: ConnectionTracker { get }
    /// Writes the next pass's packets.
    func preparePass()
    /// The measured region.
    func runPass() -> PassOutcome
}

/// A drop breakdown for an error message: a workload that sees drops measures the wrong path.
public func dropSummary(_ tracker: ConnectionTracker) -> String {
    let counters = tracker.counters
    let reasons = DropReason.allCases.filter { counters[$0] > 0 }.map { "\($0)=\(counters[$0])" }
    return "accepted \(counters.accepted), dropped \(counters.dropped) [\(reasons.joined(separator: " "))]"
}

/// `connections` established TCP connections (handshake done through the tracker), then
/// passes of `packetsPerPass` packets over them: in each round every client sends a full-size
/// data segment and every server acknowledges it, each half-round in a random flow order, so
/// nearly every lookup lands on a cold table slot (the worst case, and what a busy gateway
/// with many flows sees). Sequence numbers run on from pass to pass as in a real transfer.
public final class EstablishedFlows: Workload {
    static let segmentSize = 1448
    static let clientWindow: UInt16 = 502     // << 7 = 64256 bytes
    static let serverWindow: UInt16 = 2000    // << 7 = 256000 bytes

    let family: Family
    let connections: Int
    public let tracker: ConnectionTracker
    let schedule: PacketSchedule
    /// Half-rounds (every connection once, data or ack) in one pass.
    let halfRoundsPerPass: Int
    /// Random flow orders, used in turn by the half-rounds.
    let orders: [[Int32]]
    /// Resident memory the table added while the connections were opened, per connection.
    public let residentBytesPerConnection: Int
    /// The table's own arrays (slots and tags) per connection.
    public let tableBytesPerConnection: Int
    let feeding: Feeding
    private(set) var pass = 0
    private(set) var now: UInt64 = 1_000 * 1_000_000_000

    /// `hugePages`: whether the table's arrays are advised onto huge pages, as the daemon does.
    public init(family: Family, connections: Int, packetsPerPass: Int, feeding: Feeding = .batches,
                hugePages: Bool = true) {
        precondition(packetsPerPass % connections == 0, "a pass is whole half-rounds")
        self.family = family
        self.connections = connections
        self.feeding = feeding
        halfRoundsPerPass = packetsPerPass / connections

        let residentBefore = residentBytes()
        tracker = ConnectionTracker(policy: family.policy(states: connections), capacity: connections,
                                    memoryAdvisor: memoryAdvisor(hugePages: hugePages))
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: PacketWriter.maximumHeaderBytes, alignment: 16)
        defer { scratch.deallocate() }
        for index in 0..<connections {
            let client = family.client(index), server = family.server(index)
            let clientISN = scramble(index, 1), serverISN = scramble(index, 2)
            let handshake = [
                SegmentSpec(source: client, destination: server, sequence: clientISN, acknowledgment: 0,
                            flags: .syn, window: 64240),
                SegmentSpec(source: server, destination: client, sequence: serverISN, acknowledgment: clientISN &+ 1,
                            flags: [.syn, .ack], window: 65160, timestampEcho: 1),
                SegmentSpec(source: client, destination: server, sequence: clientISN &+ 1,
                            acknowledgment: serverISN &+ 1, flags: .ack, window: Self.clientWindow, timestampEcho: 1),
            ]
            for segment in handshake {
                let (captured, wire) = PacketWriter.write(segment, family: family, to: scratch)
                let verdict = tracker.process(UnsafeRawBufferPointer(start: scratch, count: captured),
                                              wireLength: wire, hook: .forward, now: now)
                precondition(verdict == .accept, "handshake of connection \(index) refused: \(verdict); \(dropSummary(tracker))")
            }
        }
        precondition(tracker.connectionCount == connections, "table holds \(tracker.connectionCount) of \(connections)")
        residentBytesPerConnection = (residentBytes() - residentBefore) / connections
        // The entry slots with the expiry wheel's links, and the index (ConnectionTable.bytes).
        tableBytesPerConnection = tracker.tableBytes / connections

        schedule = PacketSchedule(count: packetsPerPass)
        var generator = SplitMix64(seed: 0x5EC0_A11 ^ UInt64(connections))
        orders = (0..<min(4, halfRoundsPerPass * 2)).map { _ in
            var order = (0..<connections).map { Int32($0) }
            order.shuffle(using: &generator)
            return order
        }
    }

    /// Writes the next pass's packets (outside the measured region).
    public func preparePass() {
        var index = 0
        for halfRound in (pass * halfRoundsPerPass)..<((pass + 1) * halfRoundsPerPass) {
            let round = UInt32(truncatingIfNeeded: halfRound / 2)
            let isData = halfRound % 2 == 0
            let order = orders[halfRound % orders.count]
            for position in 0..<connections {
                let connection = Int(order[position])
                let client = family.client(connection), server = family.server(connection)
                let clientNext = scramble(connection, 1) &+ 1 &+ round &* UInt32(Self.segmentSize)
                let serverNext = scramble(connection, 2) &+ 1
                let segment = isData
                    ? SegmentSpec(source: client, destination: server, sequence: clientNext, acknowledgment: serverNext,
                                  flags: [.ack, .psh], window: Self.clientWindow, payloadLength: Self.segmentSize,
                                  timestampValue: 2 &+ round, timestampEcho: 1 &+ round)
                    : SegmentSpec(source: server, destination: client, sequence: serverNext,
                                  acknowledgment: clientNext &+ UInt32(Self.segmentSize), flags: .ack,
                                  window: Self.serverWindow, timestampValue: 2 &+ round, timestampEcho: 2 &+ round)
                schedule.set(index, segment, family: family)
                index += 1
            }
        }
        pass += 1
        now &+= 1_000_000
    }

    /// The measured region.
    public func runPass() -> PassOutcome {
        PassOutcome(packets: schedule.count, accepted: schedule.run(through: tracker, now: now, feeding: feeding))
    }
}

/// Whole short connections, ten packets each, as a web gateway sees them: SYN, SYN-ACK, ACK,
/// request, response, ACK, FIN, ACK, FIN, ACK (ends in TIME_WAIT). Connections go in groups of
/// 1000 (so about 1000 are half-open at a time), each group step by step in a random order.
/// Each pass reuses the same client ports after the clock moved past TIME_WAIT, so the SYN
/// finds the expired entry, removes it and opens a new one: the table stays at `connections`.
public final class HandshakeMix: Workload {
    public static let packetsPerConnection = 10
    static let groupSize = 1000
    let family: Family
    let connections: Int
    public let tracker: ConnectionTracker
    let schedule: PacketSchedule
    let orders: [[Int32]]
    let feeding: Feeding
    private(set) var pass = 0
    private(set) var now: UInt64 = 1_000 * 1_000_000_000

    public init(family: Family, connections: Int, feeding: Feeding = .batches, hugePages: Bool = true) {
        precondition(connections % Self.groupSize == 0)
        self.family = family
        self.connections = connections
        self.feeding = feeding
        // Twice the live connections: TIME_WAIT leftovers of the last pass plus the new ones
        // never fill it.
        tracker = ConnectionTracker(policy: family.policy(states: 2 * connections), capacity: 2 * connections,
                                    memoryAdvisor: memoryAdvisor(hugePages: hugePages))
        schedule = PacketSchedule(count: connections * Self.packetsPerConnection)
        var generator = SplitMix64(seed: 0x4A4D)
        orders = (0..<Self.packetsPerConnection).map { _ in
            var order = (0..<Self.groupSize).map { Int32($0) }
            order.shuffle(using: &generator)
            return order
        }
    }

    /// Segment `step` of connection `index` in pass `pass`.
    func segment(_ step: Int, of index: Int) -> SegmentSpec {
        let client = family.client(index), server = family.server(index)
        let c = scramble(index, UInt64(pass) << 8 | 3), s = scramble(index, UInt64(pass) << 8 | 4)
        let request: UInt32 = 100, response: UInt32 = 200
        func fromClient(_ seq: UInt32, _ ack: UInt32, _ flags: TCPFlags, _ payload: UInt32 = 0) -> SegmentSpec {
            SegmentSpec(source: client, destination: server, sequence: seq, acknowledgment: ack, flags: flags,
                        window: flags == .syn ? 64240 : 502, payloadLength: Int(payload),
                        timestampValue: 10 &+ UInt32(step), timestampEcho: step == 0 ? 0 : 20 &+ UInt32(step))
        }
        func fromServer(_ seq: UInt32, _ ack: UInt32, _ flags: TCPFlags, _ payload: UInt32 = 0) -> SegmentSpec {
            SegmentSpec(source: server, destination: client, sequence: seq, acknowledgment: ack, flags: flags,
                        window: flags.contains(.syn) ? 65160 : 509, payloadLength: Int(payload),
                        timestampValue: 20 &+ UInt32(step), timestampEcho: 10 &+ UInt32(step))
        }
        switch step {
        case 0: return fromClient(c, 0, .syn)
        case 1: return fromServer(s, c &+ 1, [.syn, .ack])
        case 2: return fromClient(c &+ 1, s &+ 1, .ack)
        case 3: return fromClient(c &+ 1, s &+ 1, [.ack, .psh], request)
        case 4: return fromServer(s &+ 1, c &+ 1 &+ request, [.ack, .psh], response)
        case 5: return fromClient(c &+ 1 &+ request, s &+ 1 &+ response, .ack)
        case 6: return fromClient(c &+ 1 &+ request, s &+ 1 &+ response, [.fin, .ack])
        case 7: return fromServer(s &+ 1 &+ response, c &+ 2 &+ request, .ack)
        case 8: return fromServer(s &+ 1 &+ response, c &+ 2 &+ request, [.fin, .ack])
        default: return fromClient(c &+ 2 &+ request, s &+ 2 &+ response, .ack)
        }
    }

    /// Writes the next pass's packets (outside the measured region).
    public func preparePass() {
        var index = 0
        for group in stride(from: 0, to: connections, by: Self.groupSize) {
            for step in 0..<Self.packetsPerConnection {
                for member in orders[step] {
                    schedule.set(index, segment(step, of: group + Int(member)), family: family)
                    index += 1
                }
            }
        }
        pass += 1
        // Past TIME_WAIT (120 s): last pass's connections have expired.
        now &+= 200 * 1_000_000_000
    }

    public func runPass() -> PassOutcome {
        PassOutcome(packets: schedule.count, accepted: schedule.run(through: tracker, now: now, feeding: feeding))
    }
}
