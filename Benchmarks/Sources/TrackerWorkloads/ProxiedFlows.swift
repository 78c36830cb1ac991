import SeqwallCore
import SeqwallTestSupport

/// EstablishedFlows' traffic over proxied connections (a `synproxy` rule, docs/synproxy.md):
/// each connection is opened through the SYN proxy's handshake (client SYN answered with a
/// cookie, cookie ACK, server SYN-ACK), then every round the client sends a data segment and
/// the server acknowledges it, each in its own half's numbers, and every packet is translated
/// in place before or after tracking. The packets are captured whole, as the daemon copies a
/// proxied connection's, with a short payload so a pass fits in memory: translation touches
/// headers only, so the payload's size does not change what a packet costs.
public final class ProxiedFlows: Workload {
    static let segmentSize = 64
    static let clientWindow: UInt16 = 502
    static let serverWindow: UInt16 = 2000

    let family: Family
    let connections: Int
    public let tracker: ConnectionTracker
    let schedule: PacketSchedule
    let halfRoundsPerPass: Int
    let orders: [[Int32]]
    /// Each connection's cookie: the server's initial sequence number in the client's half.
    let cookies: [UInt32]
    let feeding: Feeding
    private(set) var pass = 0
    private(set) var now: UInt64 = 1_000 * 1_000_000_000

    public init(family: Family, connections: Int, packetsPerPass: Int, feeding: Feeding = .batches) {
        precondition(packetsPerPass % connections == 0, "a pass is whole half-rounds")
        self.family = family
        self.connections = connections
        self.feeding = feeding
        halfRoundsPerPass = packetsPerPass / connections
        var policy = family.policy(states: connections)
        policy.rules[1].synProxy = SynProxyRule()
        let tracker = ConnectionTracker(policy: policy, capacity: connections)
        let start = now
        func expect(_ segment: SegmentSpec, _ wanted: Verdict, _ what: String) {
            let (captured, wireLength) = segment.packet()
            var bytes = captured
            let verdict = bytes.withUnsafeMutableBytes {
                tracker.process(UnsafeRawBufferPointer($0), wireLength: wireLength, hook: .forward, now: start)
            }
            precondition(verdict == wanted, "\(what): \(verdict); \(dropSummary(tracker))")
        }
        var cookies: [UInt32] = []
        for index in 0..<connections {
            let client = family.client(index), server = family.server(index)
            let clientISN = scramble(index, 1), serverISN = scramble(index, 2)
            expect(SegmentSpec(source: client, destination: server, sequence: clientISN, acknowledgment: 0,
                               flags: .syn, window: 64240), .drop(.synProxyHandshake), "SYN \(index)")
            guard case .tcp(let synAck) = PacketParser.parse(Array(tracker.synProxyOutbox[0])) else {
                preconditionFailure("the SYN proxy's answer is not TCP")
            }
            tracker.synProxyOutbox.reset()
            expect(SegmentSpec(source: client, destination: server, sequence: clientISN &+ 1,
                               acknowledgment: synAck.sequence &+ 1, flags: .ack, window: Self.clientWindow,
                               timestampEcho: synAck.options.timestampValue),
                   .drop(.synProxyHandshake), "cookie ACK \(index)")
            expect(SegmentSpec(source: server, destination: client, sequence: serverISN, acknowledgment: clientISN &+ 1,
                               flags: [.syn, .ack], window: 65160, timestampEcho: 1),
                   .drop(.synProxyHandshake), "server SYN-ACK \(index)")
            tracker.synProxyOutbox.reset()
            cookies.append(synAck.sequence)
        }
        precondition(tracker.connectionCount == connections, "table holds \(tracker.connectionCount) of \(connections)")
        self.tracker = tracker
        self.cookies = cookies
        schedule = PacketSchedule(count: packetsPerPass,
                                  packetBytes: SegmentSpec.maximumHeaderBytes + Self.segmentSize)
        orders = flowOrders(connections: connections, halfRoundsPerPass: halfRoundsPerPass)
    }

    /// Writes the next pass's packets (outside the measured region): the client's in its
    /// half's numbers (the server's bytes counted from the cookie), the server's in its own.
    public func preparePass() {
        forEachHalfRoundPacket(pass: pass, halfRoundsPerPass: halfRoundsPerPass, orders: orders,
                               connections: connections) { index, connection, round, isData in
            let client = family.client(connection), server = family.server(connection)
            let clientNext = scramble(connection, 1) &+ 1 &+ round &* UInt32(Self.segmentSize)
            var segment = isData
                ? SegmentSpec(source: client, destination: server, sequence: clientNext,
                              acknowledgment: cookies[connection] &+ 1, flags: [.ack, .psh],
                              window: Self.clientWindow, payloadLength: Self.segmentSize,
                              timestampValue: 2 &+ round, timestampEcho: 1 &+ round)
                : SegmentSpec(source: server, destination: client, sequence: scramble(connection, 2) &+ 1,
                              acknowledgment: clientNext &+ UInt32(Self.segmentSize), flags: .ack,
                              window: Self.serverWindow, timestampValue: 2 &+ round, timestampEcho: 2 &+ round)
            segment.whole = true
            schedule.set(index, segment)
        }
        pass += 1
        now &+= 1_000_000
    }

    /// The measured region. Every packet is accepted rewritten, which the tracker's counters
    /// count as accepted.
    public func runPass() -> PassOutcome {
        let before = tracker.counters.accepted
        _ = schedule.run(through: tracker, now: now, feeding: feeding)
        return PassOutcome(packets: schedule.count, accepted: Int(tracker.counters.accepted - before))
    }
}
