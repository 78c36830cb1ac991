/// The two directions of a connection, as the kernel numbers them (IP_CT_DIR_ORIGINAL/REPLY).
public enum FlowDirection: UInt8, Sendable {
    case original = 0
    case reply = 1

    public var opposite: FlowDirection { self == .original ? .reply : .original }
}

/// Per-direction window tracking state, after van Rooij and the kernel's ip_ct_tcp_state.
public struct TCPPeerState: Sendable, Equatable {
    /// Highest sequence number sent plus its length (td_end).
    public var end: UInt32 = 0
    /// Highest sequence number the receiver's window allows (td_maxend).
    public var maxEnd: UInt32 = 0
    /// Largest window seen from this side, scaled (td_maxwin). Zero means "nothing seen yet".
    public var maxWindow: UInt32 = 0
    /// Highest acknowledgment this side sent (td_maxack), valid with `.maxAckSet`.
    public var maxAck: UInt32 = 0
    /// Window scale shift, clamped to 14; zero unless both sides sent the option.
    public var scale: UInt8 = 0
    public var flags: PeerFlags = []

    public init() {}
}

/// The kernel's IP_CT_TCP_FLAG_* bits for one direction.
public struct PeerFlags: OptionSet, Sendable, Equatable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let windowScale = PeerFlags(rawValue: 0x01)
    public static let sackPermitted = PeerFlags(rawValue: 0x02)
    /// This side sent the first FIN.
    public static let closeInit = PeerFlags(rawValue: 0x04)
    /// This side's SYN was never seen (picked up mid-stream), so its window scale is unknown:
    /// its windows are shifted by the largest legal scale, 14 (TCPStateMachine.begin).
    public static let windowScaleUnknown = PeerFlags(rawValue: 0x08)
    /// This side sent data the other has not acknowledged yet.
    public static let dataUnacknowledged = PeerFlags(rawValue: 0x10)
    public static let maxAckSet = PeerFlags(rawValue: 0x20)
    /// This side may have sent data before the pickup that the tracker never saw: `end` is only
    /// a lower bound of what it sent, raised by the other side's ACKs, until a segment proves
    /// where it stands (TCPWindow, "Picked-up connections").
    public static let endUnknown = PeerFlags(rawValue: 0x40)
    /// This side's data came from a state file and may be behind what it sent while seqwall
    /// was down (ConnectionTracker+Restore.swift).
    public static let relearning = PeerFlags(rawValue: 0x80)
}

/// Which of the kernel's flag classes a segment belongs to (enum tcp_bit_set): the row of the
/// transition table.
public enum TCPFlagIndex: UInt8, Sendable {
    case syn = 0
    case synAck = 1
    case fin = 2
    case ack = 3
    case rst = 4
    case none = 5

    public init(_ flags: TCPFlags) {
        if flags.contains(.rst) { self = .rst }
        else if flags.contains(.syn) { self = flags.contains(.ack) ? .synAck : .syn }
        else if flags.contains(.fin) { self = .fin }
        else if flags.contains(.ack) { self = .ack }
        else { self = .none }
    }
}

/// Connection status bits, as conntrack shows them.
public struct ConnectionStatus: OptionSet, Sendable, Equatable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// A packet was seen in the reply direction (else `[UNREPLIED]`).
    public static let seenReply = ConnectionStatus(rawValue: 0x01)
    /// The handshake completed both ways (`[ASSURED]`); never evicted for a newcomer.
    public static let assured = ConnectionStatus(rawValue: 0x02)
    /// Both sides' SYNs crossed (simultaneous open, IP_CT_TCP_SIMULTANEOUS_OPEN).
    public static let simultaneousOpen = ConnectionStatus(rawValue: 0x04)
    /// A SYN seen in LAST_ACK may draw an RFC 5961 challenge ACK (IP_CT_EXP_CHALLENGE_ACK).
    public static let expectChallengeAck = ConnectionStatus(rawValue: 0x08)
    /// A `reject` rule refused this connection: the entry lives only until seqwall's RST
    /// answer has gone out (host mode queues it on OUTPUT), and re-rejects retransmitted SYNs.
    public static let rejected = ConnectionStatus(rawValue: 0x10)
    /// First seen mid-stream with `set pickup on`: no SYN was seen, its history is learned.
    public static let pickedUp = ConnectionStatus(rawValue: 0x20)
    /// An out-of-window FIN or RST from the original (reply) side was dropped since the last
    /// segment that passed: what the kernel's nf_tcp_handle_invalid notes in last_index, kept
    /// apart here so that a dropped segment never changes how the next one is judged.
    public static let droppedCloseOriginal = ConnectionStatus(rawValue: 0x40)
    public static let droppedCloseReply = ConnectionStatus(rawValue: 0x80)
}

/// One tracked connection: a plain value stored inline in the table.
public struct Connection: Sendable, Equatable {
    /// The endpoints as the first packet had them.
    public var key: FlowKey
    public var state: TCPState = .none
    public var status: ConnectionStatus = []
    /// Whether the connection came in toward the protected side or went out from it.
    public var direction: Direction
    public var original = TCPPeerState()
    public var reply = TCPPeerState()

    // What the kernel keeps about the last packet (last_index, last_dir, ...): it resolves
    // ignored SYNs, challenge ACKs, RST trains and retransmission counting.
    public var lastIndex: TCPFlagIndex = .none
    public var lastDirection: FlowDirection = .original
    public var lastSequence: UInt32 = 0
    public var lastAcknowledgment: UInt32 = 0
    public var lastEnd: UInt32 = 0
    public var lastWindow: UInt16 = 0
    public var lastWindowScale: UInt8 = 0
    /// Options of an ignored SYN, to adopt if the peer answers it (last_flags).
    public var lastPeerFlags: PeerFlags = []
    public var retransmissions: UInt8 = 0
    /// Which side sent a FIN, which closed actively, which FIN was acknowledged
    /// (CloseProgress). In what was padding before `wheelTick`: no extra bytes.
    public var closing: CloseProgress = []
    /// The tick at which the table's expiry wheel looks at this connection next (ExpiryWheel);
    /// kept by the table. It sits in what was padding before `expiresAt`: no extra bytes, and
    /// in the same cache line the packet path already touches.
    var wheelTick: UInt32 = 0

    /// When the connection expires, on the tracker's monotonic clock, in nanoseconds.
    public var expiresAt: UInt64 = 0
    public var packetsOriginal: UInt64 = 0
    public var packetsReply: UInt64 = 0
    public var bytesOriginal: UInt64 = 0
    public var bytesReply: UInt64 = 0
    /// When the connection was opened, on the tracker's clock: how old an unreplied half-open
    /// connection is, and which connection an UnrepliedQueue item means.
    public var createdAt: UInt64 = 0
    /// The per-source half-open counters this connection holds (HalfOpenLimiter), and the
    /// rule id of the `.rule` one; given back when it leaves half-open or goes away.
    public var halfOpenCharges: HalfOpenCharges = []
    public var chargedRule: UInt32 = 0

    public init(key: FlowKey, direction: Direction) {
        self.key = key
        self.direction = direction
    }

    public var replyKey: FlowKey { key.reversed }

    public func peer(_ direction: FlowDirection) -> TCPPeerState {
        direction == .original ? original : reply
    }

    public mutating func setPeer(_ direction: FlowDirection, _ state: TCPPeerState) {
        if direction == .original { original = state } else { reply = state }
    }

    /// Counts one accepted packet of `wireLength` bytes going `direction`; a packet in the reply
    /// direction also marks the connection as replied (`[UNREPLIED]` goes).
    @inline(__always)
    public mutating func count(_ direction: FlowDirection, wireLength: Int) {
        if direction == .original {
            packetsOriginal &+= 1
            bytesOriginal &+= UInt64(wireLength)
        } else {
            status.insert(.seenReply)
            packetsReply &+= 1
            bytesReply &+= UInt64(wireLength)
        }
    }

    /// Seconds left before expiry at `now` (0 when already due), as conntrack -L prints.
    public func secondsLeft(now: UInt64) -> UInt64 {
        expiresAt > now ? (expiresAt - now) / 1_000_000_000 : 0
    }
}
