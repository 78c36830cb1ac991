/// Why a packet was dropped. One stable kebab-case name each (docs/design.md, Verdicts and drop
/// reasons); counted per reason. Raw values index the counter arrays: append new reasons, never
/// reorder or rename.
public enum DropReason: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    /// The packet is shorter than its own headers say.
    case truncated
    /// A header field is impossible (IP version, IHL, lengths, TCP data offset).
    case badHeader
    /// A TCP option runs past the header or has a length below 2.
    case badOptions
    /// A TCP flag combination no valid segment has (NULL, SYN|FIN, Xmas, FIN without ACK, ...).
    case badFlags
    /// An IP fragment: seqwall judges whole datagrams, which the shipped diversions have the
    /// kernel reassemble (docs/design.md, Fragments); a fragment reaches it only through a
    /// diversion without reassembly, or as an IPv6 first fragment the kernel would not
    /// reassemble.
    case fragment
    /// A non-SYN segment for a connection the table does not hold.
    case noConnection
    /// A rule (or the default) blocked or rejected a new connection.
    case rule
    case synRate
    case halfOpenLimit
    /// The table is full and nothing could be evicted for the new connection.
    case tableFull
    /// Data beyond what the receiver's window allows.
    case seqAboveWindow
    /// Acknowledges data that the other side never sent.
    case ackAboveSent
    case rstOutOfWindow
    /// Flags that make no sense in the connection's state (e.g. a SYN-ACK from the client).
    case badTransition
    /// Same source and destination address and port (land attack).
    case land
    /// A protocol seqwall does not track (not TCP, UDP, ICMP echo or an ICMP error), and the
    /// direction's default policy blocks it.
    case unsupportedProtocol
    /// An RST that would end TIME_WAIT early (TIME-WAIT assassination, RFC 1337).
    case timeWaitRST
    /// An ICMP or ICMPv6 error that quotes no tracked connection, quotes one but goes to the
    /// wrong host, or quotes a TCP sequence number outside that connection's window.
    case icmpUnrelated
    /// A connection completing its handshake would take its source over `limit conn N
    /// per-source` (global, or the rule's); the connection is removed.
    case connLimit
    /// A connection completing its handshake found its source's `limit conn-rate` bucket
    /// empty; the connection is removed.
    case connRate
    /// A handshake segment of a `synproxy` rule that seqwall answered with segments of its own
    /// (docs/synproxy.md): the client's SYN (answered with the cookie SYN-ACK), the client's
    /// ACK with a good cookie (answered with the SYN to the server), the server's SYN-ACK
    /// (answered with the ACK to the server and the window update to the client), the
    /// server's RST to that SYN (answered with an RST to the client).
    case synProxyHandshake
    /// An ACK for no connection, on a `synproxy` rule, whose acknowledgment number is no cookie
    /// seqwall made (forged, stale, or for another tuple).
    case synProxyBadCookie
    /// A packet of a proxied connection that reached seqwall cut short (the queue's copy range
    /// below its length): it cannot be translated and sent back whole (docs/synproxy.md).
    case synProxyShortCopy
    /// The SYN of a `synproxy` rule on a queue that does not proxy (`seqwall run
    /// --synproxy-queue` names others): the diversion sends this port to the wrong queue, whose
    /// copies are too short for the proxied connection's packets (docs/synproxy.md).
    case synProxyWrongQueue

    public var name: String {
        switch self {
        case .truncated: "truncated"
        case .badHeader: "bad-header"
        case .badOptions: "bad-options"
        case .badFlags: "bad-flags"
        case .fragment: "fragment"
        case .noConnection: "no-connection"
        case .rule: "rule"
        case .synRate: "syn-rate"
        case .halfOpenLimit: "half-open-limit"
        case .tableFull: "table-full"
        case .seqAboveWindow: "seq-above-window"
        case .ackAboveSent: "ack-above-sent"
        case .rstOutOfWindow: "rst-out-of-window"
        case .badTransition: "bad-transition"
        case .land: "land"
        case .unsupportedProtocol: "unsupported-protocol"
        case .timeWaitRST: "time-wait-rst"
        case .icmpUnrelated: "icmp-unrelated"
        case .connLimit: "conn-limit"
        case .connRate: "conn-rate"
        case .synProxyHandshake: "synproxy-handshake"
        case .synProxyBadCookie: "synproxy-bad-cookie"
        case .synProxyShortCopy: "synproxy-short-copy"
        case .synProxyWrongQueue: "synproxy-wrong-queue"
        }
    }

    public var description: String { name }

    public init?(name: String) {
        guard let reason = DropReason.allCases.first(where: { $0.name == name }) else { return nil }
        self = reason
    }
}
