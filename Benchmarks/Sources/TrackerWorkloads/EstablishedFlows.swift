import SeqwallCore
import SeqwallTestSupport

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
        let tracker = ConnectionTracker(policy: family.policy(states: connections), capacity: connections,
                                        regionProvider: regionProvider(hugePages: hugePages))
        let start = now
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
                let (captured, wireLength) = segment.packet()
                let verdict = captured.withUnsafeBytes {
                    tracker.process($0, wireLength: wireLength, hook: .forward, now: start)
                }
                precondition(verdict == .accept, "handshake of connection \(index) refused: \(verdict); \(dropSummary(tracker))")
            }
        }
        precondition(tracker.connectionCount == connections, "table holds \(tracker.connectionCount) of \(connections)")
        self.tracker = tracker
        residentBytesPerConnection = (residentBytes() - residentBefore) / connections
        // The entry slots with the expiry wheel's links, and the index (ConnectionTable.bytes).
        tableBytesPerConnection = tracker.tableBytes / connections

        schedule = PacketSchedule(count: packetsPerPass)
        orders = flowOrders(connections: connections, halfRoundsPerPass: halfRoundsPerPass)
    }

    /// Writes the next pass's packets (outside the measured region).
    public func preparePass() {
        forEachHalfRoundPacket(pass: pass, halfRoundsPerPass: halfRoundsPerPass, orders: orders,
                               connections: connections) { index, connection, round, isData in
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
            schedule.set(index, segment)
        }
        pass += 1
        now &+= 1_000_000
    }

    /// The measured region.
    public func runPass() -> PassOutcome {
        PassOutcome(packets: schedule.count, accepted: schedule.run(through: tracker, now: now, feeding: feeding))
    }
}
