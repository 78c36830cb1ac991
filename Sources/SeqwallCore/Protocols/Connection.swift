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
    /// (CloseProgress). It fills what would be padding before `wheelTick`.
    public var closing: CloseProgress = []
    /// A `synproxy` rule's connection, opened by seqwall toward the server after the client's
    /// cookie ACK: its packets are translated between the two halves' numbers, and its
    /// SynProxyState sits in the table's side table under the same slot (docs/synproxy.md).
    /// A byte of its own, in what would be padding beside `closing`, because the status bits
    /// are all taken; it shares the cache line of `expiresAt`, which every packet reads.
    public internal(set) var proxied = false
    /// How far each side of a relearning connection is through its grace (RelearnProgress),
    /// in the last byte of padding before `wheelTick`.
    public var relearned: RelearnProgress = []
    /// The tick at which the table's expiry wheel looks at this connection next (ExpiryWheel);
    /// kept by the table. It fills what would be padding before `expiresAt`, in the cache line
    /// the packet path already touches.
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

    /// Seconds left before expiry at `now` (0 when already due), as conntrack -L prints.
    public func secondsLeft(now: UInt64) -> UInt64 {
        expiresAt > now ? (expiresAt - now) / 1_000_000_000 : 0
    }
}
