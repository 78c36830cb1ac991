import Foundation
import SeqwallCore

/// Which connections a list, count or delete applies to; every field set must match.
public struct ConnectionFilter: Codable, Sendable, Equatable {
    /// "tcp", "udp", "icmp" or "icmpv6" (also "icmp6", "ipv6-icmp"), or the protocol number.
    public var proto: String?
    public var state: String?
    /// Matches the original direction's source (`-s`), as conntrack does.
    public var source: String?
    public var destination: String?
    public var sourcePort: UInt16?
    public var destinationPort: UInt16?
    /// "ipv4" or "ipv6".
    public var family: String?

    public init(proto: String? = nil, state: String? = nil, source: String? = nil, destination: String? = nil,
                sourcePort: UInt16? = nil, destinationPort: UInt16? = nil, family: String? = nil) {
        self.proto = proto
        self.state = state
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.family = family
    }

    /// A filter checked and ready to match; errors name the bad value.
    public func compiled() throws(FilterError) -> CompiledFilter {
        var result = CompiledFilter()
        if let proto {
            let protocolName: TrackedProtocol? = switch proto.lowercased() {
            case "tcp", "6": .tcp
            case "udp", "17": .udp
            case "icmp", "1": .icmp
            case "icmpv6", "icmp6", "ipv6-icmp", "58": .icmp6
            default: nil
            }
            guard let protocolName else {
                throw FilterError("unknown protocol '\(proto)': seqwall tracks tcp, udp, icmp and icmpv6")
            }
            result.protocolNumber = protocolName.protocolNumber
        }
        if let state {
            guard let parsed = TCPState(name: state), parsed != .none else {
                throw FilterError("unknown state '\(state)': use one of "
                    + TCPState.allCases.dropFirst().map(\.name).joined(separator: ", "))
            }
            result.state = parsed
        }
        if let source {
            guard let network = CompiledFilter.network(source) else { throw FilterError("bad source address '\(source)'") }
            result.source = network
        }
        if let destination {
            guard let network = CompiledFilter.network(destination) else {
                throw FilterError("bad destination address '\(destination)'")
            }
            result.destination = network
        }
        result.sourcePort = sourcePort
        result.destinationPort = destinationPort
        if let family {
            switch family.lowercased() {
            case "ipv4", "inet", "4": result.ipv4 = true
            case "ipv6", "inet6", "6": result.ipv4 = false
            default: throw FilterError("unknown family '\(family)': use ipv4 or ipv6")
            }
        }
        return result
    }
}
