import CNetfilterQueue
import Foundation

/// Starts `body` on a thread of its own, named as `ps -L`, `top -H` and /proc show it
/// (`seqwall-...`, at most 15 characters: the kernel keeps no more), and signals `finished`,
/// when given, as `body` returns: the one place the daemon starts its threads (queue workers,
/// control server and clients, metrics, drop log).
func startDaemonThread(named name: String, stackSize: Int? = nil, signalling finished: DispatchSemaphore? = nil,
                       _ body: @escaping @Sendable () -> Void) {
    precondition(name.utf8.count <= 15, "a thread name the kernel keeps whole")
    let thread = Thread {
        // Foundation's Thread.name does not reach the kernel's name for the thread on Linux.
        _ = seqwall_set_thread_name(name)
        body()
        finished?.signal()
    }
    thread.name = name
    if let stackSize { thread.stackSize = stackSize }
    thread.start()
}
