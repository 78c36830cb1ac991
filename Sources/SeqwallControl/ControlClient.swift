import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The CLI's side of the control socket: one request, lines back.
public struct ControlClient: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The socket path from `--control`, else SEQWALL_CONTROL, else the default.
    public static func resolvePath(_ option: String?) -> String {
        if let option, !option.isEmpty { return option }
        if let environment = ProcessInfo.processInfo.environment["SEQWALL_CONTROL"], !environment.isEmpty {
            return environment
        }
        return ControlLimits.defaultSocketPath
    }

    /// Sends `request`; calls `onConnection` for each streamed connection; returns the final
    /// reply. Errors say what an operator can do about them.
    public func send(_ request: ControlRequest,
                     onConnection: (ConnectionRecord) -> Void = { _ in },
                     onWatch: (WatchLine) -> Void = { _ in }) throws(ControlClientError) -> ControlReply {
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw ControlClientError("cannot create a socket: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }

        guard let address = UnixSocketAddress.make(path) else {
            throw ControlClientError("control socket path too long: \(path)")
        }
        let connected = UnixSocketAddress.with(address) { connect(descriptor, $0, $1) }
        if connected != 0 {
            switch errno {
            case ENOENT, ECONNREFUSED:
                if let explanation = ControlSocketOwner.explanation(path: path) {
                    throw ControlClientError(explanation)
                }
                throw ControlClientError("seqwall is not running (nothing listens on \(path)); start it with `seqwall run --rules FILE`")
            case EACCES, EPERM:
                throw ControlClientError("permission denied on \(path): the control socket is root's; run as root")
            default:
                throw ControlClientError("cannot connect to \(path): \(String(cString: strerror(errno)))")
            }
        }

        guard let line = try? ControlJSON.line(request) else { throw ControlClientError("cannot encode the request") }
        let bytes = Array((line + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if written < 0 {
                if errno == EINTR { continue }
                throw ControlClientError("sending the request failed: \(String(cString: strerror(errno)))")
            }
            offset += written
        }

        let decoder = JSONDecoder()
        var pending = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ControlClientError("reading the answer failed: \(String(cString: strerror(errno)))")
            }
            if count == 0 { throw ControlClientError("seqwall closed the connection before answering") }
            pending.append(contentsOf: chunk[0..<count])
            var start = 0
            while let newline = pending[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Data(pending[start..<newline])
                start = newline + 1
                if let streamed = try? decoder.decode(ConnectionLine.self, from: line) {
                    onConnection(streamed.connection)
                    continue
                }
                if let watched = try? decoder.decode(WatchLine.self, from: line), watched.watch != nil || watched.lost != nil {
                    onWatch(watched)
                    continue
                }
                guard let reply = try? decoder.decode(ControlReply.self, from: line) else {
                    throw ControlClientError("unexpected answer from seqwall: \(String(decoding: line, as: UTF8.self))")
                }
                return reply
            }
            pending.removeFirst(start)
        }
    }
}
