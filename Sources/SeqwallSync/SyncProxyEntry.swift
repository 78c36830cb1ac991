import SeqwallCore

/// A proxied connection's SYN proxy state in a `proxies` message (docs/sync-protocol.md,
/// Proxied connections): the connection's tuple as its record orients it, then the state in the
/// state file's encoding (StateSnapshot+SynProxy.swift), so that the node taking over
/// translates the connection's packets as the one that proxied it did.
public struct SyncProxyEntry: Sendable, Equatable {
    public var key: FlowKey
    public var state: SynProxyState

    public init(key: FlowKey, state: SynProxyState) {
        self.key = key
        self.state = state
    }

    /// Bytes on the wire: both addresses (16 each, network order, IPv4 mapped), both ports,
    /// then the state.
    public static let encodedLength = 36 + StateSnapshot.proxyStateLength

    func encode(into out: inout SyncBytes) {
        for address in [key.source, key.destination] {
            out.put64(address.high)
            out.put64(address.low)
        }
        out.put16(key.sourcePort)
        out.put16(key.destinationPort)
        var state: [UInt8] = []
        StateSnapshot.appendProxyState(self.state, to: &state)
        out.put(state)
    }

    /// One entry, or nil when its bytes are short or its state is not one a handshake makes.
    static func decode(from reader: inout SyncBytes) -> SyncProxyEntry? {
        guard let sourceHigh = reader.get64(), let sourceLow = reader.get64(), let destinationHigh = reader.get64(),
              let destinationLow = reader.get64(), let sourcePort = reader.get16(), let destinationPort = reader.get16(),
              let stateBytes = reader.get(StateSnapshot.proxyStateLength) else { return nil }
        let source = IPAddress(high: sourceHigh, low: sourceLow)
        let destination = IPAddress(high: destinationHigh, low: destinationLow)
        guard source.isIPv4 == destination.isIPv4,
              let state = Array(stateBytes).withUnsafeBytes({ StateSnapshot.decodeProxyState($0, at: 0) }) else {
            return nil
        }
        return SyncProxyEntry(key: FlowKey(source: source, destination: destination, sourcePort: sourcePort,
                                           destinationPort: destinationPort, protocolNumber: TrackedProtocol.tcpNumber),
                              state: state)
    }
}
