import SeqwallCore

/// One connection as the CLI shows it (`conntrack list -o json`).
public struct ConnectionRecord: Codable, Sendable, Equatable {
    /// One direction's tuple: ports for TCP and UDP; type, code and identifier for ICMP echo
    /// (conntrack's own fields for it).
    public struct Tuple: Codable, Sendable, Equatable {
        public var src: String
        public var dst: String
        public var sport: UInt16?
        public var dport: UInt16?
        public var type: UInt8?
        public var code: UInt8?
        public var id: UInt16?
    }

    public struct PerDirection: Codable, Sendable, Equatable {
        public var orig: UInt64
        public var reply: UInt64
    }

    /// Window tracking state of one direction, for debugging.
    public struct Window: Codable, Sendable, Equatable {
        public var end: UInt32
        public var maxend: UInt32
        public var maxwin: UInt32
        public var scale: UInt8
        public var sack_permitted: Bool
    }

    /// "tcp", "udp", "icmp" or "icmpv6", as conntrack names them.
    public var proto: String
    public var family: String
    /// The TCP state; empty for the other protocols, which have none.
    public var state: String
    /// Seconds until expiry.
    public var timeout: UInt64
    public var orig: Tuple
    public var reply: Tuple
    public var assured: Bool
    public var unreplied: Bool
    /// A `reject` rule refused the flow: the entry only waits for the answer the kernel sends
    /// on seqwall's behalf (an RST, a port unreachable) and refuses repeats. Optional so that
    /// records from a daemon that did not send it still decode.
    public var rejected: Bool?
    /// A `synproxy` rule's connection, which seqwall opened toward the server after the
    /// client's cookie ACK and translates between the two halves (docs/synproxy.md); absent
    /// for every other connection.
    public var proxied: Bool?
    /// "in" or "out": which way the connection was opened relative to the protected side.
    public var direction: String
    public var packets: PerDirection
    public var bytes: PerDirection
    /// TCP only.
    public var window: [String: Window]?

    public init(_ connection: Connection, now: UInt64) {
        let key = connection.key
        let protocolName = TrackedProtocol(protocolNumber: key.protocolNumber) ?? .tcp
        proto = protocolName.conntrackName
        family = key.isIPv4 ? "ipv4" : "ipv6"
        state = protocolName == .tcp ? connection.state.name : ""
        timeout = connection.secondsLeft(now: now)
        if protocolName.hasPorts {
            orig = Tuple(src: key.source.description, dst: key.destination.description,
                         sport: key.sourcePort, dport: key.destinationPort)
            reply = Tuple(src: key.destination.description, dst: key.source.description,
                          sport: key.destinationPort, dport: key.sourcePort)
        } else {
            // The original direction is always the request (only a request opens an echo flow).
            let echo = ICMPEcho.fields(of: key)
            orig = Tuple(src: key.source.description, dst: key.destination.description,
                         type: echo.type, code: echo.code, id: echo.identifier)
            reply = Tuple(src: key.destination.description, dst: key.source.description,
                          type: echo.replyType, code: echo.code, id: echo.identifier)
        }
        assured = connection.status.contains(.assured)
        unreplied = !connection.status.contains(.seenReply)
        rejected = connection.status.contains(.rejected)
        proxied = connection.proxied ? true : nil
        direction = connection.direction.description
        packets = PerDirection(orig: connection.packetsOriginal, reply: connection.packetsReply)
        bytes = PerDirection(orig: connection.bytesOriginal, reply: connection.bytesReply)
        func window(_ peer: TCPPeerState) -> Window {
            Window(end: peer.end, maxend: peer.maxEnd, maxwin: peer.maxWindow, scale: peer.scale,
                   sack_permitted: peer.flags.contains(.sackPermitted))
        }
        if protocolName == .tcp {
            self.window = ["orig": window(connection.original), "reply": window(connection.reply)]
        }
    }
}
