/// The little HTTP/1.1 the metrics endpoint speaks (RFC 9112): it reads one request head,
/// answers `GET /metrics` (and `HEAD`), refuses everything else with a status, and closes the
/// connection. Bodies are never read: no request to this endpoint has one that matters.
public enum MetricsHTTP {
    /// The most a request head may take; more is refused (431) without reading further.
    public static let maximumRequestBytes = 8192
    public static let path = "/metrics"

    public struct Status: Sendable, Equatable, CustomStringConvertible {
        public let code: Int
        public let reason: String

        public static let ok = Status(code: 200, reason: "OK")
        public static let badRequest = Status(code: 400, reason: "Bad Request")
        public static let notFound = Status(code: 404, reason: "Not Found")
        public static let methodNotAllowed = Status(code: 405, reason: "Method Not Allowed")
        public static let requestTimeout = Status(code: 408, reason: "Request Timeout")
        public static let headerFieldsTooLarge = Status(code: 431, reason: "Request Header Fields Too Large")
        public static let serviceUnavailable = Status(code: 503, reason: "Service Unavailable")
        public static let versionNotSupported = Status(code: 505, reason: "HTTP Version Not Supported")

        public var description: String { "\(code) \(reason)" }
    }

    public struct Request: Sendable, Equatable {
        public var method: String
        public var target: String
    }

    public enum Parse: Sendable, Equatable {
        /// The head is not complete yet and nothing seen so far is wrong: read more.
        case incomplete
        case request(Request)
        /// Answer with this status and close.
        case refused(Status)
    }

    /// Parses what a client has sent so far. Refuses as soon as the bytes cannot start a valid
    /// request (garbage is answered at once, not at the timeout).
    public static func parse(_ bytes: [UInt8]) -> Parse {
        // A server SHOULD ignore at least one empty line before the request line (RFC 9112 2.2).
        var start = 0
        while start < bytes.count && (bytes[start] == CR || bytes[start] == LF) && start < 4 { start += 1 }
        var lines: [ArraySlice<UInt8>] = []
        var lineStart = start
        var index = start
        var complete = false
        while index < bytes.count {
            let byte = bytes[index]
            if byte == LF {
                // CRLF ends a line; a bare LF is accepted too (RFC 9112 2.2).
                var end = index
                if end > lineStart && bytes[end - 1] == CR { end -= 1 }
                let line = bytes[lineStart..<end]
                if line.isEmpty {
                    complete = true
                    break
                }
                lines.append(line)
                lineStart = index + 1
            } else if byte == CR {
                // CR only before LF (RFC 9112 2.2: a bare CR is invalid).
                if index + 1 < bytes.count && bytes[index + 1] != LF { return .refused(.badRequest) }
            } else if byte < 0x20 && byte != TAB || byte == 0x7F || byte >= 0x80 {
                // Controls and non-ASCII have no place in a request head this endpoint reads
                // (field values may be obs-text, but nothing here needs them).
                return .refused(.badRequest)
            }
            index += 1
        }
        if index >= maximumRequestBytes { return .refused(.headerFieldsTooLarge) }

        // The request line, or as much of it as has come: a bad method or a stray space is
        // refused before the line ends.
        let requestLine = lines.first ?? bytes[lineStart..<index]
        let parts = requestLine.split(separator: SP, omittingEmptySubsequences: false)
        guard parts[0].allSatisfy(isTokenCharacter), parts.count <= 3, parts.count == 1 || !parts[0].isEmpty else {
            return .refused(.badRequest)
        }
        guard complete else { return .incomplete }

        // request-line = method SP request-target SP HTTP-version (RFC 9112 3)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else { return .refused(.badRequest) }
        let target = parts[1]
        guard target.allSatisfy({ $0 > SP && $0 < 0x7F }) else { return .refused(.badRequest) }
        let version = parts[2]
        guard version.count == 8, version.starts(with: Array("HTTP/".utf8)),
              isDigit(version[version.startIndex + 5]), version[version.startIndex + 6] == UInt8(ascii: "."),
              isDigit(version[version.startIndex + 7]) else { return .refused(.badRequest) }
        guard version.elementsEqual("HTTP/1.1".utf8) || version.elementsEqual("HTTP/1.0".utf8) else {
            return .refused(.versionNotSupported)
        }
        // field-line = field-name ":" OWS field-value OWS; no whitespace before the colon, and
        // no obs-fold continuation lines (RFC 9112 5.1, 5.2).
        for field in lines.dropFirst() {
            guard let colon = field.firstIndex(of: UInt8(ascii: ":")), colon > field.startIndex,
                  field[field.startIndex..<colon].allSatisfy(isTokenCharacter) else {
                return .refused(.badRequest)
            }
        }
        return .request(Request(method: String(decoding: parts[0], as: UTF8.self),
                                target: String(decoding: target, as: UTF8.self)))
    }

    /// The status for a well-formed request: only `GET` and `HEAD` of `/metrics` (a query is
    /// ignored) are served.
    public static func route(_ request: Request) -> Status {
        guard request.method == "GET" || request.method == "HEAD" else { return .methodNotAllowed }
        let path = request.target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return path == MetricsHTTP.path ? .ok : .notFound
    }

    /// A whole response; the connection closes after it. `HEAD` gets the headers only.
    public static func response(_ status: Status, contentType: String = "text/plain; charset=utf-8",
                                body: String? = nil, headOnly: Bool = false) -> [UInt8] {
        let payload = Array((body ?? "\(status)\n").utf8)
        var head = "HTTP/1.1 \(status)\r\n"
        head += "Content-Type: \(contentType)\r\n"
        head += "Content-Length: \(payload.count)\r\n"
        if status == .methodNotAllowed { head += "Allow: GET, HEAD\r\n" }
        head += "Connection: close\r\n\r\n"
        return Array(head.utf8) + (headOnly ? [] : payload)
    }

    private static let CR = UInt8(ascii: "\r")
    private static let LF = UInt8(ascii: "\n")
    private static let SP = UInt8(ascii: " ")
    private static let TAB = UInt8(ascii: "\t")

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

    /// tchar (RFC 9110 5.6.2): the characters of methods and field names.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), 0x30...0x39:
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
