import CNetfilterQueue
import SeqwallCore
@testable import SeqwallDaemon
import Testing

/// NetfilterQueueMessages against messages written out byte by byte as the kernel
/// (nfqnl_build_packet_message, nfqnl_recv_verdict, nfqnl_recv_config) and libnetfilter_queue
/// (nfq_nlmsg_put, nfq_nlmsg_verdict_put, nfq_nlmsg_cfg_put_*) lay them out, on a little-endian
/// host.
@Suite("Netfilter queue messages")
struct NetfilterQueueMessagesTests {
    static func le32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    static func le16(_ value: UInt16) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
    static func be32(_ value: UInt32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
    static func be16(_ value: UInt16) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
    static func attribute(_ type: UInt16, _ payload: [UInt8]) -> [UInt8] {
        le16(UInt16(4 + payload.count)) + le16(type) + payload + [UInt8](repeating: 0, count: (4 - payload.count % 4) % 4)
    }
    static func message(type: UInt16, flags: UInt16 = 0, sequence: UInt32 = 0, family: UInt8, queue: UInt16,
                        _ attributes: [UInt8]) -> [UInt8] {
        le32(UInt32(20 + attributes.count)) + le16(type) + le16(flags) + le32(sequence) + le32(0)
            + [family, 0] + be16(queue) + attributes
    }

    static let payload: [UInt8] = [0x45, 0, 0, 40, 1, 2, 3]

    /// A packet message for queue 5: packet id 258, IPv4, LOCAL_IN, mark 9, a timestamp, in
    /// on interface 7, out on 8, 1500 bytes on the wire of which 7 were copied.
    static let kernelPacket = message(type: 0x0300, family: UInt8(AF_INET), queue: 5,
        attribute(1, be32(258) + be16(0x0800) + [1])
        + attribute(3, be32(9))
        + attribute(4, [UInt8](repeating: 0xAB, count: 16))
        + attribute(5, be32(7))
        + attribute(6, be32(8))
        + attribute(13, be32(1500))
        + attribute(10, payload))

    @Test("a packet message as the kernel writes it: id, queue, hook, interfaces, mark, lengths, bytes")
    func decodePacket() {
        Self.kernelPacket.withUnsafeBytes { bytes in
            var walk = NetfilterQueueMessages.Walk(bytes)
            guard let message = walk.next() else {
                Issue.record("no message found")
                return
            }
            #expect(walk.next() == nil && !walk.malformed)
            guard case .packet(let packet) = NetfilterQueueMessages.decode(message) else {
                Issue.record("not read as a packet")
                return
            }
            #expect(packet.queue == 5 && packet.packetID == 258 && packet.hardwareProtocol == 0x0800)
            #expect(packet.hook == .input)
            #expect(packet.inputInterface == 7 && packet.outputInterface == 8 && packet.mark == 9)
            #expect(packet.wireLength == 1500 && Array(packet.payload) == Self.payload)
            #expect(packet.queued.wireLength == 1500 && packet.queued.bytes.count == 7)
        }
    }

    @Test("the encoder a fake kernel uses writes what the kernel writes")
    func encodePacket() {
        var buffer = [UInt8](repeating: 0xEE, count: 128)
        let length = buffer.withUnsafeMutableBytes { out in
            Self.payload.withUnsafeBytes { payload in
                NetfilterQueueMessages.putPacket(out.baseAddress!, queue: 5, packetID: 258, hardwareProtocol: 0x0800,
                                                 hook: 1, inputInterface: 7, outputInterface: 8, mark: 9,
                                                 payload: payload, wireLength: 1500)
            }
        }
        // The same message without the timestamp, and with the family the kernel gives
        // (NFPROTO_IPV4) left unspecified.
        var expected = Self.kernelPacket
        expected.removeSubrange(40..<60)
        expected[0] = UInt8(expected.count)
        expected[16] = 0
        #expect(Array(buffer.prefix(length)) == expected)
    }

    @Test("a verdict as libnetfilter_queue writes it, and read back as the kernel reads it")
    func verdict() {
        var buffer = [UInt8](repeating: 0xEE, count: 64)
        let length = buffer.withUnsafeMutableBytes {
            NetfilterQueueMessages.putVerdict($0.baseAddress!, queue: 3, packetID: 0x01020304, accept: true)
        }
        let expected = Self.message(type: 0x0301, flags: UInt16(NLM_F_REQUEST), family: 0, queue: 3,
                                    Self.attribute(2, Self.be32(UInt32(NF_ACCEPT)) + Self.be32(0x01020304)))
        #expect(length == NetfilterQueueMessages.verdictLength)
        #expect(Array(buffer.prefix(length)) == expected)
        expected.withUnsafeBytes {
            #expect(NetfilterQueueMessages.decodeVerdict($0) == .init(queue: 3, packetID: 0x01020304, verdict: UInt32(NF_ACCEPT)))
        }
        _ = buffer.withUnsafeMutableBytes {
            NetfilterQueueMessages.putVerdict($0.baseAddress!, queue: 3, packetID: 7, accept: false)
        }
        buffer.withUnsafeBytes {
            #expect(NetfilterQueueMessages.decodeVerdict(UnsafeRawBufferPointer(rebasing: $0[0..<length]))?.verdict == UInt32(NF_DROP))
        }
    }

    @Test("bind, unbind, and the parameters: copy mode and range, queue length, GSO and fail-open")
    func configuration() {
        var buffer = [UInt8](repeating: 0xEE, count: NetfilterQueueMessages.configurationCapacity)
        let flags = UInt16(NLM_F_REQUEST | NLM_F_ACK)
        var length = buffer.withUnsafeMutableBytes {
            NetfilterQueueMessages.putCommand($0.baseAddress!, queue: 2, bind: true, sequence: 11)
        }
        #expect(Array(buffer.prefix(length)) == Self.message(type: 0x0302, flags: flags, sequence: 11, family: 0, queue: 2,
                                                             Self.attribute(1, [1, 0] + Self.be16(UInt16(AF_INET)))))
        length = buffer.withUnsafeMutableBytes {
            NetfilterQueueMessages.putCommand($0.baseAddress!, queue: 2, bind: false, sequence: 12)
        }
        #expect(Array(buffer.prefix(length)) == Self.message(type: 0x0302, flags: flags, sequence: 12, family: 0, queue: 2,
                                                             Self.attribute(1, [2, 0] + Self.be16(UInt16(AF_INET)))))
        for failOpen in [false, true] {
            let set = NetfilterQueueMessages.gsoFlag | (failOpen ? NetfilterQueueMessages.failOpenFlag : 0)
            length = buffer.withUnsafeMutableBytes {
                NetfilterQueueMessages.putParameters($0.baseAddress!, queue: 2, copyRange: 256, queueLength: 4096,
                                                     flags: set, mask: NetfilterQueueMessages.gsoFlag | NetfilterQueueMessages.failOpenFlag,
                                                     sequence: 13)
            }
            let expected = Self.message(type: 0x0302, flags: flags, sequence: 13, family: 0, queue: 2,
                                        Self.attribute(2, Self.be32(256) + [2])          // NFQNL_COPY_PACKET
                                        + Self.attribute(3, Self.be32(4096))
                                        + Self.attribute(5, Self.be32(failOpen ? 5 : 4))  // GSO (4), FAIL_OPEN (1)
                                        + Self.attribute(4, Self.be32(5)))
            #expect(Array(buffer.prefix(length)) == expected, "fail-open \(failOpen)")
        }
    }

    @Test("acknowledgments and errors: the code and the request they answer")
    func acknowledgment() {
        let request = Self.le32(36) + Self.le16(0x0302) + Self.le16(5) + Self.le32(77) + Self.le32(0)
        for code: Int32 in [0, -EPERM] {
            let answer = Self.le32(36) + Self.le16(UInt16(NLMSG_ERROR)) + Self.le16(0) + Self.le32(77) + Self.le32(0)
                + withUnsafeBytes(of: code) { Array($0) } + request
            answer.withUnsafeBytes {
                #expect(NetfilterQueueMessages.errorCode(of: $0) == code)
                #expect(NetfilterQueueMessages.answeredSequence(of: $0) == 77)
                if code == 0 {
                    guard case .ignored = NetfilterQueueMessages.decode($0) else { Issue.record("an ack is not ignored"); return }
                } else {
                    guard case .malformed(_, nil) = NetfilterQueueMessages.decode($0) else { Issue.record("an error is not counted"); return }
                }
            }
        }
    }

    /// Where kernelPacket's attributes end, with and without their padding.
    static let attributeEnds: Set<Int> = [31, 32, 40, 60, 68, 76, 84, 95]

    @Test("a packet message cut anywhere: never read past the cut; its id once the packet header is whole")
    func everyCut() {
        for cut in 0..<Self.kernelPacket.count {
            let bytes = Array(Self.kernelPacket.prefix(cut))
            bytes.withUnsafeBytes { buffer in
                let id = NetfilterQueueMessages.truncatedPacketID(buffer)
                #expect((id?.packetID == 258) == (cut >= 31), "cut at \(cut)")
                var walk = NetfilterQueueMessages.Walk(buffer)
                while let message = walk.next() { _ = NetfilterQueueMessages.decode(message) }
                #expect(walk.malformed == (cut > 0), "cut at \(cut)")
            }
            // The same bytes with their header's length made to fit: a message whose
            // attributes stop short.
            guard cut >= 20 else { continue }
            var fitted = bytes
            fitted.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(cut), as: UInt32.self) }
            fitted.withUnsafeBytes { buffer in
                switch NetfilterQueueMessages.decode(buffer) {
                case .packet(let packet):
                    // Only a cut between two attributes leaves a well-formed message (one
                    // without a copy, as NFQNL_COPY_META sends).
                    #expect(Self.attributeEnds.contains(cut), "a cut message read as whole, cut at \(cut)")
                    #expect(packet.packetID == 258 && packet.payload.count == (cut == 95 ? 7 : 0))
                case .malformed(let queue, let id):
                    #expect(queue == 5)
                    #expect((id == 258) == (cut >= 31), "cut at \(cut)")
                case .ignored:
                    Issue.record("ignored, cut at \(cut)")
                }
            }
        }
    }
}
