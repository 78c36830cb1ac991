/// How far each side of a relearning connection has got toward leaving its grace
/// (TCPWindow+Relearning.swift). A side's grace ends when both of its steps are done: what
/// its ACKs say (and so the other side's maxEnd) is current once it has sent an accepted
/// segment, but where its own data stands (its end) is only known once the other side has
/// acknowledged no more than that end.
///
/// One byte for both sides, in what would be padding of Connection. Never stored in a state
/// file or a sync record: a side restored or synced starts its grace anew.
public struct RelearnProgress: OptionSet, Sendable, Equatable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let originalSpoke = RelearnProgress(rawValue: 0x01)
    public static let originalEndConfirmed = RelearnProgress(rawValue: 0x02)
    public static let replySpoke = RelearnProgress(rawValue: 0x04)
    public static let replyEndConfirmed = RelearnProgress(rawValue: 0x08)

    /// The side going `direction` sent a segment that was accepted: its ACK and window are
    /// current.
    static func spoke(_ direction: FlowDirection) -> RelearnProgress {
        direction == .original ? .originalSpoke : .replySpoke
    }

    /// The other side sent an accepted ACK at or below the end of the side going `direction`
    /// without moving it.
    static func endConfirmed(_ direction: FlowDirection) -> RelearnProgress {
        direction == .original ? .originalEndConfirmed : .replyEndConfirmed
    }

    /// Both steps of the side going `direction`.
    static func complete(_ direction: FlowDirection) -> RelearnProgress {
        [spoke(direction), endConfirmed(direction)]
    }
}
