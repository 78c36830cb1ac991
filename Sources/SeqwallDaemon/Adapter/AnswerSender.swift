/// Where the answers to rejected packets go (RejectAnswer builds them): RejectSender's raw
/// sockets, or a fake in tests. Called once per answered reject, beside a system call.
protocol AnswerSender: AnyObject {
    /// Sends one answer, a whole IP packet of `length` bytes. `scope` is the interface the
    /// refused packet came in on (or went out on), for an IPv6 link-local destination.
    /// Returns the bytes sent, or -errno.
    func send(_ packet: UnsafeRawPointer, length: Int, scope: UInt32) -> Int
}
