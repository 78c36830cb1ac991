import Foundation

/// Starts `body` on a thread of its own, named as `ps -L` and `top -H` show it
/// (`seqwall-...`), and signals `finished`, when given, as `body` returns: the one place the
/// daemon starts its threads (queue workers, control server and clients, metrics, drop log).
func startDaemonThread(named name: String, stackSize: Int? = nil, signalling finished: DispatchSemaphore? = nil,
                       _ body: @escaping @Sendable () -> Void) {
    let thread = Thread {
        body()
        finished?.signal()
    }
    thread.name = name
    if let stackSize { thread.stackSize = stackSize }
    thread.start()
}
