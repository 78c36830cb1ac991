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
        guard let file = fopen(path, "r") else { return [:] }
        defer { fclose(file) }
        var text = ""
        var buffer = [CChar](repeating: 0, count: 512)
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            let line = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            text += String(decoding: line, as: UTF8.self)
        }
        return parse(text)
    }

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
