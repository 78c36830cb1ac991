import SeqwallControl
import Testing

/// ControlRequest.decode: the daemon's parser of one request line (fuzzed by FuzzTargets,
/// target control-request; these pin its answers).
@Suite struct ControlRequestDecodeTests {
    func message(_ line: String) -> String? {
        if case .failure(let error) = ControlRequest.decode(line: Array(line.utf8)) { return error.description }
        return nil
    }

    @Test func decodesACommandAndItsFilter() throws {
        let line = #"{"command":"list","filter":{"state":"ESTABLISHED","sourcePort":40000,"family":"ipv6"}}"#
        let request = try ControlRequest.decode(line: Array(line.utf8)).get()
        #expect(request == ControlRequest(command: .list,
                                          filter: ConnectionFilter(state: "ESTABLISHED", sourcePort: 40000, family: "ipv6")))
    }

    @Test func refusesWhatIsNotARequest() {
        #expect(message(" \t\r")?.hasPrefix("empty request") == true)
        #expect(message("stats please") == "bad request: not valid JSON")
        let commands = "ping, stats, list, count, delete, flush, reload, watch, rules"
        #expect(message(#"{"command":"shutdown"}"#) == "bad request: expected {\"command\": one of \(commands)}")
        #expect(message(#"{"filter":{}}"#) == "bad request: expected {\"command\": one of \(commands)}")
        #expect(message(#"{"command":"count","filter":{"sourcePort":70000}}"#)
                == "bad request: a value is out of range for its field")
        #expect(message(#"{"command":"count","filter":{"sourcePort":"22"}}"#) == "bad request: bad value for filter.sourcePort")
        #expect(message(#"{"command":"count","filter":[]}"#) == "bad request: bad value for filter")
        #expect(message(String(repeating: " ", count: ControlLimits.maximumRequestBytes + 1))
                == ControlRequestError.tooLong.description)
    }
}
