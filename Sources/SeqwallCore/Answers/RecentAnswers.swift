/// The last few answers seqwall sent for rejected packets (AnswerTicket), for a short while, so
/// that an answer coming back through the queue passes even when the table holds nothing for
/// it: the refusal's entry could not be stored (a full table), or it went when the answer
/// first passed (host mode: an answer to the host itself crosses OUTPUT, then INPUT). Consulted
/// only for a packet the tracker would drop, so the packet path pays nothing for it.
public struct RecentAnswers: Sendable {
    public static let capacity = 16
    /// An answer reaches the queue again within microseconds; two seconds leave room for a
    /// loaded machine and still forget it long before anyone could replay it usefully.
    public static let lifetime: UInt64 = 2_000_000_000

    private var tickets: [AnswerTicket?]
    private var sentAt: [UInt64]
    private var next = 0
    private var newest: UInt64 = 0
    private var any = false

    /// Allocates its two small arrays once.
    public init() {
        tickets = [AnswerTicket?](repeating: nil, count: RecentAnswers.capacity)
        sentAt = [UInt64](repeating: 0, count: RecentAnswers.capacity)
    }

    public mutating func remember(_ ticket: AnswerTicket, now: UInt64) {
        tickets[next] = ticket
        sentAt[next] = now
        next = (next + 1) % RecentAnswers.capacity
        newest = now
        any = true
    }

    /// Whether any answer is recent enough to come back: one comparison for the common case.
    public func mayHold(now: UInt64) -> Bool { any && now &- newest < RecentAnswers.lifetime }

    /// Whether `ticket` is one of the recent answers (each passes any number of times within
    /// its lifetime: the host-mode answer to the host itself is seen on OUTPUT and on INPUT).
    public func contains(_ ticket: AnswerTicket, now: UInt64) -> Bool {
        for index in 0..<RecentAnswers.capacity where tickets[index] == ticket {
            if now &- sentAt[index] < RecentAnswers.lifetime { return true }
        }
        return false
    }
}
