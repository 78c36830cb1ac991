import SeqwallTelemetry

/// `seqwall run --sync-listen ADDRESS:PORT --sync-peer ADDRESS:PORT --sync-key FILE`
/// (docs/ha.md): where this node takes the peer's sync messages, where it sends its own, and
/// the pre-shared key. Addresses are numeric, in `--metrics`'s form.
public struct SyncOptions: Sendable {
    public var listen: MetricsAddress
    public var peer: MetricsAddress
    public var keyPath: String

    public init(listen: MetricsAddress, peer: MetricsAddress, keyPath: String) {
        self.listen = listen
        self.peer = peer
        self.keyPath = keyPath
    }
}
