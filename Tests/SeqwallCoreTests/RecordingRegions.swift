import Foundation
import SeqwallCore

/// A RegionProvider for tests: regions from the Swift heap on a huge page boundary, as the
/// daemon's start, and every allocation and release recorded (start address, byte count).
/// `refusing`: it has no memory to give, as when the kernel maps none.
final class RecordingRegions: @unchecked Sendable {
    typealias Region = (start: Int, byteCount: Int)

    private let lock = NSLock()
    private var allocations: [Region] = []
    private var releases: [Region] = []
    private let refusing: Bool

    init(refusing: Bool = false) { self.refusing = refusing }

    var provider: RegionProvider {
        RegionProvider(allocate: { byteCount in self.allocate(byteCount) },
                       release: { start, byteCount in self.release(start, byteCount) })
    }

    var allocated: [Region] { lock.withLock { allocations } }
    var released: [Region] { lock.withLock { releases } }

    private func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer? {
        lock.withLock {
            allocations.append((0, byteCount))
            if refusing { return nil }
            let start = UnsafeMutableRawPointer.allocate(byteCount: byteCount, alignment: ConnectionTable.hugePageBytes)
            allocations[allocations.count - 1].start = Int(bitPattern: start)
            return start
        }
    }

    private func release(_ start: UnsafeMutableRawPointer, _ byteCount: Int) {
        lock.withLock { releases.append((Int(bitPattern: start), byteCount)) }
        start.deallocate()
    }
}
