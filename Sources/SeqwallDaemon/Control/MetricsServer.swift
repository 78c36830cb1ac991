import Foundation
import Logging
import SeqwallTelemetry
#if canImport(Glibc)
import Glibc
#endif

/// `seqwall run --metrics ADDRESS:PORT`: a minimal HTTP/1.1 responder for Prometheus on a thread
/// of its own. One request per connection (`GET /metrics`; MetricsHTTP says what else is
/// refused), at most `maximumClients` at once, each with `clientTimeout` to send its request
/// and take the answer. It reaches the packet path only through the render closure, which asks
/// each worker for its figures through the worker's mailbox, between packet batches.
final class MetricsServer: @unchecked Sendable {
    /// Connections served at once; one more is answered 503 and closed. Prometheus scrapes
    /// one at a time; a few more leave room for a person with curl.
    static let maximumClients = 4
    /// Clients beyond those being told 503 (written and closed like any answer, so the refusal
    /// arrives rather than a reset); past this, a connection is closed at once.
    static let maximumRefused = 8
    /// For a whole exchange: request in, answer out. A client that takes longer (a half-sent
    /// request, a reader that stalls) is cut off.
    static let clientTimeout: UInt64 = 5_000_000_000
    /// For a refusal (408, 503) to go out and the client to close.
    static let refusalTimeout: UInt64 = 1_000_000_000

    let address: MetricsAddress
    private let listener: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let render: @Sendable () -> String
    private let logger: Logger
    private let finished = DispatchSemaphore(value: 0)

    /// Binds and listens at once, so a bad address or a port in use stops the start.
    init(address: MetricsAddress, logger: Logger, render: @escaping @Sendable () -> String) throws(SystemError) {
        self.address = address
        self.logger = logger
        self.render = render
        listener = try MetricsServer.makeListener(address)
        var ends: [Int32] = [0, 0]
        guard SystemCall.pipe(&ends) == 0 else {
            let error = SystemError("creating a pipe")
            SystemCall.close(listener)
            throw error
        }
        wakeRead = ends[0]
        wakeWrite = ends[1]
        for end in ends { MetricsServer.makeNonBlocking(end) }
    }

    deinit {
        SystemCall.close(listener)
        SystemCall.close(wakeRead)
        SystemCall.close(wakeWrite)
    }

    static func makeListener(_ address: MetricsAddress) throws(SystemError) -> Int32 {
        let family = address.address.isIPv4 ? AF_INET : AF_INET6
        let descriptor = SystemCall.socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
                                    | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard descriptor >= 0 else { throw SystemError("creating the metrics socket") }
        let one: Int32 = 1
        // A restart may bind again while the last run's connections sit in TIME_WAIT; a live
        // listener on the port still makes bind fail (EADDRINUSE).
        SystemCall.setOption(descriptor, SOL_SOCKET, SO_REUSEADDR, one)
        try SystemCall.bindAndListen(descriptor, "the metrics address \(address)", backlog: 16) {
            // IPv6 only, as the address says: `[::]` must not quietly serve IPv4 as well.
            if !address.address.isIPv4 { SystemCall.setOption(descriptor, Int32(IPPROTO_IPV6), IPV6_V6ONLY, one) }
            return SocketAddress(address).withPointer { SystemCall.bind(descriptor, $0, $1) }
        }
        return descriptor
    }

    func start() {
        startDaemonThread(named: "seqwall-metrics", signalling: finished) { [self] in serve() }
    }

    /// Ends the thread; connections in progress are closed.
    func stop() {
        var one: UInt8 = 1
        _ = SystemCall.write(wakeWrite, &one, 1)
        finished.wait()
    }

    // MARK: The loop

    private struct Client {
        enum Phase {
            /// Reading the request head.
            case reading
            /// Sending the answer.
            case writing
            /// The answer is out and our side shut: reading until the client closes, so that
            /// unread request bytes never turn our close into a RST that could cut the answer.
            case draining
        }

        let descriptor: Int32
        var deadline: UInt64
        /// Answered 503 on arrival: does not count toward `maximumClients`.
        var refused = false
        var phase = Phase.reading
        var input: [UInt8] = []
        var output: [UInt8] = []
        var sent = 0
    }

    private func serve() {
        var clients: [Client] = []
        defer { for client in clients { SystemCall.close(client.descriptor) } }
        while true {
            let now = SystemCall.monotonicNanoseconds()
            var descriptors = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
                               pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            for client in clients {
                let events = client.phase == .writing ? POLLOUT : POLLIN
                descriptors.append(pollfd(fd: client.descriptor, events: Int16(events), revents: 0))
            }
            let soonest = clients.map(\.deadline).min().map { $0 > now ? $0 - now : 0 } ?? 1_000_000_000
            let ready = SystemCall.poll(&descriptors, Int32(min(soonest, 1_000_000_000) / 1_000_000) + 1)
            if ready < 0 && errno != EINTR {
                logger.error("metrics endpoint: \(SystemError("poll")); no more scrapes")
                return
            }
            if descriptors[0].revents != 0 { return }
            // Clients first (their indexes match this round's pollfds), then new ones.
            var index = 0
            while index < clients.count {
                let revents = descriptors[index + 2].revents
                var keep = true
                if revents != 0 { keep = advance(&clients[index], revents: revents) }
                let now = SystemCall.monotonicNanoseconds()
                if keep && now >= clients[index].deadline {
                    if clients[index].phase == .reading {
                        // Too slow with its request: told so, with a short while for that to go out.
                        respond(&clients[index], MetricsHTTP.response(.requestTimeout))
                        clients[index].deadline = now &+ MetricsServer.refusalTimeout
                    } else {
                        keep = false
                    }
                }
                if keep {
                    index += 1
                } else {
                    SystemCall.close(clients[index].descriptor)
                    clients.remove(at: index)
                    descriptors.remove(at: index + 2)
                }
            }
            if descriptors[1].revents != 0 { acceptClients(&clients) }
        }
    }

    private func acceptClients(_ clients: inout [Client]) {
        while true {
            let descriptor = SystemCall.accept(listener)
            if descriptor < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if errno == EMFILE || errno == ENFILE { logger.warning("metrics endpoint: out of file descriptors") }
                return   // EAGAIN: no more waiting
            }
            MetricsServer.makeNonBlocking(descriptor)
            let now = SystemCall.monotonicNanoseconds()
            let refused = clients.filter(\.refused).count
            if clients.count - refused < MetricsServer.maximumClients {
                clients.append(Client(descriptor: descriptor, deadline: now &+ MetricsServer.clientTimeout))
            } else if refused < MetricsServer.maximumRefused {
                var client = Client(descriptor: descriptor, deadline: now &+ MetricsServer.refusalTimeout, refused: true)
                respond(&client, MetricsHTTP.response(.serviceUnavailable))
                clients.append(client)
            } else {
                SystemCall.close(descriptor)
            }
        }
    }

    /// One step for a client poll says is ready; false when it is done with.
    private func advance(_ client: inout Client, revents: Int16) -> Bool {
        switch client.phase {
        case .reading:
            var chunk = [UInt8](repeating: 0, count: 2048)
            // Never more than the limit (and a byte, to see it passed): the buffer stays bounded.
            let room = min(chunk.count, MetricsHTTP.maximumRequestBytes + 1 - client.input.count)
            let count = chunk.withUnsafeMutableBytes { SystemCall.recv(client.descriptor, $0.baseAddress, room, 0) }
            if count < 0 { return errno == EINTR || errno == EAGAIN }
            if count == 0 {
                // The client closed its side before a whole request: nothing to answer, or a
                // request cut short.
                if client.input.isEmpty { return false }
                respond(&client, MetricsHTTP.response(.badRequest))
                return true
            }
            client.input += chunk[0..<count]
            switch MetricsHTTP.parse(client.input) {
            case .incomplete:
                return true
            case .refused(let status):
                respond(&client, MetricsHTTP.response(status))
            case .request(let request):
                let status = MetricsHTTP.route(request)
                let headOnly = request.method == "HEAD"
                if status == .ok {
                    respond(&client, MetricsHTTP.response(.ok, contentType: PrometheusText.contentType,
                                                          body: render(), headOnly: headOnly))
                } else {
                    respond(&client, MetricsHTTP.response(status, headOnly: headOnly))
                }
            }
            return true
        case .writing:
            let count = client.output[client.sent...].withUnsafeBytes {
                SystemCall.send(client.descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if count < 0 { return errno == EINTR || errno == EAGAIN }
            client.sent += count
            if client.sent == client.output.count {
                _ = SystemCall.shutdown(client.descriptor, Int32(SHUT_WR))
                client.phase = .draining
                client.output = []
            }
            return true
        case .draining:
            var chunk = [UInt8](repeating: 0, count: 2048)
            let count = chunk.withUnsafeMutableBytes { SystemCall.recv(client.descriptor, $0.baseAddress, $0.count, 0) }
            if count < 0 { return errno == EINTR || errno == EAGAIN }
            return count > 0
        }
    }

    private func respond(_ client: inout Client, _ response: [UInt8]) {
        client.input = []
        client.output = response
        client.sent = 0
        client.phase = .writing
    }

    /// Non-blocking and closed on exec (Glibc's module has neither pipe2 nor accept4).
    private static func makeNonBlocking(_ descriptor: Int32) {
        _ = SystemCall.fcntl(descriptor, F_SETFL, SystemCall.fcntl(descriptor, F_GETFL) | O_NONBLOCK)
        _ = SystemCall.fcntl(descriptor, F_SETFD, FD_CLOEXEC)
    }
}
