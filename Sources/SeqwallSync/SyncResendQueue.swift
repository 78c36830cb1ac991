/// The data messages sent and not yet acknowledged, for resending when the peer says it
/// missed them (conntrackd's FTFW resend queue). Bounded: when full, the oldest is dropped;
/// a peer that then asks for it is told it is gone (a skip message) and asks for a bulk.
struct SyncResendQueue {
    let capacity: Int
    /// In data-sequence order, oldest first.
    private(set) var held: [SyncMessage] = []
    private(set) var dropped: UInt64 = 0

    init(capacity: Int) { self.capacity = max(1, capacity) }

    var count: Int { held.count }

    mutating func append(_ message: SyncMessage) {
        if held.count == capacity {
            held.removeFirst()
            dropped += 1
        }
        held.append(message)
    }

    /// The peer has every data message before `next`.
    mutating func acknowledge(before next: UInt32) {
        held.removeAll { $0.dataSequence &- next > UInt32.max / 2 }
    }

    /// The held messages in `first...last`, and whether some of that range is no longer held.
    func messages(from first: UInt32, through last: UInt32) -> (found: [SyncMessage], missing: Bool) {
        let found = held.filter { $0.dataSequence >= first && $0.dataSequence <= last }
        return (found, found.count < Int(last - first) + 1)
    }

    /// The oldest data sequence still held, nil when nothing is.
    var oldest: UInt32? { held.first?.dataSequence }
}
