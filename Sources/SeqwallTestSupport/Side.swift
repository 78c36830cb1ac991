/// Which end of a test connection sends a packet: the client opened it, the server answers.
public enum Side: Sendable {
    case client
    case server
}
