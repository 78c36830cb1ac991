import Foundation
import SeqwallCore
@testable import SeqwallDaemon
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's regions for large tables (HugePageRegions): a mapping of their own, starting on
/// a huge page boundary and exactly as long as asked (page-rounded), on transparent huge pages
/// once touched where the kernel allows them, and unmapped when released. Read back from
/// /proc/self/smaps, the kernel's own account of the process's mappings (proc(5)).
final class HugePageRegionsTests: XCTestCase {
    /// Four whole huge pages and a partial fifth.
    static let byteCount = 4 * ConnectionTable.hugePageBytes + 12_345

    func testARegionIsAlignedOwnMappingOnHugePagesAndUnmappedOnRelease() throws {
        let enabled = SystemCall.readText("/sys/kernel/mm/transparent_hugepage/enabled")
        guard enabled.contains("[always]") || enabled.contains("[madvise]") else {
            throw XCTSkip("transparent huge pages are off on this machine (enabled: \(enabled.isEmpty ? "absent" : enabled))")
        }
        let byteCount = HugePageRegionsTests.byteCount
        let pageBytes = Int(sysconf(Int32(_SC_PAGESIZE)))
        let length = (byteCount + pageBytes - 1) / pageBytes * pageBytes
        let region = try XCTUnwrap(HugePageRegions.allocate(byteCount))
        let start = Int(bitPattern: region)
        XCTAssertEqual(start % ConnectionTable.hugePageBytes, 0)

        // The over-mapped ends are gone: the mapping is the region, advised (`hg` in VmFlags).
        let mapping = try XCTUnwrap(SmapsEntry.all().first { $0.contains(start) })
        XCTAssertEqual(mapping.start, start)
        XCTAssertEqual(mapping.end, start + length)
        XCTAssertTrue(mapping.flags.contains("hg"), "not advised: \(mapping.flags)")

        for offset in stride(from: 0, to: byteCount, by: pageBytes) { region.storeBytes(of: 0xA5, toByteOffset: offset, as: UInt8.self) }
        let touched = try XCTUnwrap(SmapsEntry.all().first { $0.contains(start) })
        // Every whole huge page of the region, not the partial last one (small pages).
        XCTAssertEqual(touched.anonHugePagesKiB, 4 * ConnectionTable.hugePageBytes / 1024)

        HugePageRegions.release(region, byteCount)
        XCTAssertFalse(SmapsEntry.all().contains { $0.start < start + length && $0.end > start })
    }

    /// Each step goes through the system-call seam: mmap of a huge page more than asked, the
    /// ends unmapped, madvise of the region; release is one munmap.
    func testTheRegionsCallsGoThroughTheSeam() throws {
        try SystemCallMock.withMock { mock in
            let byteCount = HugePageRegionsTests.byteCount
            let pageBytes = Int(sysconf(Int32(_SC_PAGESIZE)))
            let length = (byteCount + pageBytes - 1) / pageBytes * pageBytes
            let region = try XCTUnwrap(HugePageRegions.allocate(byteCount))
            HugePageRegions.release(region, byteCount)
            let calls = mock.calls
            XCTAssertEqual(calls.first, .init(name: "mmap", argument: "\(length + ConnectionTable.hugePageBytes)"))
            let trimmed = calls.dropFirst().prefix { $0.name == "munmap" }
            XCTAssertTrue((1...2).contains(trimmed.count))
            XCTAssertEqual(trimmed.map { Int($0.argument)! }.reduce(0, +), ConnectionTable.hugePageBytes)
            XCTAssertEqual(Array(calls.dropFirst(1 + trimmed.count)),
                           [.init(name: "madvise", argument: "\(length)"), .init(name: "munmap", argument: "\(length)")])
        }
    }

    /// When the kernel maps nothing, a table takes its regions from the Swift heap, still on
    /// huge page boundaries, and gives nothing to munmap when it goes.
    func testATableWhoseMappingFailsUsesTheHeap() {
        SystemCallMock.withMock { mock in
            mock.fail("mmap", errno: ENOMEM)
            XCTAssertNil(HugePageRegions.allocate(HugePageRegionsTests.byteCount))
            do {
                let table = ConnectionTable(limit: 100_000, regionProvider: HugePageRegions.provider)
                XCTAssertEqual(table.limit, 100_000)
            }
            XCTAssertEqual(mock.calls.map(\.name), ["mmap", "mmap", "mmap"])
        }
    }
}

/// One mapping of /proc/self/smaps: its range, its VmFlags and its AnonHugePages.
private struct SmapsEntry {
    let start: Int
    let end: Int
    var flags: [Substring] = []
    var anonHugePagesKiB = 0

    func contains(_ address: Int) -> Bool { start <= address && address < end }

    static func all() -> [SmapsEntry] {
        // Foundation reads a file by its stat size, which a /proc file gives as 0.
        let text = SystemCall.readText("/proc/self/smaps")
        var entries: [SmapsEntry] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            if first.hasSuffix(":") {
                guard !entries.isEmpty else { continue }
                if first == "AnonHugePages:", fields.count >= 2 { entries[entries.count - 1].anonHugePagesKiB = Int(fields[1]) ?? 0 }
                if first == "VmFlags:" { entries[entries.count - 1].flags = Array(fields.dropFirst()) }
            } else {
                let range = first.split(separator: "-")
                if range.count == 2, let low = Int(range[0], radix: 16), let high = Int(range[1], radix: 16) {
                    entries.append(SmapsEntry(start: low, end: high))
                }
            }
        }
        return entries
    }
}
