import SeqwallCore
import SeqwallTestSupport

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
                                    regionProvider: regionProvider(hugePages: hugePages))
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
                    schedule.set(index, segment(step, of: group + Int(member)))
                    index += 1
                }
            }
        }
        pass += 1
        // Past TIME_WAIT (120 s): last pass's connections have expired.
        now &+= 200 * 1_000_000_000
    }

    /// Runs after each batch of a batched pass (PacketSchedule.afterBatch).
    public var afterBatch: ((ConnectionTracker) -> Void)? {
        get { schedule.afterBatch }
        set { schedule.afterBatch = newValue }
    }

    public func runPass() -> PassOutcome {
        PassOutcome(packets: schedule.count, accepted: schedule.run(through: tracker, now: now, feeding: feeding))
    }
}
