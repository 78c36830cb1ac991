import SeqwallControl
#if canImport(Glibc)
import Glibc
#endif

/// The kernel's own figures per queue, from /proc/net/netfilter/nfnetlink_queue (one line per
/// bound queue: queue, portid, queue_total, copy_mode, copy_range, queue_dropped,
/// user_dropped, id_sequence, 1).
enum KernelQueueStatistics {
    static let path = "/proc/net/netfilter/nfnetlink_queue"

    static func read(from path: String = KernelQueueStatistics.path) -> [UInt16: StatsRecord.KernelQueue] {
        parse(text(of: path))
    }

    /// The netlink port id that owns each bound queue (the second field).
    static func owners(from path: String = KernelQueueStatistics.path) -> [UInt16: UInt32] {
        var result: [UInt16: UInt32] = [:]
        for line in text(of: path).split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, let queue = UInt16(fields[0]), let port = UInt32(fields[1]) else { continue }
            result[queue] = port
        }
        return result
    }

    private static func text(of path: String) -> String { SystemCall.readText(path) }

    static func parse(_ text: String) -> [UInt16: StatsRecord.KernelQueue] {
        var result: [UInt16: StatsRecord.KernelQueue] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map { UInt64($0) }
            guard fields.count >= 7, let queue = fields[0], queue <= UInt64(UInt16.max),
                  let total = fields[2], let queueDropped = fields[5], let userDropped = fields[6] else { continue }
            result[UInt16(queue)] = StatsRecord.KernelQueue(queue_total: total, queue_dropped: queueDropped,
                                                            user_dropped: userDropped)
        }
        return result
    }
}
