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
    /// was down (TCPWindow+Relearning.swift).
    public static let relearning = PeerFlags(rawValue: 0x80)
}
