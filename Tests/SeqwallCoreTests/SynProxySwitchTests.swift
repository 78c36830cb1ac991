@testable import SeqwallCore
import Testing

/// When `synproxy` rules proxy (SynProxySwitch): always, or between the adaptive thresholds.
@Suite("SYN proxy switch")
struct SynProxySwitchTests {
    /// The switch's answers to a sequence of half-open counts.
    func answers(_ mode: SynProxyMode, tableLimit: Int, _ counts: [Int]) -> [Bool] {
        var proxySwitch = SynProxySwitch(mode: mode, tableLimit: tableLimit)
        return counts.map { proxySwitch.update(halfOpen: $0) }
    }

    @Test func alwaysIsAlwaysOn() {
        #expect(SynProxySwitch(mode: .always, tableLimit: 1000).engaged)
        #expect(answers(.always, tableLimit: 1000, [0, 1000, 0]) == [true, true, true])
    }

    @Test func adaptiveTurnsOnAtStartAndOffAtEnd() {
        #expect(!SynProxySwitch(mode: .adaptive(start: 25, end: 12), tableLimit: 1000).engaged)
        // On at 250, kept down to 121, off at 120, kept off up to 249.
        #expect(answers(.adaptive(start: 25, end: 12), tableLimit: 1000, [249, 250, 121, 120, 200, 251])
            == [false, true, true, false, false, true])
    }

    @Test func aTinyTableStillNeedsAHalfOpenConnection() {
        #expect(answers(.adaptive(start: 25, end: 12), tableLimit: 3, [0, 1, 0]) == [false, true, false])
    }
}
