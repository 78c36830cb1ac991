@testable import SeqwallDaemon

/// Keeps the answers to rejected packets a worker sends, instead of sending them.
final class FakeAnswerSender: AnswerSender {
    private(set) var answers: [(bytes: [UInt8], scope: UInt32)] = []
    /// The errno every send fails with; 0: they succeed.
    var failure: Int32 = 0

    func send(_ packet: UnsafeRawPointer, length: Int, scope: UInt32) -> Int {
        answers.append((Array(UnsafeRawBufferPointer(start: packet, count: length)), scope))
        return failure != 0 ? -Int(failure) : length
    }
}
