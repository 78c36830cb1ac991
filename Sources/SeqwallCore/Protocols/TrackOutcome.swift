/// What tracking one segment decided (TCPStateMachine.track).
public enum TrackOutcome: Equatable, Sendable {
    case accept
    case drop(DropReason)
    /// A SYN on a closed or aborted connection's tuple: forget the old one and judge the SYN as
    /// a new connection (RFC 9293 3.6.1, RFC 1122 4.2.2.13).
    case reopen
    /// An RST was the only answer to the connection: accept it and forget the connection.
    case destroy
}
