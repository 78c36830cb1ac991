#if canImport(Glibc)
import Glibc
#endif

/// One client's connection, as a request handler sees it.
struct ControlSession {
    let client: Int32

    /// Streams a line; false once the client has gone.
    func emit(_ line: String) -> Bool { ControlServer.writeLine(client, line) }

    /// Waits up to `milliseconds` for the client to hang up; true when it has (a watcher
    /// that closed its end, or sent anything more, is done).
    func hasHungUp(waitingMilliseconds milliseconds: Int32) -> Bool {
        var descriptor = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
        let ready = SystemCall.poll(&descriptor, milliseconds)
        return ready > 0 && descriptor.revents & Int16(POLLIN | POLLHUP | POLLERR) != 0
    }
}
