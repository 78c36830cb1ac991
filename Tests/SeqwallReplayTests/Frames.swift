import SeqwallTestSupport
import Foundation

/// Link-layer headers, built byte by byte.
enum Frames {
    static let etherTypeIPv4: UInt16 = 0x0800
    static let etherTypeIPv6: UInt16 = 0x86DD

    /// Destination and source MAC, optional VLAN tags (TPID, VLAN id), EtherType, payload.
    static func ethernet(_ payload: [UInt8], type: UInt16, tags: [(UInt16, UInt16)] = []) -> [UInt8] {
        var frame: [UInt8] = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]
        for (tpid, vlan) in tags { frame += tpid.bigEndianBytes + vlan.bigEndianBytes }
        return frame + type.bigEndianBytes + payload
    }

    /// An IP packet in Ethernet, its EtherType from its version.
    static func ethernet(_ packet: [UInt8]) -> [UInt8] {
        ethernet(packet, type: packet.first.map { $0 >> 4 } == 6 ? etherTypeIPv6 : etherTypeIPv4)
    }

    /// Linux cooked v1: packet type, ARPHRD_ETHER, address length 6, address (8), protocol.
    static func linuxCooked(_ payload: [UInt8], type: UInt16 = etherTypeIPv4, packetType: UInt16 = 0,
                            hardwareType: UInt16 = 1) -> [UInt8] {
        packetType.bigEndianBytes + hardwareType.bigEndianBytes + UInt16(6).bigEndianBytes
            + [0x02, 0, 0, 0, 0, 0x01, 0, 0] + type.bigEndianBytes + payload
    }

    /// Linux cooked v2: protocol, reserved, interface index, ARPHRD_ETHER, packet type,
    /// address length 6, address (8).
    static func linuxCooked2(_ payload: [UInt8], type: UInt16 = etherTypeIPv4, packetType: UInt8 = 0,
                             hardwareType: UInt16 = 1) -> [UInt8] {
        type.bigEndianBytes + [0, 0] + UInt32(3).bigEndianBytes + hardwareType.bigEndianBytes
            + [packetType, 6] + [0x02, 0, 0, 0, 0, 0x01, 0, 0] + payload
    }
}
