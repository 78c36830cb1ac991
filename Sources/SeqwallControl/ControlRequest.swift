import Foundation
import SeqwallCore

public struct ControlRequest: Codable, Sendable, Equatable {
    public var command: ControlCommand
    /// For list, count and delete; for watch too, on the connection each event carries.
    public var filter: ConnectionFilter?
    /// For watch: the events wanted by name ("new", "update", "destroy"); nil for all. A daemon
    /// that does not know the field sends every event (the CLI filters them again).
    public var events: [String]?
    /// For table: which table and what to do with it.
    public var table: TableRequest?

    public init(command: ControlCommand, filter: ConnectionFilter? = nil, events: [String]? = nil,
                table: TableRequest? = nil) {
        self.command = command
        self.filter = filter
        self.events = events
        self.table = table
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
        // Name what is wrong: a broken line, the command, or another field, so that a well-formed
        // line with an unknown command is not answered "not valid JSON".
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
