import Foundation
import SeqwallCore

/// The control socket's protocol: JSON lines over a Unix stream socket.
///
/// A client sends one request line, e.g. `{"command":"stats"}`, and reads lines back until one
/// carries `"ok"`. A `list` answer streams one `{"connection":{...}}` line per connection before
/// its final `{"ok":true,"count":N}`; `delete` streams the connections it removed the same way.
/// `watch` streams `{"watch":{...}}` lines (and `{"lost":N}` when the watcher fell behind) until
/// the client closes the connection; its `filter` and `events` (e.g. `["new","destroy"]`)
/// select which. A failure is `{"ok":false,"error":"message"}`.
/// Requests are at most `ControlLimits.maximumRequestBytes` long.
public enum ControlLimits {
    public static let maximumRequestBytes = 64 * 1024
    /// Seconds a client may take to send its request.
    public static let requestTimeoutSeconds = 5
    public static let maximumClients = 32
    public static let defaultSocketPath = "/run/seqwall/control.sock"
}

/// The protocol's JSON: one compact object a line, keys sorted, so daemon, client and CLI
/// print the same bytes for the same value.
public enum ControlJSON {
    public static func line<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

public enum ControlCommand: String, Codable, Sendable, CaseIterable {
    case ping
    case stats
    case list
    case count
    case delete
    case flush
    case reload
    /// Stream `{"watch":{...}}` lines for every table change until the client goes away.
    case watch
    /// The policy in force with per-rule counters: `{"ok":true,"rules":{...}}` (RulesRecord).
    case rules
}

public struct ControlRequest: Codable, Sendable, Equatable {
    public var command: ControlCommand
    /// For list, count and delete; for watch too, on the connection each event carries.
    public var filter: ConnectionFilter?
    /// For watch: the events wanted by name ("new", "update", "destroy"); nil for all. A daemon
    /// that does not know the field sends every event (the CLI filters them again).
    public var events: [String]?

    public init(command: ControlCommand, filter: ConnectionFilter? = nil, events: [String]? = nil) {
        self.command = command
        self.filter = filter
        self.events = events
    }

    /// Decodes one request line as the daemon received it (without its newline). The daemon's
    /// only parser of untrusted control input, kept free of I/O so it can be fuzzed
    /// (FuzzTargets/, target control-request). Every failure is a message for the client.
    public static func decode<Bytes: Collection<UInt8>>(line: Bytes) -> Result<ControlRequest, ControlRequestError> {
        if line.count > ControlLimits.maximumRequestBytes {
            return .failure(.tooLong)
        }
        if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\t") }) {
            return .failure(ControlRequestError("empty request: send one JSON object such as {\"command\":\"stats\"}"))
        }
        let data = Data(line)
        let path: [String]
        do {
            return .success(try JSONDecoder().decode(ControlRequest.self, from: data))
        } catch DecodingError.dataCorrupted(let context) {
            path = context.codingPath.map(\.stringValue)
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            path = context.codingPath.map(\.stringValue)
        } catch {
            path = ["command"] // keyNotFound: only "command" is required
        }
        // Name what is wrong: a broken line, the command, or another field (an unknown
        // command used to be answered "not valid JSON"; found writing the fuzz seeds).
        switch path {
        case [] where (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) == nil:
            return .failure(ControlRequestError("bad request: not valid JSON"))
        case []:
            // Foundation gives no path for some values, a number too large for its type.
            return .failure(ControlRequestError("bad request: a value is out of range for its field"))
        case ["command"]:
            let commands = ControlCommand.allCases.map(\.rawValue).joined(separator: ", ")
            return .failure(ControlRequestError("bad request: expected {\"command\": one of \(commands)}"))
        default:
            return .failure(ControlRequestError("bad request: bad value for \(path.joined(separator: "."))"))
        }
    }
}

/// Why a control request line was refused; the text goes back to the client.
public struct ControlRequestError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }

    public static let tooLong = ControlRequestError("request too long: at most \(ControlLimits.maximumRequestBytes) bytes")
}

/// The final line of every answer.
public struct ControlReply: Codable, Sendable, Equatable {
    public var ok: Bool
    public var error: String?
    public var count: Int?
    public var stats: StatsRecord?
    public var message: String?
    public var rules: RulesRecord?

    public init(ok: Bool, error: String? = nil, count: Int? = nil, stats: StatsRecord? = nil, message: String? = nil,
                rules: RulesRecord? = nil) {
        self.ok = ok
        self.error = error
        self.count = count
        self.stats = stats
        self.message = message
        self.rules = rules
    }

    public static func failure(_ message: String) -> ControlReply { ControlReply(ok: false, error: message) }
}

/// A streamed line of a `list` answer.
public struct ConnectionLine: Codable, Sendable {
    public var connection: ConnectionRecord

    public init(connection: ConnectionRecord) { self.connection = connection }
}

/// Which connections a list, count or delete applies to; every field set must match.
public struct ConnectionFilter: Codable, Sendable, Equatable {
    /// "tcp", "udp", "icmp" or "icmpv6" (also "icmp6", "ipv6-icmp"), or the protocol number.
    public var proto: String?
    public var state: String?
    /// Matches the original direction's source (`-s`), as conntrack does.
    public var source: String?
    public var destination: String?
    public var sourcePort: UInt16?
    public var destinationPort: UInt16?
    /// "ipv4" or "ipv6".
    public var family: String?

    public init(proto: String? = nil, state: String? = nil, source: String? = nil, destination: String? = nil,
                sourcePort: UInt16? = nil, destinationPort: UInt16? = nil, family: String? = nil) {
        self.proto = proto
        self.state = state
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.family = family
    }

    /// A filter checked and ready to match; errors name the bad value.
    public func compiled() throws(FilterError) -> CompiledFilter {
        var result = CompiledFilter()
        if let proto {
            let protocolName: TrackedProtocol? = switch proto.lowercased() {
            case "tcp", "6": .tcp
            case "udp", "17": .udp
            case "icmp", "1": .icmp
            case "icmpv6", "icmp6", "ipv6-icmp", "58": .icmp6
            default: nil
            }
            guard let protocolName else {
                throw FilterError("unknown protocol '\(proto)': seqwall tracks tcp, udp, icmp and icmpv6")
            }
            result.protocolNumber = protocolName.protocolNumber
        }
        if let state {
            guard let parsed = TCPState(name: state), parsed != .none else {
                throw FilterError("unknown state '\(state)': use one of "
                    + TCPState.allCases.dropFirst().map(\.name).joined(separator: ", "))
            }
            result.state = parsed
        }
        if let source {
            guard let network = CompiledFilter.network(source) else { throw FilterError("bad source address '\(source)'") }
            result.source = network
        }
        if let destination {
            guard let network = CompiledFilter.network(destination) else {
                throw FilterError("bad destination address '\(destination)'")
            }
            result.destination = network
        }
        result.sourcePort = sourcePort
        result.destinationPort = destinationPort
        if let family {
            switch family.lowercased() {
            case "ipv4", "inet", "4": result.ipv4 = true
            case "ipv6", "inet6", "6": result.ipv4 = false
            default: throw FilterError("unknown family '\(family)': use ipv4 or ipv6")
            }
        }
        return result
    }
}

public struct FilterError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

public struct CompiledFilter: Sendable {
    public var protocolNumber: UInt8?
    /// A TCP state; selects TCP connections only.
    public var state: TCPState?
    public var source: IPNetwork?
    public var destination: IPNetwork?
    public var sourcePort: UInt16?
    public var destinationPort: UInt16?
    public var ipv4: Bool?

    public init() {}

    /// "198.51.100.7" or "198.51.100.0/24".
    static func network(_ text: String) -> IPNetwork? {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        let full = address.isIPv4 ? 32 : 128
        var prefix = full
        if parts.count == 2 {
            guard let value = Int(parts[1]), value >= 0, value <= full else { return nil }
            prefix = value
        }
        return IPNetwork(address: address, prefixLength: prefix)
    }

    public func matches(_ connection: Connection) -> Bool {
        let key = connection.key
        if let protocolNumber, key.protocolNumber != protocolNumber { return false }
        if let state, key.protocolNumber != TrackedProtocol.tcpNumber || connection.state != state { return false }
        if let source, !source.contains(key.source) { return false }
        if let destination, !destination.contains(key.destination) { return false }
        // Ports are TCP's and UDP's; an echo flow keeps its identifier in the key's port fields.
        let hasPorts = TrackedProtocol(protocolNumber: key.protocolNumber)?.hasPorts ?? false
        if let sourcePort, !hasPorts || key.sourcePort != sourcePort { return false }
        if let destinationPort, !hasPorts || key.destinationPort != destinationPort { return false }
        if let ipv4, key.isIPv4 != ipv4 { return false }
        return true
    }
}
