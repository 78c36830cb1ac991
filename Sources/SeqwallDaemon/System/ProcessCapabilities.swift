#if canImport(Glibc)
import Glibc
#endif

/// This process's effective capabilities, from /proc/self/status (`CapEff:`, a hexadecimal
/// mask, bit N for capability N as linux/capability.h numbers them). Used to tell the
/// kernel's two EPERMs apart when a queue is bound: nfnetlink refuses a configuration message
/// from a sender without CAP_NET_ADMIN (nfnetlink_rcv_msg), and nfqnl_recv_config refuses a
/// queue another socket owns, with the same errno.
enum ProcessCapabilities {
    static let netAdmin = 12

    /// Whether the process holds `capability` in its effective set; nil when it cannot tell.
    static func hasEffective(_ capability: Int) -> Bool? {
        guard let mask = effectiveMask(status: readStatus()) else { return nil }
        return mask & (1 << UInt64(capability)) != 0
    }

    static func effectiveMask(status: String) -> UInt64? {
        for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
            return UInt64(line.dropFirst("CapEff:".count).trimmingCharacters(in: " \t"), radix: 16)
        }
        return nil
    }

    private static func readStatus() -> String { SystemCall.readText("/proc/self/status") }
}

private extension Substring {
    func trimmingCharacters(in set: String) -> Substring {
        var result = self
        while let first = result.first, set.contains(first) { result = result.dropFirst() }
        while let last = result.last, set.contains(last) { result = result.dropLast() }
        return result
    }
}
