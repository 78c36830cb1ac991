#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SeqwallCore

/// The daemon's RegionProvider: each large region of the connection table and of an address
/// table's lookup arrays is a mapping of its own, made fresh, trimmed to start on a huge page
/// boundary and advised onto transparent huge pages before anything is written, so that its
/// first touches fault in huge pages (do_huge_pmd_anonymous_page) where the machine allows
/// them (`madvise` or `always` in /sys/kernel/mm/transparent_hugepage/enabled), and lookups in
/// a large table do not each miss the TLB. An aligned block of the C heap does not do: glibc
/// serves it from memory earlier allocations already faulted in as 4 KiB pages, which the
/// advice does not change (RegionProvider). Unmapped when its table goes.
enum HugePageRegions {
    static let provider = RegionProvider(allocate: { allocate($0) }, release: { release($0, $1) })

    private static let pageBytes = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// `byteCount` bytes on a huge page boundary, advised; nil when the kernel maps nothing
    /// (the table then takes its region from the Swift heap).
    static func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer? {
        let huge = ConnectionTable.hugePageBytes
        let length = pageRounded(byteCount)
        // Mapped a huge page longer than needed, so that an aligned start lies within it; the
        // ends before that start and after the region go back at once.
        guard let mapping = SystemCall.mapAnonymous(length + huge) else { return nil }
        let lead = (huge - Int(bitPattern: mapping) % huge) % huge
        let start = mapping + lead
        if lead > 0 { SystemCall.unmap(mapping, lead) }
        SystemCall.unmap(start + length, huge - lead)
        SystemCall.adviseHugePages(start, length)
        return start
    }

    /// Unmaps a region `allocate` returned for `byteCount` bytes.
    static func release(_ start: UnsafeMutableRawPointer, _ byteCount: Int) {
        SystemCall.unmap(start, pageRounded(byteCount))
    }

    private static func pageRounded(_ bytes: Int) -> Int { (bytes + pageBytes - 1) / pageBytes * pageBytes }
}
