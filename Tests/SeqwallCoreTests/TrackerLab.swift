import SeqwallCore
import SeqwallTestSupport
import Testing

let nanosecondsPerSecond: UInt64 = 1_000_000_000

/// A client, a server and a tracker between them, with a fake clock. Packets are built as raw
/// bytes and go through the parser, so every scenario also exercises the whole packet path.
final class Lab {
    let family: Family
    let tracker: ConnectionTracker
    /// The fake monotonic clock, in nanoseconds.
    var now: UInt64 = 10_000 * nanosecondsPerSecond
    var hook: PacketHook = .forward
    var clientPort: UInt16 = 40000
    var serverPort: UInt16 = 80
    let clientISN: UInt32
    let serverISN: UInt32
    /// The next sequence number each side sends (advanced by `handshake` and `data`).
    var clientNext: UInt32
    var serverNext: UInt32
    var window: UInt16 = 64240

    /// Outside clients may reach port 80 on the inside network; everything else inbound is
    /// blocked, outbound passes (the defaults of seqwall.rules(5)).
    static func defaultPolicy(_ family: Family) -> Policy {
        var policy = Policy()
        policy.inside = [family.insideNetwork]
        policy.defaultInbound = .block
        policy.defaultOutbound = .pass
        policy.rules = [Rule(action: .pass, direction: .inbound, ports: [PortRange(80)],
                             location: SeqwallCore.SourceLocation(file: "test.rules", line: 1, column: 1))]
        return policy
    }

    init(family: Family, policy: Policy? = nil, capacity: Int? = nil,
         clientISN: UInt32 = 1000, serverISN: UInt32 = 5000) {
        self.family = family
        // A fixed seed keeps table layouts the same from run to run.
        tracker = ConnectionTracker(policy: policy ?? Lab.defaultPolicy(family), capacity: capacity,
                                    hasher: FlowHasher(seeds: (11, 23, 35, 47, 59)))
        self.clientISN = clientISN
        self.serverISN = serverISN
        clientNext = clientISN
        serverNext = serverISN
    }

    func advance(seconds: UInt64) { now += seconds * nanosecondsPerSecond }

    func packet(_ side: Side, _ flags: TCPFlags, seq: UInt32, ack: UInt32, payload: Int = 0,
                window: UInt16? = nil, options: [TCPOptionSpec] = []) -> [UInt8] {
        var packet = PacketBuilder(source: side == .client ? family.client : family.server,
                                   destination: side == .client ? family.server : family.client)
        packet.sourcePort = side == .client ? clientPort : serverPort
        packet.destinationPort = side == .client ? serverPort : clientPort
        packet.flags = flags
        packet.sequence = seq
        packet.acknowledgment = ack
        packet.payloadLength = payload
        packet.window = window ?? self.window
        packet.options = options
        return packet.build()
    }

    /// Sends one packet through the tracker at the current time.
    @discardableResult
    func send(_ side: Side, _ flags: TCPFlags, seq: UInt32, ack: UInt32, payload: Int = 0,
              window: UInt16? = nil, options: [TCPOptionSpec] = [], hook: PacketHook? = nil) -> Verdict {
        let bytes = packet(side, flags, seq: seq, ack: ack, payload: payload, window: window, options: options)
        return bytes.withUnsafeBytes { tracker.process($0, wireLength: bytes.count, hook: hook ?? self.hook, now: now) }
    }

    /// The key of the connection as the client opened it.
    var key: FlowKey {
        FlowKey(source: family.client, destination: family.server, sourcePort: clientPort, destinationPort: serverPort)
    }

    /// The connection the table holds for the client/server pair, expired or not.
    var connection: Connection? {
        tracker.connection(for: key)?.connection
    }

    var state: TCPState? { connection?.state }

    /// Seconds until the connection expires, as conntrack -L prints.
    var secondsLeft: UInt64? { connection?.secondsLeft(now: now) }

    /// Bytes on the wire of a packet with `options` and `payload`.
    func wireBytes(payload: Int = 0, optionBytes: Int = 0) -> UInt64 {
        UInt64(family.ipHeaderLength + 20 + optionBytes + payload)
    }

    /// SYN, SYN-ACK, ACK (RFC 9293 3.5), each expected to pass.
    func handshake(clientOptions: [TCPOptionSpec] = [], serverOptions: [TCPOptionSpec] = [],
                   synWindow: UInt16? = nil, synAckWindow: UInt16? = nil, ackWindow: UInt16? = nil,
                   sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(send(.client, .syn, seq: clientISN, ack: 0, window: synWindow, options: clientOptions) == .accept,
                sourceLocation: sourceLocation)
        #expect(send(.server, [.syn, .ack], seq: serverISN, ack: clientISN &+ 1, window: synAckWindow,
                     options: serverOptions) == .accept, sourceLocation: sourceLocation)
        #expect(send(.client, .ack, seq: clientISN &+ 1, ack: serverISN &+ 1, window: ackWindow) == .accept,
                sourceLocation: sourceLocation)
        clientNext = clientISN &+ 1
        serverNext = serverISN &+ 1
    }

    /// A data segment (ACK|PSH) from `side` at its next sequence number; advances it if accepted.
    @discardableResult
    func data(_ side: Side, _ length: Int, window: UInt16? = nil) -> Verdict {
        let verdict = side == .client
            ? send(.client, [.ack, .psh], seq: clientNext, ack: serverNext, payload: length, window: window)
            : send(.server, [.ack, .psh], seq: serverNext, ack: clientNext, payload: length, window: window)
        if verdict == .accept {
            if side == .client { clientNext &+= UInt32(length) } else { serverNext &+= UInt32(length) }
        }
        return verdict
    }

    /// A FIN (with ACK of all the other side sent) from `side` at its next sequence number;
    /// the FIN takes one sequence number if accepted.
    @discardableResult
    func fin(_ side: Side) -> Verdict {
        let verdict = side == .client
            ? send(.client, [.fin, .ack], seq: clientNext, ack: serverNext)
            : send(.server, [.fin, .ack], seq: serverNext, ack: clientNext)
        if verdict == .accept {
            if side == .client { clientNext &+= 1 } else { serverNext &+= 1 }
        }
        return verdict
    }

    /// A pure ACK from `side` acknowledging everything the other side sent.
    @discardableResult
    func ackAll(_ side: Side, window: UInt16? = nil) -> Verdict {
        side == .client
            ? send(.client, .ack, seq: clientNext, ack: serverNext, window: window)
            : send(.server, .ack, seq: serverNext, ack: clientNext, window: window)
    }

    /// The four-way close begun by the client (FIN, FIN, last ACK), each expected to pass,
    /// ending in TIME_WAIT.
    func closeToTimeWait(sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        #expect(fin(.client) == .accept, sourceLocation: sourceLocation)
        #expect(fin(.server) == .accept, sourceLocation: sourceLocation)
        #expect(ackAll(.client) == .accept, sourceLocation: sourceLocation)
        #expect(state == .timeWait, sourceLocation: sourceLocation)
    }

    /// A lab whose connection is assured and has carried data both ways, each acknowledged.
    static func assured(_ family: Family, policy: Policy? = nil) -> Lab {
        let lab = Lab(family: family, policy: policy)
        lab.handshake()
        lab.data(.client, 100)
        lab.ackAll(.server)
        lab.data(.server, 200)
        lab.ackAll(.client)
        return lab
    }

    /// Checks every tracker counter; unnamed drop reasons must be zero.
    func expectCounters(seen: UInt64, accepted: UInt64, drops: [DropReason: UInt64] = [:], created: UInt64,
                        destroyed: UInt64, halfOpen: Int, sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        let counters = tracker.counters
        #expect(counters.seen == seen, "seen", sourceLocation: sourceLocation)
        #expect(counters.accepted == accepted, "accepted", sourceLocation: sourceLocation)
        #expect(counters.dropped == drops.values.reduce(0, +), "dropped", sourceLocation: sourceLocation)
        for reason in DropReason.allCases {
            #expect(counters[reason] == drops[reason, default: 0], "drops[\(reason)]", sourceLocation: sourceLocation)
        }
        #expect(counters.created == created, "created", sourceLocation: sourceLocation)
        #expect(counters.destroyed == destroyed, "destroyed", sourceLocation: sourceLocation)
        #expect(tracker.halfOpenCount == halfOpen, "halfOpenCount", sourceLocation: sourceLocation)
        // Every packet gets exactly one verdict.
        #expect(counters.seen == counters.accepted + counters.dropped, "seen = accepted + dropped",
                sourceLocation: sourceLocation)
    }
}

extension Connection {
    /// The connection with its packet and byte counters cleared, to compare tracking state only.
    var withoutAccounting: Connection {
        var copy = self
        copy.packetsOriginal = 0
        copy.packetsReply = 0
        copy.bytesOriginal = 0
        copy.bytesReply = 0
        return copy
    }
}
