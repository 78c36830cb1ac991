import SeqwallCore

/// Where `seqwall run --metrics` listens: `127.0.0.1:9100` or `[::1]:9100`. Numeric addresses
/// only: resolving a name would make the firewall's start depend on DNS.
public struct MetricsAddress: Sendable, Equatable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// `[::1]:9100` for IPv6, `127.0.0.1:9100` for IPv4, as the option takes it.
    public var description: String {
        address.isIPv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
    }

    /// The option's value, or a one-line reason it is not one.
    public static func parse(_ text: String) -> Result<MetricsAddress, MetricsAddressError> {
        let example = "give ADDRESS:PORT, such as 127.0.0.1:9100 or [::1]:9100"
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                return .failure(MetricsAddressError("'\(text)' has no ']' after the IPv6 address; \(example)"))
            }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.first == ":" else {
                return .failure(MetricsAddressError("'\(text)' has no ':PORT' after the address; \(example)"))
            }
            portText = rest.dropFirst()
            guard host.contains(":"), IPAddress(host).map({ !$0.isIPv4 }) == true else {
                return .failure(MetricsAddressError("'\(host)' in '\(text)' is not an IPv6 address; \(example)"))
            }
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                return .failure(MetricsAddressError("'\(text)' has no port; \(example)"))
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") {
                return .failure(MetricsAddressError("'\(text)': put an IPv6 address in brackets; \(example)"))
            }
            guard !host.isEmpty, IPAddress(host)?.isIPv4 == true else {
                return .failure(MetricsAddressError("'\(host)' in '\(text)' is not an IPv4 address (names are not resolved); \(example)"))
            }
        }
        guard let address = IPAddress(host) else {
            return .failure(MetricsAddressError("'\(host)' is not an IP address; \(example)"))
        }
        guard !portText.isEmpty, portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber),
              let port = UInt16(portText), port > 0 else {
            return .failure(MetricsAddressError("'\(portText)' in '\(text)' is not a port (1-65535); \(example)"))
        }
        return .success(MetricsAddress(address: address, port: port))
    }
}
