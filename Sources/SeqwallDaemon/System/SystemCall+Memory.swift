#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Anonymous mappings and memory advice, for the tables' large regions (HugePageRegions).
extension SystemCall {
    /// A fresh private anonymous mapping of `length` bytes, readable and writable, or nil
    /// (errno set) when the kernel gives none.
    static func mapAnonymous(_ length: Int) -> UnsafeMutableRawPointer? {
        let address = traced("mmap", "\(length)") {
            Int(bitPattern: mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0))
        }
        // MAP_FAILED is (void *)-1.
        return address == -1 ? nil : UnsafeMutableRawPointer(bitPattern: address)
    }

    @discardableResult
    static func unmap(_ start: UnsafeMutableRawPointer, _ length: Int) -> Int32 {
        traced("munmap", "\(length)") { munmap(start, length) }
    }

    /// Asks for transparent huge pages on a mapped range, before it is first touched: the
    /// advice sets VM_HUGEPAGE on the range, which only the faults after it go by
    /// (madvise(2)). Only advice: when the kernel has no transparent huge pages (EINVAL) or
    /// they are off (`never`), the range works on small pages, so the result is not checked.
    static func adviseHugePages(_ start: UnsafeMutableRawPointer, _ length: Int) {
        _ = traced("madvise", "\(length)") { madvise(start, length, MADV_HUGEPAGE) }
    }
}
