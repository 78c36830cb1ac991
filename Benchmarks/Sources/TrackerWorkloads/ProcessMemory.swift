import SeqwallCore
#if canImport(Glibc)
import Glibc
#endif

/// What the daemon's HugePageRegions does for the tables' large arrays, so that the benchmark
/// measures the memory the daemon runs on: a fresh anonymous mapping for each, trimmed to start
/// on a huge page boundary and advised onto huge pages (madvise(2), MADV_HUGEPAGE) before
/// anything is written; unmapped when its table goes.
public let hugePageRegions = RegionProvider(allocate: { mapHugePageRegion($0) },
                                            release: { start, byteCount in _ = munmap(start, pageRounded(byteCount)) })

/// The regions a workload's tracker gets: the daemon's when `hugePages`, else the Swift heap's.
func regionProvider(hugePages: Bool) -> RegionProvider? {
    hugePages ? hugePageRegions : nil
}

private func mapHugePageRegion(_ byteCount: Int) -> UnsafeMutableRawPointer? {
    let huge = ConnectionTable.hugePageBytes
    let length = pageRounded(byteCount)
    let mapping = mmap(nil, length + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    guard let mapping, mapping != MAP_FAILED else { return nil }
    let lead = (huge - Int(bitPattern: mapping) % huge) % huge
    let start = mapping + lead
    if lead > 0 { _ = munmap(mapping, lead) }
    _ = munmap(start + length, huge - lead)
    _ = madvise(start, length, MADV_HUGEPAGE)
    return start
}

private func pageRounded(_ bytes: Int) -> Int {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    return (bytes + page - 1) / page * page
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
