import SeqwallCore
#if canImport(Glibc)
import Glibc
#endif

/// What the daemon asks the kernel for the table's large arrays (ConnectionTable's memory
/// advisor), so that the benchmark measures the memory the daemon runs on.
public func adviseHugePages(_ start: UnsafeMutableRawPointer, _ length: Int) {
    _ = madvise(start, length, MADV_HUGEPAGE)
}

/// The advisor a workload's tracker gets: the daemon's when `hugePages`, else none.
func memoryAdvisor(hugePages: Bool) -> ConnectionTable.MemoryAdvisor? {
    guard hugePages else { return nil }
    return { start, length in adviseHugePages(start, length) }
}

/// The anonymous memory of this process on transparent huge pages, in bytes
/// (/proc/self/smaps_rollup): shows whether the advice took.
public func residentHugePageBytes() -> Int {
    guard let file = fopen("/proc/self/smaps_rollup", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = cLine(line)
        guard text.hasPrefix("AnonHugePages:") else { continue }
        let fields = text.split(separator: " ", omittingEmptySubsequences: true)
        return fields.count >= 2 ? (Int(fields[1]) ?? 0) * 1024 : 0
    }
    return 0
}

/// Resident set size of this process, from /proc/self/statm (resident pages * page size).
public func residentBytes() -> Int {
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    guard fgets(&line, Int32(line.count), file) != nil else { return 0 }
    let fields = cLine(line).split(separator: " ")
    guard fields.count >= 2, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// The text `fgets` left in `buffer`, up to its terminating NUL.
private func cLine(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
