import SeqwallCore
import SeqwallTestSupport
import Testing

@testable import SeqwallTelemetry

private func parse(_ text: String) -> MetricsHTTP.Parse {
    MetricsHTTP.parse(Array(text.utf8))
}

private func request(_ method: String, _ target: String) -> MetricsHTTP.Parse {
    .request(MetricsHTTP.Request(method: method, target: target))
}

@Suite("Metrics endpoint: HTTP requests")
struct MetricsHTTPTests {
    @Test("well-formed requests")
    func good() {
        #expect(parse("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nAccept: */*\r\n\r\n") == request("GET", "/metrics"))
        #expect(parse("GET /metrics HTTP/1.0\r\n\r\n") == request("GET", "/metrics"))
        #expect(parse("HEAD /metrics?x=1 HTTP/1.1\r\n\r\n") == request("HEAD", "/metrics?x=1"))
        // Bare LF line ends, and an empty line before the request line (RFC 9112 2.2).
        #expect(parse("GET /metrics HTTP/1.1\nHost: a\n\n") == request("GET", "/metrics"))
        #expect(parse("\r\nGET /metrics HTTP/1.1\r\n\r\n") == request("GET", "/metrics"))
        // Prometheus's own scrape request.
        let prometheus = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nUser-Agent: Prometheus/2.45.0\r\n"
            + "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
            + "Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n"
        #expect(parse(prometheus) == request("GET", "/metrics"))
    }

    @Test("routing: GET and HEAD of /metrics only")
    func routing() {
        let route = { (method: String, target: String) in MetricsHTTP.route(MetricsHTTP.Request(method: method, target: target)) }
        #expect(route("GET", "/metrics") == .ok)
        #expect(route("HEAD", "/metrics") == .ok)
        #expect(route("GET", "/metrics?name[]=x") == .ok)
        #expect(route("GET", "/") == .notFound)
        #expect(route("GET", "/metrics/") == .notFound)
        #expect(route("GET", "/metricsx") == .notFound)
        #expect(route("GET", "http://127.0.0.1/metrics") == .notFound)
        #expect(route("POST", "/metrics") == .methodNotAllowed)
        #expect(route("get", "/metrics") == .methodNotAllowed)   // methods are case-sensitive
        #expect(route("DELETE", "/") == .methodNotAllowed)
    }

    @Test("half-sent requests wait for more")
    func halfSent() {
        #expect(parse("") == .incomplete)
        #expect(parse("G") == .incomplete)
        #expect(parse("GET /metr") == .incomplete)
        #expect(parse("GET /metrics HTTP/1.1") == .incomplete)
        #expect(parse("GET /metrics HTTP/1.1\r") == .incomplete)
        #expect(parse("GET /metrics HTTP/1.1\r\n") == .incomplete)
        #expect(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n") == .incomplete)
        #expect(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n\r") == .incomplete)
    }

    @Test("oversized requests are refused with 431, even unfinished")
    func oversized() {
        let limit = MetricsHTTP.maximumRequestBytes
        #expect(parse("GET /" + String(repeating: "a", count: limit) + " HTTP/1.1\r\n\r\n") == .refused(.headerFieldsTooLarge))
        #expect(parse("GET /metrics HTTP/1.1\r\nX: " + String(repeating: "b", count: limit)) == .refused(.headerFieldsTooLarge))
        var many = "GET /metrics HTTP/1.1\r\n"
        while many.utf8.count < limit { many += "X-Filler: 0123456789\r\n" }
        #expect(parse(many + "\r\n") == .refused(.headerFieldsTooLarge))
        // Just under the limit is fine.
        let padding = String(repeating: "c", count: limit - "GET /metrics HTTP/1.1\r\nX: \r\n\r\n".utf8.count)
        #expect(parse("GET /metrics HTTP/1.1\r\nX: \(padding)\r\n\r\n") == request("GET", "/metrics"))
    }

    @Test("garbage is refused at once, before the request ends")
    func garbage() {
        #expect(parse("\u{16}\u{03}\u{01}\u{02}\u{00}") == .refused(.badRequest))          // a TLS ClientHello
        #expect(parse("\u{00}\u{00}\u{00}") == .refused(.badRequest))
        #expect(parse("GET /m\u{7F}") == .refused(.badRequest))
        #expect(parse("GET /métrics HTTP/1.1\r\n\r\n") == .refused(.badRequest))
        #expect(parse("GE(T /") == .refused(.badRequest))
        #expect(parse(" GET /metrics") == .refused(.badRequest))
        #expect(parse("GET /metrics HTTP/1.1 extra\r\n\r\n") == .refused(.badRequest))
        #expect(parse("GET  /metrics HTTP/1.1\r\n\r\n") == .refused(.badRequest))
        #expect(parse("hello\r\n\r\n") == .refused(.badRequest))
        #expect(parse("GET /metrics\r\n\r\n") == .refused(.badRequest))                    // HTTP/0.9
        #expect(parse("GET /metrics HTTQ/1.1\r\n\r\n") == .refused(.badRequest))
        #expect(parse("GET /metrics HTTP/2.0\r\n\r\n") == .refused(.versionNotSupported))
        #expect(parse("GET /metrics HTTP/1.1\rX\r\n\r\n") == .refused(.badRequest))        // bare CR
        #expect(parse("GET /metrics HTTP/1.1\r\nHost : x\r\n\r\n") == .refused(.badRequest))
        #expect(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n") == .refused(.badRequest))
        #expect(parse("GET /metrics HTTP/1.1\r\nno colon\r\n\r\n") == .refused(.badRequest))
        #expect(parse("\r\n\r\n\r\n") == .refused(.badRequest))
    }

    @Test("responses: status line, length, close; HEAD without the body")
    func responses() {
        let ok = String(decoding: MetricsHTTP.response(.ok, contentType: PrometheusText.contentType, body: "a 1\n"), as: UTF8.self)
        #expect(ok == "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            + "Content-Length: 4\r\nConnection: close\r\n\r\na 1\n")
        let head = String(decoding: MetricsHTTP.response(.ok, contentType: PrometheusText.contentType, body: "a 1\n",
                                                         headOnly: true), as: UTF8.self)
        #expect(head == "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            + "Content-Length: 4\r\nConnection: close\r\n\r\n")
        let refused = String(decoding: MetricsHTTP.response(.methodNotAllowed), as: UTF8.self)
        #expect(refused == "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + "Content-Length: 23\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\n405 Method Not Allowed\n")
    }
}

@Suite("Metrics endpoint: --metrics ADDRESS:PORT")
struct MetricsAddressTests {
    @Test("numeric addresses with a port")
    func good() throws {
        let v4 = try MetricsAddress.parse("127.0.0.1:9100").get()
        #expect(v4.address == IPAddress("127.0.0.1") && v4.port == 9100)
        #expect(v4.description == "127.0.0.1:9100")
        let v6 = try MetricsAddress.parse("[::1]:65535").get()
        #expect(v6.address == IPAddress("::1") && v6.port == 65535)
        #expect(v6.description == "[::1]:65535")
        #expect(try MetricsAddress.parse("0.0.0.0:1").get().port == 1)
        #expect(try MetricsAddress.parse("[2001:db8:2::1]:9100").get().description == "[2001:db8:2::1]:9100")
    }

    @Test("anything else is refused with a reason", arguments: [
        ("9100", "has no port"),
        ("127.0.0.1", "has no port"),
        ("127.0.0.1:", "is not a port"),
        ("127.0.0.1:0", "is not a port"),
        ("127.0.0.1:65536", "is not a port"),
        ("127.0.0.1:-1", "is not a port"),
        ("127.0.0.1:http", "is not a port"),
        ("127.0.0.1: 80", "is not a port"),
        ("localhost:9100", "is not an IPv4 address (names are not resolved)"),
        (":9100", "is not an IPv4 address"),
        ("300.0.0.1:9100", "is not an IPv4 address"),
        ("::1:9100", "put an IPv6 address in brackets"),
        ("[::1]9100", "has no ':PORT'"),
        ("[::1:9100", "has no ']'"),
        ("[127.0.0.1]:9100", "is not an IPv6 address"),
        ("[::ffff:127.0.0.1]:9100", "is not an IPv6 address"),
    ])
    func bad(text: String, reason: String) {
        switch MetricsAddress.parse(text) {
        case .success(let address):
            Issue.record("'\(text)' parsed as \(address)")
        case .failure(let error):
            #expect(error.description.contains(reason), "\(error)")
            #expect(!error.description.contains("\n"))
        }
    }
}
