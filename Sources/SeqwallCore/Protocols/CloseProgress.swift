/// How far each side of a connection has closed, as the tracker saw it: what the kernel's
/// transition table does not keep (its columns only know that some FIN was seen). It tells a
/// repeated FIN from a new one, and which endpoint, if any, is in TIME_WAIT (docs/design.md,
/// RSTs and TIME_WAIT).
///
/// An endpoint goes through TIME_WAIT when it closes actively: its FIN leaves before the other
/// side's FIN has reached it (RFC 9293 3.6: FIN-WAIT-1 -> FIN-WAIT-2 or CLOSING -> TIME-WAIT),
/// which is the first FIN, and in a simultaneous close the second one too. A FIN that
/// acknowledges the other side's FIN is the passive close (CLOSE-WAIT -> LAST-ACK -> CLOSED):
/// that endpoint never is in TIME_WAIT.
public struct CloseProgress: OptionSet, Sendable, Equatable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The original (reply) side sent a FIN that passed.
    public static let finOriginal = CloseProgress(rawValue: 0x01)
    public static let finReply = CloseProgress(rawValue: 0x02)
    /// Its first FIN did not acknowledge the other side's FIN: it closes through TIME_WAIT.
    public static let activeOriginal = CloseProgress(rawValue: 0x04)
    public static let activeReply = CloseProgress(rawValue: 0x08)
    /// The other side acknowledged its FIN.
    public static let finAckedOriginal = CloseProgress(rawValue: 0x10)
    public static let finAckedReply = CloseProgress(rawValue: 0x20)

    /// Every bit the tracker sets; anything else in a state file is corruption.
    public static let known = CloseProgress(rawValue: 0x3F)

    public static func fin(_ direction: FlowDirection) -> CloseProgress {
        direction == .original ? .finOriginal : .finReply
    }

    public static func active(_ direction: FlowDirection) -> CloseProgress {
        direction == .original ? .activeOriginal : .activeReply
    }

    public static func finAcked(_ direction: FlowDirection) -> CloseProgress {
        direction == .original ? .finAckedOriginal : .finAckedReply
    }

    /// Whether the endpoint on `side` is in TIME_WAIT: it closed actively, and both FINs and
    /// the last ACK have crossed. RFC 1337 protects it from RSTs addressed to it.
    public func inTimeWait(_ side: FlowDirection) -> Bool {
        contains(.active(side)) && contains([.finAckedOriginal, .finAckedReply])
    }

    /// What a state file written before this bookkeeping existed implies: a side whose FIN
    /// moved the connection to FIN_WAIT (the kernel's IP_CT_TCP_FLAG_CLOSE_INIT) sent the
    /// first FIN, so it closed actively. Nothing is assumed acknowledged, so no RST is dropped
    /// as `time-wait-rst` for such a connection: every RST is judged (RFC 5961).
    public static func implied(original: PeerFlags, reply: PeerFlags) -> CloseProgress {
        var progress: CloseProgress = []
        if original.contains(.closeInit) { progress.formUnion([.finOriginal, .activeOriginal]) }
        if reply.contains(.closeInit) { progress.formUnion([.finReply, .activeReply]) }
        return progress
    }
}
