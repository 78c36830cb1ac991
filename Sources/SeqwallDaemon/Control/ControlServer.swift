import Foundation
import Logging
import SeqwallControl
#if canImport(Glibc)
import Glibc
#endif

/// The control socket: a root-only Unix stream socket speaking the JSON-lines protocol of
/// SeqwallControl. One thread accepts; each client gets its own short-lived thread, so a slow
/// client never holds up another (and never the packet path, which it reaches only through
/// worker mailboxes).
final class ControlServer: @unchecked Sendable {
    /// Answers one request through its session; the returned reply is the final line.
    typealias Handler = @Sendable (ControlRequest, ControlSession) -> ControlReply

    let path: String
    private let handler: Handler
    private let logger: Logger
    private let lock = NSLock()
    private var activeClients = 0
    private var stopped = false
    /// The listening socket, the file it is bound to (device and inode, to tell ours from a
    /// file put in its place) and its acceptor; all replaced when the file is made again.
    private var listener: Int32
    private var socketFile: FileIdentity?
    private var generation = 0
    private var acceptorDone = DispatchSemaphore(value: 0)

    init(path: String, logger: Logger, handler: @escaping Handler) throws(SystemError) {
        self.path = path
        self.logger = logger
        self.handler = handler
        listener = try ControlServer.makeListener(path: path)
        socketFile = FileIdentity(path: path)
    }

    /// A file as lstat(2) identifies it.
    struct FileIdentity: Equatable {
        let device: UInt64
        let inode: UInt64

        init?(path: String) {
            var status = stat()
            guard SystemCall.lstat(path, &status) == 0 else { return nil }
            device = UInt64(status.st_dev)
            inode = UInt64(status.st_ino)
        }
    }

    /// Binds the socket file again when it is gone (someone removed it, or the directory):
    /// clients then reach the daemon again (SIGHUP). Returns whether it did; throws when the
    /// path cannot be bound, or another seqwall answers there now.
    func restoreSocketFile() throws(SystemError) -> Bool {
        lock.lock()
        let current = socketFile
        lock.unlock()
        if let current, FileIdentity(path: path) == current { return false }
        let newListener = try ControlServer.makeListener(path: path)
        lock.lock()
        let oldListener = listener
        let oldAcceptor = acceptorDone
        listener = newListener
        socketFile = FileIdentity(path: path)
        generation += 1
        let isStopped = stopped
        lock.unlock()
        // The old socket has no file left, so no new client can reach it; its acceptor ends.
        _ = SystemCall.shutdown(oldListener, Int32(SHUT_RDWR))
        oldAcceptor.wait()
        SystemCall.close(oldListener)
        if !isStopped { start() }
        return true
    }

    /// Creates the listening socket safely: a stale socket is replaced, a live one (another
    /// seqwall) or anything that is not a socket (a planted file or symlink) is refused, and the
    /// socket is born with mode 0600 (umask) so there is no moment it is open to others.
    static func makeListener(path: String) throws(SystemError) -> Int32 {
        guard let address = UnixSocketAddress.make(path) else {
            throw SystemError("control socket path \(path) is too long", code: ENAMETOOLONG)
        }

        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty && SystemCall.access(directory, F_OK) != 0 {
            guard SystemCall.mkdir(directory, 0o755) == 0 || errno == EEXIST else {
                throw SystemError("creating the control socket directory \(directory)")
            }
        }

        var status = stat()
        if SystemCall.lstat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFSOCK else {
                throw SystemError("\(path) exists and is not a socket; refusing to replace it", code: EEXIST)
            }
            if ControlServer.answers(address) {
                throw SystemError("another seqwall is running: \(path) answers", code: EADDRINUSE)
            }
            guard SystemCall.unlink(path) == 0 else { throw SystemError("removing the stale control socket \(path)") }
        }

        let descriptor = SystemCall.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw SystemError("creating the control socket") }
        try SystemCall.bindAndListen(descriptor, "the control socket \(path)", backlog: 64) {
            let oldMask = umask(0o177)
            defer { umask(oldMask) }
            return UnixSocketAddress.with(address) { SystemCall.bind(descriptor, $0, $1) }
        }
        return descriptor
    }

    static func answers(_ address: sockaddr_un) -> Bool {
        let probe = SystemCall.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { return false }
        defer { SystemCall.close(probe) }
        return UnixSocketAddress.with(address) { SystemCall.connect(probe, $0, $1) } == 0
    }

    func start() {
        lock.lock()
        let (listener, generation) = (self.listener, self.generation)
        let done = DispatchSemaphore(value: 0)
        acceptorDone = done
        lock.unlock()
        startDaemonThread(named: "seqwall-control", signalling: done) { [self] in
            acceptLoop(listener: listener, generation: generation)
        }
    }

    /// Stops accepting, removes the socket file (when it is still ours). Clients in progress
    /// finish on their own.
    func stop() {
        lock.lock()
        stopped = true
        let (listener, done, file) = (self.listener, acceptorDone, socketFile)
        lock.unlock()
        _ = SystemCall.shutdown(listener, Int32(SHUT_RDWR))
        done.wait()
        SystemCall.close(listener)
        if let file, FileIdentity(path: path) == file { _ = SystemCall.unlink(path) }
    }

    private func acceptLoop(listener: Int32, generation: Int) {
        while true {
            let client = SystemCall.accept(listener)
            if client >= 0 { _ = SystemCall.fcntl(client, F_SETFD, FD_CLOEXEC) }
            lock.lock()
            let isStopped = stopped || generation != self.generation
            lock.unlock()
            if isStopped {
                if client >= 0 { SystemCall.close(client) }
                return
            }
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if errno == EMFILE || errno == ENFILE {
                    logger.warning("control socket: out of file descriptors")
                    usleep(100_000)
                    continue
                }
                logger.error("control socket accept failed: \(SystemError("accept"))")
                return
            }
            lock.lock()
            let admitted = activeClients < ControlLimits.maximumClients
            if admitted { activeClients += 1 }
            lock.unlock()
            guard admitted else {
                _ = ControlServer.writeLine(client, ControlServer.encode(ControlReply.failure("too many control clients; try again")))
                SystemCall.close(client)
                continue
            }
            startDaemonThread(named: "seqwall-client") { [self] in
                serve(client)
                SystemCall.close(client)
                lock.lock()
                activeClients -= 1
                lock.unlock()
            }
        }
    }

    private func serve(_ client: Int32) {
        let timeout = timeval(tv_sec: ControlLimits.requestTimeoutSeconds, tv_usec: 0)
        SystemCall.setOption(client, SOL_SOCKET, SO_RCVTIMEO, timeout)
        SystemCall.setOption(client, SOL_SOCKET, SO_SNDTIMEO, timeout)
        let reply: ControlReply
        switch readRequest(client) {
        case .failure(let message):
            reply = .failure(message)
        case .success(let request):
            reply = handler(request, ControlSession(client: client))
        }
        _ = ControlServer.writeLine(client, ControlServer.encode(reply))
    }

    enum RequestResult {
        case success(ControlRequest)
        case failure(String)
    }

    /// One request line, at most `maximumRequestBytes`; end of stream also ends a request.
    private func readRequest(_ client: Int32) -> RequestResult {
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { SystemCall.read(client, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    return .failure("request timed out: send one JSON line within \(ControlLimits.requestTimeoutSeconds) s")
                }
                return .failure("reading the request failed: \(SystemError("read"))")
            }
            if count == 0 { break }
            if let newline = chunk[0..<count].firstIndex(of: UInt8(ascii: "\n")) {
                data.append(contentsOf: chunk[0..<newline])
                break
            }
            data.append(contentsOf: chunk[0..<count])
            if data.count > ControlLimits.maximumRequestBytes { return .failure(ControlRequestError.tooLong.description) }
        }
        switch ControlRequest.decode(line: data) {
        case .success(let request): return .success(request)
        case .failure(let error): return .failure(error.description)
        }
    }

    static func encode<T: Encodable>(_ value: T) -> String {
        (try? ControlJSON.line(value)) ?? "{\"ok\":false,\"error\":\"encoding failed\"}"
    }

    /// Writes a line; false when the client has gone.
    static func writeLine(_ client: Int32, _ line: String) -> Bool {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                SystemCall.send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += written
        }
        return true
    }
}
