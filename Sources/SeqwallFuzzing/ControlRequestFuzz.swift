import SeqwallControl
import SeqwallCore

/// Fuzz target (c): the control socket's request parser, exactly as the daemon runs it on a
/// received line (ControlRequest.decode, then the filter check every command starts with).
///
/// A request that decodes must survive a round trip through the protocol's own encoder, so
/// that what the CLI sends and what the daemon reads are the same request.
public enum ControlRequestFuzz {
    public static func run(_ data: UnsafeRawBufferPointer) throws(FuzzFailure) {
        // The daemon stops a request at its first newline.
        let line = data.prefix { $0 != UInt8(ascii: "\n") }
        let request: ControlRequest
        switch ControlRequest.decode(line: line) {
        case .failure(let error):
            guard !error.description.isEmpty else { throw FuzzFailure("a refused request with no message") }
            return
        case .success(let decoded):
            request = decoded
        }
        if let filter = request.filter {
            do {
                let compiled = try filter.compiled()
                // A filter that compiles must also be usable on a connection.
                _ = compiled.matches(Connection(key: FlowKey(
                    source: IPAddress(ipv4: 0xC633_640A), destination: IPAddress(ipv4: 0xCB00_710A),
                    sourcePort: 40000, destinationPort: 80), direction: .inbound))
            } catch {
                guard !error.description.isEmpty else { throw FuzzFailure("a refused filter with no message") }
            }
        }
        let encoded: String
        do {
            encoded = try ControlJSON.line(request)
        } catch {
            throw FuzzFailure("a decoded request does not encode: \(request)")
        }
        guard case .success(let again) = ControlRequest.decode(line: Array(encoded.utf8)), again == request else {
            throw FuzzFailure("request changes through encode and decode: \(request) -> \(encoded)")
        }
    }
}
