/// A cell of the TCP transition table (TCPStateMachine+Table.swift).
public enum TCPTransition: Equatable, Sendable {
    case to(TCPState)
    /// sIV: no valid segment does this; strict by default, so it is dropped.
    case invalid
    /// sIG: may be valid or not and only the receiver knows; it passes without changing state.
    case ignore
}
