/// One block of memory holding the read-only arrays of an address table's matcher
/// (PrefixMatcher): its directories and its flips, IPv4 and IPv6, laid out one after the other.
///
/// At a million prefixes these arrays span some 2,000 4 KiB pages, and a lookup of a random
/// address reads a directory line and a line or two of flips on pages of their own: on small
/// pages nearly every lookup pays a TLB miss (a page walk) on top of its cache misses
/// (BENCHMARKS.md, Address tables). Held in one allocation, the arrays start on a huge page
/// boundary and come from the owner's RegionProvider, as the connection table's do
/// (MemoryRegion), so that they are faulted in as huge pages.
///
/// Built on the control thread and freed wherever the last reference to its table goes, which
/// the daemon keeps on the control thread (a worker never frees a table).
public final class LookupRegion: @unchecked Sendable {
    private let memory: MemoryRegion
    private var base: UnsafeMutableRawPointer { memory.base }
    /// Bytes laid out so far (`array`), each array on a cache line.
    private var used = 0
    let byteCount: Int

    /// Room for arrays of `byteCounts` bytes each (every one rounded up to a 64-byte line).
    init(byteCounts: [Int], provider: RegionProvider?) {
        byteCount = max(64, byteCounts.reduce(0) { $0 + LookupRegion.lineRounded($1) })
        memory = MemoryRegion(byteCount: byteCount, provider: provider)
    }

    deinit { memory.release() }

    private static func lineRounded(_ bytes: Int) -> Int { (bytes + 63) & ~63 }

    /// Copies `elements` into the next free part of the region, in the order the sizes were
    /// given, and returns a read-only view of them, valid as long as the region lives.
    func array<Element: BitwiseCopyable>(_ elements: [Element]) -> LookupArray<Element> {
        let bytes = elements.count * MemoryLayout<Element>.stride
        precondition(used + bytes <= byteCount, "a lookup array outside its region")
        let start = base.advanced(by: used).bindMemory(to: Element.self, capacity: elements.count)
        elements.withUnsafeBufferPointer { source in
            if let address = source.baseAddress { start.initialize(from: address, count: elements.count) }
        }
        used += LookupRegion.lineRounded(bytes)
        return LookupArray(start: UnsafePointer(start), count: elements.count)
    }
}
