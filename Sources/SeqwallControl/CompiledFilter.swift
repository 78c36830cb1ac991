import Foundation
import SeqwallCore

public struct CompiledFilter: Sendable {
    public var protocolNumber: UInt8?
    /// A TCP state; selects TCP connections only.
    public var state: TCPState?
    public var source: IPNetwork?
    public var destination: IPNetwork?
    public var sourcePort: UInt16?
    public var destinationPort: UInt16?
    public var ipv4: Bool?

    public init() {}

    /// "198.51.100.7" or "198.51.100.0/24".
    static func network(_ text: String) -> IPNetwork? {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(parts[0]) else { return nil }
        let full = address.isIPv4 ? 32 : 128
        var prefix = full
        if parts.count == 2 {
            guard let value = Int(parts[1]), value >= 0, value <= full else { return nil }
            prefix = value
        }
        return IPNetwork(address: address, prefixLength: prefix)
    }

    public func matches(_ connection: Connection) -> Bool {
        let key = connection.key
        if let protocolNumber, key.protocolNumber != protocolNumber { return false }
        if let state, key.protocolNumber != TrackedProtocol.tcpNumber || connection.state != state { return false }
        if let source, !source.contains(key.source) { return false }
        if let destination, !destination.contains(key.destination) { return false }
        // Ports are TCP's and UDP's; an echo flow keeps its identifier in the key's port fields.
        let hasPorts = TrackedProtocol(protocolNumber: key.protocolNumber)?.hasPorts ?? false
        if let sourcePort, !hasPorts || key.sourcePort != sourcePort { return false }
        if let destinationPort, !hasPorts || key.destinationPort != destinationPort { return false }
        if let ipv4, key.isIPv4 != ipv4 { return false }
        return true
    }
}
