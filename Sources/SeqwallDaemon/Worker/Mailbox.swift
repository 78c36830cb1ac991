#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Jobs for a worker thread from other threads (control requests, reloads, stop). The worker
/// polls the wake-up pipe beside its netlink socket and runs the jobs between packet batches, so
/// the packet path itself takes no lock.
final class Mailbox<Owner>: @unchecked Sendable {
    typealias Job = (Owner) -> Void

    /// The read end of the wake-up pipe, for poll.
    let eventDescriptor: Int32
    private let wakeDescriptor: Int32
    private let lock = NSLock()
    private var jobs: [Job] = []

    init() throws(SystemError) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw SystemError("creating a pipe") }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        eventDescriptor = ends[0]
        wakeDescriptor = ends[1]
    }

    deinit {
        Glibc.close(eventDescriptor)
        Glibc.close(wakeDescriptor)
    }

    func post(_ job: @escaping Job) {
        lock.lock()
        jobs.append(job)
        lock.unlock()
        var one: UInt8 = 1
        // A full pipe already means "wake up": the write may fail harmlessly.
        _ = write(wakeDescriptor, &one, 1)
    }

    /// Runs `body` on the owner's thread and waits for its result.
    func perform<Result>(_ body: @escaping (Owner) -> Result) -> Result {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<Result>()
        post { owner in
            box.value = body(owner)
            done.signal()
        }
        done.wait()
        return box.value!
    }

    /// Takes every waiting job (called by the owner).
    func takeJobs() -> [Job] {
        var drain = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        while read(eventDescriptor, &drain, 32) > 0 {}
        lock.lock()
        defer { lock.unlock() }
        let taken = jobs
        jobs.removeAll(keepingCapacity: true)
        return taken
    }

    /// Carries a job's result back to the thread that waits for it.
    private final class ResultBox<Value>: @unchecked Sendable {
        var value: Value?
    }
}
