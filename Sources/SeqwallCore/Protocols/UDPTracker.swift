/// UDP flows, as the kernel's nf_conntrack_proto_udp.c tracks them (docs/design.md, UDP and
/// ICMP flows): state NONE, `[UNREPLIED]` until the other side answers, and a short timeout
/// until traffic both ways has lasted a while, when the flow becomes a stream: assured, with
/// the long timeout.
public enum UDPTracker {
    /// How long after a UDP flow begins traffic both ways makes it a stream (the kernel's
    /// stream_ts, nf_conntrack_udp_packet: "still active after two seconds? Extend timeout").
    static let streamDelay: UInt64 = 2_000_000_000

    /// A new flow's first datagram: the short timeout.
    static func begin(_ connection: inout Connection, now: UInt64, timeouts: DatagramTimeouts) {
        connection.expiresAt = now &+ UInt64(timeouts.udpSingle) &* TCPStateMachine.nanosecondsPerSecond
    }

    /// A datagram of a flow the table holds (nf_conntrack_udp_packet), before it is counted:
    /// a flow that has seen a reply and is still active `streamDelay` after it began is a
    /// stream. The reply itself is counted after this (nf_conntrack_in sets IPS_SEEN_REPLY
    /// after the protocol's handler), so the first reply keeps the short timeout.
    static func track(_ connection: inout Connection, now: UInt64, timeouts: DatagramTimeouts) {
        let seconds: UInt32
        if connection.status.contains(.seenReply) && now &- connection.createdAt >= streamDelay {
            seconds = timeouts.udpStream
            connection.status.insert(.assured)
        } else {
            seconds = timeouts.udpSingle
        }
        connection.expiresAt = now &+ UInt64(seconds) &* TCPStateMachine.nanosecondsPerSecond
    }
}
