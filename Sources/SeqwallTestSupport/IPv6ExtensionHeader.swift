import SeqwallCore

/// An IPv6 extension header (RFC 8200 4). Byte 0 (Next Header) is filled in by the builder.
public struct IPv6ExtensionHeader: Sendable {
    public var type: UInt8
    public var bytes: [UInt8]

    public init(type: UInt8, bytes: [UInt8]) {
        self.type = type
        self.bytes = bytes
    }

    /// Options-style header (hop-by-hop 0, destination options 60): (units + 1) * 8 bytes, the
    /// body filled with a PadN option.
    public static func options(type: UInt8, units: Int) -> IPv6ExtensionHeader {
        let length = (units + 1) * 8
        var bytes = [UInt8](repeating: 0, count: length)
        bytes[1] = UInt8(units)
        bytes[2] = 1                     // PadN
        bytes[3] = UInt8(length - 4)
        return IPv6ExtensionHeader(type: type, bytes: bytes)
    }

    public static func hopByHop(units: Int = 0) -> IPv6ExtensionHeader { options(type: 0, units: units) }

    public static func destinationOptions(units: Int = 0) -> IPv6ExtensionHeader { options(type: 60, units: units) }

    /// A routing header with Segments Left 0 (RFC 8200 4.4): type 2 with one address, or any
    /// length in 8-octet units.
    public static func routing(units: Int = 2) -> IPv6ExtensionHeader {
        var header = options(type: 43, units: units)
        header.bytes[2] = 2              // routing type
        header.bytes[3] = 0              // segments left
        return header
    }

    /// A fragment header (RFC 8200 4.5): offset in 8-octet units, M flag.
    public static func fragment(offset: UInt16 = 0, more: Bool = false, identification: UInt32 = 0x1234_5678) -> IPv6ExtensionHeader {
        let field = offset << 3 | (more ? 1 : 0)
        return IPv6ExtensionHeader(type: 44, bytes: [0, 0] + field.bigEndianBytes + identification.bigEndianBytes)
    }

    /// The same header with its Hdr Ext Len byte set to `value` (to make it run off the end).
    public func withLengthField(_ value: UInt8) -> IPv6ExtensionHeader {
        var copy = self
        copy.bytes[1] = value
        return copy
    }
}
