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

    @Test func aWatchCarriesItsEventsAndARequestWithoutThemStillDecodes() throws {
        let line = #"{"command":"watch","events":["new","destroy"],"filter":{"proto":"tcp"}}"#
        let request = try ControlRequest.decode(line: Array(line.utf8)).get()
        #expect(request == ControlRequest(command: .watch, filter: ConnectionFilter(proto: "tcp"), events: ["new", "destroy"]))
        #expect(try ControlRequest.decode(line: Array(#"{"command":"watch"}"#.utf8)).get().events == nil)
        #expect(try ControlJSON.line(ControlRequest(command: .watch)) == #"{"command":"watch"}"#)
    }

    @Test func eventNamesAsConntrackTakesThem() throws {
        #expect(try EventSelection(list: "NEW,DESTROY").names == ["new", "destroy"])
        #expect(try EventSelection(list: "updates").names == ["update"])
        #expect(try EventSelection(list: "ALL") == .all)
        #expect(try EventSelection(names: ["destroy", "new"]).contains("new"))
        #expect(try !EventSelection(names: ["destroy"]).contains("update"))
        #expect(throws: FilterError.self) { try EventSelection(list: "NEW,") }
        #expect(throws: FilterError.self) { try EventSelection(list: "CREATED") }
        #expect(throws: FilterError.self) { try EventSelection(names: []) }
    }

    @Test func refusesWhatIsNotARequest() {
        #expect(message(" \t\r")?.hasPrefix("empty request") == true)
        #expect(message("stats please") == "bad request: not valid JSON")
        let commands = "ping, stats, list, count, delete, flush, reload, watch, rules, table, sync"
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
