import SeqwallCore
import SeqwallTestSupport
import Testing

/// The pickup grace period (docs/design.md, Pickup) and who opened a
/// picked-up connection (PickupOpener): with pickup off, connections first seen mid-stream are
/// picked up until the grace period's deadline, judged by the rules as opened from the end on
/// an ephemeral port, or from either end when the ports do not tell.
@Suite("Pickup grace period and the opener of a picked-up connection")
struct PickupGraceTests {
    static let clientBase: UInt32 = 7_000_000
    static let serverBase: UInt32 = 3_000_000_000

    /// Pickup off (the default); the default policy passes inbound port 80 only.
    static func lab(_ family: Family = .ipv4, grace: UInt32 = 60, configure: (inout Policy) -> Void = { _ in }) -> Lab {
        var policy = Lab.defaultPolicy(family)
        policy.pickupGrace = grace
        configure(&policy)
        return Lab(family: family, policy: policy, clientISN: clientBase, serverISN: serverBase)
    }

    // MARK: The opener, by ports

    @Test(arguments: [
        (UInt16(40000), UInt16(22), PickupOpener.sender),      // client to server
        (22, 40000, .receiver),                                 // server to client
        (32768, 60999, .unknown), (60999, 32768, .unknown),     // both ephemeral (the bounds)
        (22, 80, .unknown), (32767, 61000, .unknown),           // neither (just outside)
        (32768, 1, .sender), (1, 60999, .receiver),
    ] as [(UInt16, UInt16, PickupOpener)])
    func openerByPorts(source: UInt16, destination: UInt16, opener: PickupOpener) {
        #expect(PickupOpener(sourcePort: source, destinationPort: destination,
                             ephemeral: Policy().ephemeralPorts) == opener)
    }

    @Test func defaults() {
        #expect(Policy().pickupGrace == 60)
        #expect(Policy().ephemeralPorts == PortRange(32768, 60999))
        #expect(Policy().pickup == false)
    }

    // MARK: The grace deadline

    @Test(arguments: Family.allCases)
    func strictUntilAGracePeriodStarts(family: Family) {
        let lab = Self.lab(family)
        #expect(lab.tracker.pickupGraceEnds == nil)
        #expect(lab.data(.client, 100) == .drop(.noConnection))
        #expect(lab.tracker.connectionCount == 0)
        #expect(lab.tracker.counters.pickedUp == 0)
    }

    @Test(arguments: Family.allCases)
    func pickedUpDuringTheGracePeriodAndCheckedAfterIt(family: Family) throws {
        let lab = Self.lab(family, grace: 60)
        lab.window = 502
        lab.tracker.startPickupGrace(now: lab.now)
        #expect(lab.tracker.pickupGraceEnds == lab.now + 60 * nanosecondsPerSecond)
        #expect(lab.data(.client, 100) == .accept)
        let connection = try #require(lab.connection)
        #expect(connection.state == .established)
        #expect(connection.status.contains(.pickedUp))
        #expect(connection.direction == .inbound)
        #expect(lab.tracker.counters.pickedUp == 1)
        #expect(lab.ackAll(.server) == .accept)
        #expect(lab.ackAll(.client) == .accept)

        // The deadline passes: the connection stays and is still checked; a new one seen
        // mid-stream is not picked up.
        lab.advance(seconds: 60)
        #expect(!lab.tracker.picksUp(now: lab.now))
        #expect(lab.data(.client, 100) == .accept)
        #expect(lab.data(.server, 100) == .accept)
        #expect(lab.send(.client, [.ack, .psh], seq: lab.clientNext &+ 400_000_000, ack: lab.serverNext,
                         payload: 10) == .drop(.seqAboveWindow))
        lab.clientPort = 40001
        #expect(lab.data(.client, 100) == .drop(.noConnection))
        #expect(lab.tracker.connectionCount == 1)
        #expect(lab.tracker.counters.pickedUp == 1)
    }

    @Test func theDeadlineIsExclusive() {
        let lab = Self.lab(grace: 5)
        lab.tracker.startPickupGrace(now: lab.now)
        lab.now += 5 * nanosecondsPerSecond - 1
        #expect(lab.tracker.picksUp(now: lab.now))
        lab.now += 1
        #expect(!lab.tracker.picksUp(now: lab.now))
        #expect(lab.data(.client, 100) == .drop(.noConnection))
    }

    @Test func graceZeroStartsNone() {
        let lab = Self.lab(grace: 0)
        lab.tracker.startPickupGrace(now: lab.now)
        #expect(lab.tracker.pickupGraceEnds == nil)
        #expect(lab.data(.client, 100) == .drop(.noConnection))
    }

    // What the daemon does on `conntrack flush`: empty the table, start a grace period. The
    // connections carry on. `conntrack delete` only removes: the next segment is cut.
    @Test func flushStartsAGracePeriodDeleteDoesNot() {
        let lab = Self.lab()
        lab.handshake()
        #expect(lab.data(.client, 100) == .accept)
        #expect(lab.tracker.removeConnections { _ in true } == 1)
        #expect(lab.data(.client, 100) == .drop(.noConnection))
        lab.tracker.startPickupGrace(now: lab.now)
        #expect(lab.data(.client, 100) == .accept)
        #expect(lab.data(.server, 100) == .accept)
        #expect(lab.tracker.counters.pickedUp == 1)
    }

    @Test func aReloadStartsNoGracePeriod() {
        let lab = Self.lab()
        var policy = lab.tracker.policy
        policy.pickupGrace = 120
        lab.tracker.replacePolicy(policy)
        #expect(lab.tracker.pickupGraceEnds == nil)
        #expect(lab.data(.client, 100) == .drop(.noConnection))
    }

    @Test func aReloadKeepsTheDeadlineOrEndsItWithZero() {
        let lab = Self.lab(grace: 60)
        lab.tracker.startPickupGrace(now: lab.now)
        let ends = lab.tracker.pickupGraceEnds
        var policy = lab.tracker.policy
        policy.pickupGrace = 600
        lab.tracker.replacePolicy(policy)
        #expect(lab.tracker.pickupGraceEnds == ends)
        policy.pickupGrace = 0
        lab.tracker.replacePolicy(policy)
        #expect(lab.tracker.pickupGraceEnds == nil)
        #expect(lab.data(.client, 100) == .drop(.noConnection))
    }

    // `set pickup on` keeps its meaning: pickup at any time, grace period or not.
    @Test func pickupOnNeedsNoGracePeriod() {
        let lab = Self.lab(grace: 0) { $0.pickup = true }
        #expect(lab.data(.client, 100) == .accept)
        #expect(lab.tracker.counters.pickedUp == 1)
    }

    // MARK: Who opened it

    // The server speaks first (a banner, an answer): the client is still the opener. The
    // entry is the client's, the first segment goes in the reply direction, and the entry is
    // not assured, with the short timeout, until the client has spoken too.
    @Test(arguments: Family.allCases)
    func serverFirstKeepsTheClientAsOpener(family: Family) throws {
        let lab = Self.lab(family)
        lab.window = 502
        lab.tracker.startPickupGrace(now: lab.now)
        #expect(lab.data(.server, 200) == .accept)
        let (_, direction) = try #require(lab.tracker.connection(for: lab.key))
        #expect(direction == .original)     // the key is the client's: client -> server:80
        var connection = try #require(lab.connection)
        #expect(connection.key == lab.key)
        #expect(connection.direction == .inbound)
        #expect(connection.state == .established)
        #expect(connection.packetsOriginal == 0 && connection.packetsReply == 1)
        #expect(connection.reply.maxWindow != 0 && connection.original.maxWindow == 0)
        #expect(!connection.status.contains(.assured))
        #expect(lab.secondsLeft == 300)

        lab.advance(seconds: 1)
        #expect(lab.data(.server, 200) == .accept)
        connection = try #require(lab.connection)
        #expect(!connection.status.contains(.assured))
        #expect(lab.secondsLeft == 300)

        #expect(lab.ackAll(.client) == .accept)
        connection = try #require(lab.connection)
        #expect(connection.status.contains(.assured))
        #expect(lab.secondsLeft == 5 * 24 * 3600)
        // Checked from then on, both ways (TCPWindow, "Picked-up connections").
        #expect(lab.data(.client, 100) == .accept)
        #expect(lab.data(.server, 100) == .accept)
        #expect(lab.send(.server, [.ack, .psh], seq: lab.serverNext &+ 400_000_000, ack: lab.clientNext,
                         payload: 10) == .drop(.seqAboveWindow))
        #expect(lab.tracker.counters.pickedUp == 1)
    }

    // An inbound connection to a blocked port is never picked up, whichever side speaks
    // first. Judged by who spoke first, the server's segment would be an outbound connection
    // (default out pass) and pass.
    @Test(arguments: Family.allCases, [Side.client, .server])
    func inboundToABlockedPortIsNeverPickedUp(family: Family, first: Side) {
        let lab = Self.lab(family)
        lab.serverPort = 81
        lab.tracker.startPickupGrace(now: lab.now)
        #expect(lab.data(first, 100) == .drop(.rule))
        #expect(lab.data(first == .client ? .server : .client, 100) == .drop(.rule))
        #expect(lab.tracker.connectionCount == 0)
        #expect(lab.tracker.counters.pickedUp == 0)
    }

    // Host mode: the hook gives the segment's way; the connection goes the other way when the
    // segment's receiver opened it. Here the client is remote, the server this host.
    @Test(arguments: [(UInt16(80), Verdict.accept), (81, .drop(.rule))])
    func hostModeServerFirst(serverPort: UInt16, verdict: Verdict) throws {
        let lab = Self.lab()
        lab.serverPort = serverPort
        lab.tracker.startPickupGrace(now: lab.now)
        #expect(lab.send(.server, [.ack, .psh], seq: Self.serverBase, ack: Self.clientBase, payload: 10,
                         hook: .output) == verdict)
        if verdict == .accept {
            let connection = try #require(lab.connection)
            #expect(connection.key == lab.key)
            #expect(connection.direction == .inbound)
        } else {
            #expect(lab.tracker.connectionCount == 0)
        }
    }

    // An outbound connection from this host to a remote server speaks first from the remote
    // end: still outbound, still passed by `default out pass`.
    @Test func hostModeOutboundRemoteServerFirst() throws {
        let lab = Self.lab()
        lab.tracker.startPickupGrace(now: lab.now)
        // The "server" of the lab is the remote end here: port 443 answering this host's 40000.
        lab.serverPort = 443
        #expect(lab.send(.server, [.ack, .psh], seq: Self.serverBase, ack: Self.clientBase, payload: 10,
                         hook: .input) == .accept)
        let connection = try #require(lab.connection)
        #expect(connection.key == lab.key)
        #expect(connection.direction == .outbound)
    }

    // Ports that do not tell: picked up only if the rules pass the connection opened from
    // either end; the entry then keeps the first sender as opener.
    @Test(arguments: [
        (UInt16(1000), UInt16(80), Verdict.accept),     // neither ephemeral: in to 80 passes, out from 80 passes
        (1000, 81, .drop(.rule)),                        // in to 81 is blocked
        (40000, 50000, .drop(.rule)),                    // both ephemeral: in to 50000 is blocked
    ] as [(UInt16, UInt16, Verdict)])
    func portsThatDoNotTell(clientPort: UInt16, serverPort: UInt16, verdict: Verdict) throws {
        for first in [Side.client, .server] {
            let lab = Self.lab()
            lab.clientPort = clientPort
            lab.serverPort = serverPort
            lab.tracker.startPickupGrace(now: lab.now)
            #expect(lab.data(first, 100) == verdict, "\(first) first")
            if verdict == .accept {
                let connection = try #require(lab.connection)
                #expect(connection.key == (first == .client ? lab.key : lab.key.reversed))
            } else {
                #expect(lab.tracker.connectionCount == 0)
            }
        }
    }

    // Both orientations must pass: an outbound rule blocking the reverse refuses the pickup.
    @Test func portsThatDoNotTellNeedBothOrientations() {
        let lab = Self.lab { $0.defaultOutbound = .block }
        lab.clientPort = 1000
        lab.tracker.startPickupGrace(now: lab.now)
        #expect(lab.data(.client, 100) == .drop(.rule))
        #expect(lab.data(.server, 100) == .drop(.rule))
        #expect(lab.tracker.connectionCount == 0)
    }

    // `set pickup ephemeral-ports` moves the range: with 49152-65535, 40000 is no longer a
    // client port, and a server answering it no longer tells who opened the connection.
    @Test func ephemeralRangeIsASetting() throws {
        let lab = Self.lab { $0.ephemeralPorts = PortRange(49152, 65535) }
        lab.clientPort = 50000
        lab.tracker.startPickupGrace(now: lab.now)
        #expect(lab.data(.server, 100) == .accept)
        let connection = try #require(lab.connection)
        #expect(connection.key == lab.key)
        #expect(PickupOpener(sourcePort: 80, destinationPort: 40000, ephemeral: PortRange(49152, 65535)) == .unknown)
    }
}
