/// A cell of the TCP transition table (TCPStateMachine+Table.swift).
public enum TCPTransition: Equatable, Sendable {
    case to(TCPState)
    /// sIV: no valid segment does this; strict by default, so it is dropped.
    case invalid
    /// sIG: may be valid or not and only the receiver knows; it passes without changing state.
    case ignore
}

extension TCPTransition {
    /// Whether `TCPStateMachine.track` applies rules the table cannot express to this cell
    /// (`applyRules`): every cell but those of data transfer and the orderly close, which the
    /// window check alone judges.
    var needsRules: Bool {
        switch self {
        case .to(.none), .to(.established), .to(.finWait), .to(.closeWait), .to(.lastAck): false
        default: true
        }
    }
}
