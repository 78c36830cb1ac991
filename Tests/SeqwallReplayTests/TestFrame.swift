import SeqwallTestSupport
import Foundation

/// One frame to write: its time, the bytes kept, and its length on the wire (when the snap
/// length cut it).
struct TestFrame {
    var seconds: UInt64
    var nanoseconds: UInt64 = 0
    var bytes: [UInt8]
    var originalLength: Int? = nil
}
