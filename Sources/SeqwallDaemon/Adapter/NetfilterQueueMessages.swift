import CNetfilterQueue
import SeqwallCore

/// Every netlink message the NFQUEUE adapter reads or writes, decoded and encoded here and
/// nowhere else. The layouts are the kernel's (include/uapi/linux/netlink.h,
/// include/uapi/linux/netfilter/nfnetlink_queue.h): a 16-byte `nlmsghdr` in host order, a
/// 4-byte `nfgenmsg` whose `res_id` is the queue in network order, then attributes, each a
/// 4-byte `nlattr` (length, type; host order) and a payload padded to 4 bytes. Payload values
/// are in network order, as nfqnl_build_packet_message writes them.
///
/// Everything works on the caller's buffers: decoding a packet message points into the
/// receive buffer, encoding writes at a given address, so the packet path allocates nothing.
enum NetfilterQueueMessages {
    static let headerLength = 16
    /// `nlmsghdr` plus `nfgenmsg`: where a queue message's attributes start.
    static let attributesOffset = 20
    static let attributeHeaderLength = 4
    /// `struct nfqnl_msg_packet_hdr`, packed: packet id, hardware protocol, hook.
    static let packetHeaderLength = 7
    /// A verdict message: headers, one NFQA_VERDICT_HDR attribute of 8 bytes.
    static let verdictLength = attributesOffset + attributeHeaderLength + 8
    /// Enough for any configuration message written here.
    static let configurationCapacity = 64
    /// Room a verdict message needs in a send buffer.
    static let verdictCapacity = verdictLength

    static let packetType = queueMessageType(NFQNL_MSG_PACKET.rawValue)
    static let verdictType = queueMessageType(NFQNL_MSG_VERDICT.rawValue)
    static let configurationType = queueMessageType(NFQNL_MSG_CONFIG.rawValue)

    private static func queueMessageType(_ message: UInt32) -> UInt16 {
        UInt16(NFNL_SUBSYS_QUEUE << 8) | UInt16(message)
    }

    private static let typeMask = UInt16(0x3FFF)   // NLA_TYPE_MASK: without NLA_F_NESTED, NLA_F_NET_BYTEORDER
    private static let requestFlag = UInt16(NLM_F_REQUEST)
    private static let acknowledgeFlag = UInt16(NLM_F_ACK)

    @inline(__always)
    private static func aligned(_ length: Int) -> Int { (length + 3) & ~3 }

    // MARK: Reading

    /// The messages of one received datagram, one after the other (nlmsg_next). A rest that
    /// is not a whole message (shorter than a header, or a length that overruns the datagram)
    /// ends the walk and sets `malformed`: the kernel never sends one, so it is counted, and
    /// nothing past it is read.
    struct Walk: IteratorProtocol {
        private let buffer: UnsafeRawBufferPointer
        private var offset = 0
        private(set) var malformed = false

        @inline(__always)
        init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

        @inline(__always)
        mutating func next() -> UnsafeRawBufferPointer? {
            let left = buffer.count - offset
            guard left > 0 else { return nil }
            guard left >= NetfilterQueueMessages.headerLength, let base = buffer.baseAddress else {
                malformed = true
                return nil
            }
            let length = Int(base.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            guard length >= NetfilterQueueMessages.headerLength, length <= left else {
                malformed = true
                return nil
            }
            let message = UnsafeRawBufferPointer(start: base + offset, count: length)
            offset += min(left, NetfilterQueueMessages.aligned(length))
            return message
        }
    }

    /// What one message from the kernel is.
    enum Decoded {
        /// A queued packet, whole.
        case packet(NetfilterQueuePacket)
        /// Not a well-formed packet message. When its packet header could still be read, the
        /// queue and id, so that the packet gets a verdict rather than waiting in the kernel's
        /// queue until the queue is unbound.
        case malformed(queue: UInt16, packetID: UInt32?)
        /// A netlink control message without meaning here: NLMSG_NOOP, NLMSG_DONE,
        /// NLMSG_OVERRUN, or an acknowledgment that reports no error.
        case ignored
    }

    @inline(__always)
    static func type(of message: UnsafeRawBufferPointer) -> UInt16 {
        message.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
    }

    @inline(__always)
    static func sequence(of message: UnsafeRawBufferPointer) -> UInt32 {
        message.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
    }

    /// Decodes one message `Walk` found (at least a header long, its length within it).
    @inline(__always)
    static func decode(_ message: UnsafeRawBufferPointer) -> Decoded {
        let type = type(of: message)
        guard type == packetType else {
            if type == UInt16(NLMSG_ERROR) { return errorCode(of: message) == 0 ? .ignored : .malformed(queue: 0, packetID: nil) }
            if type < UInt16(NLMSG_MIN_TYPE) { return .ignored }
            return .malformed(queue: 0, packetID: nil)
        }
        guard message.count >= attributesOffset else { return .malformed(queue: 0, packetID: nil) }
        var packet = NetfilterQueuePacket()
        packet.queue = UInt16(bigEndian: message.loadUnaligned(fromByteOffset: headerLength + 2, as: UInt16.self))
        var haveHeader = false
        var wellFormed = true
        var offset = attributesOffset
        let base = message.baseAddress!
        while offset < message.count {
            guard message.count - offset >= attributeHeaderLength else { wellFormed = false; break }
            let length = Int(message.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let kind = UInt32(message.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self) & typeMask)
            guard length >= attributeHeaderLength, length <= message.count - offset else { wellFormed = false; break }
            let payload = offset + attributeHeaderLength
            let payloadLength = length - attributeHeaderLength
            switch kind {
            case NFQA_PACKET_HDR.rawValue:
                guard payloadLength >= packetHeaderLength else { wellFormed = false; break }
                packet.packetID = UInt32(bigEndian: message.loadUnaligned(fromByteOffset: payload, as: UInt32.self))
                packet.hardwareProtocol = UInt16(bigEndian: message.loadUnaligned(fromByteOffset: payload + 4, as: UInt16.self))
                packet.hook = hook(message[payload + 6])
                haveHeader = true
            case NFQA_PAYLOAD.rawValue:
                packet.payload = UnsafeRawBufferPointer(start: base + payload, count: payloadLength)
            case NFQA_CAP_LEN.rawValue, NFQA_IFINDEX_INDEV.rawValue, NFQA_IFINDEX_OUTDEV.rawValue, NFQA_MARK.rawValue:
                guard payloadLength >= 4 else { wellFormed = false; break }
                let value = UInt32(bigEndian: message.loadUnaligned(fromByteOffset: payload, as: UInt32.self))
                switch kind {
                case NFQA_CAP_LEN.rawValue: packet.capturedLength = value
                case NFQA_IFINDEX_INDEV.rawValue: packet.inputInterface = value
                case NFQA_IFINDEX_OUTDEV.rawValue: packet.outputInterface = value
                default: packet.mark = value
                }
            default:
                break
            }
            offset += aligned(length)
        }
        guard haveHeader else { return .malformed(queue: packet.queue, packetID: nil) }
        guard wellFormed else { return .malformed(queue: packet.queue, packetID: packet.packetID) }
        return .packet(packet)
    }

    /// The netfilter hook a packet was queued from: it decides direction in host mode.
    @inline(__always)
    static func hook(_ raw: UInt8) -> PacketHook {
        switch UInt32(raw) {
        case NF_INET_LOCAL_IN.rawValue: .input
        case NF_INET_LOCAL_OUT.rawValue: .output
        case NF_INET_FORWARD.rawValue: .forward
        default: .other
        }
    }

    /// The queue and packet id of a packet message the receive cut short (MSG_TRUNC), so that
    /// its packet still gets a verdict. nfqnl_build_packet_message puts NFQA_PACKET_HDR first,
    /// right after the nfgenmsg, so the id survives any cut that leaves the first attribute
    /// whole; nil when even that much is missing.
    static func truncatedPacketID(_ bytes: UnsafeRawBufferPointer) -> (queue: UInt16, packetID: UInt32)? {
        guard bytes.count >= attributesOffset + attributeHeaderLength + packetHeaderLength,
              type(of: bytes) == packetType else { return nil }
        let length = Int(bytes.loadUnaligned(fromByteOffset: attributesOffset, as: UInt16.self))
        let kind = UInt32(bytes.loadUnaligned(fromByteOffset: attributesOffset + 2, as: UInt16.self) & typeMask)
        guard kind == NFQA_PACKET_HDR.rawValue, length >= attributeHeaderLength + packetHeaderLength else { return nil }
        let queue = UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: headerLength + 2, as: UInt16.self))
        let id = UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: attributesOffset + attributeHeaderLength, as: UInt32.self))
        return (queue, id)
    }

    /// An NLMSG_ERROR message's error: 0 for an acknowledgment, else a negative errno
    /// (struct nlmsgerr); EBADMSG when the message is too short to say.
    static func errorCode(of message: UnsafeRawBufferPointer) -> Int32 {
        guard message.count >= headerLength + 4 else { return -EBADMSG }
        return message.loadUnaligned(fromByteOffset: headerLength, as: Int32.self)
    }

    /// The sequence number of the request an NLMSG_ERROR message answers (the copy of the
    /// request's header after the error code), or 0.
    static func answeredSequence(of message: UnsafeRawBufferPointer) -> UInt32 {
        guard message.count >= headerLength + 4 + headerLength else { return 0 }
        return message.loadUnaligned(fromByteOffset: headerLength + 4 + 8, as: UInt32.self)
    }

    /// A verdict message as the kernel reads it (nfqnl_recv_verdict): the queue, the packet id
    /// and the verdict.
    struct VerdictMessage: Equatable {
        var queue: UInt16
        var packetID: UInt32
        var verdict: UInt32
        /// NFQA_PAYLOAD, the bytes that replace the packet; nil when the verdict has none.
        var payload: [UInt8]? = nil
    }

    /// Reads a verdict message; nil when it is not a well-formed one.
    static func decodeVerdict(_ message: UnsafeRawBufferPointer) -> VerdictMessage? {
        guard message.count >= verdictLength, type(of: message) == verdictType else { return nil }
        let queue = UInt16(bigEndian: message.loadUnaligned(fromByteOffset: headerLength + 2, as: UInt16.self))
        var offset = attributesOffset
        var decoded: VerdictMessage?
        var payload: [UInt8]?
        while message.count - offset >= attributeHeaderLength {
            let length = Int(message.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let kind = UInt32(message.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self) & typeMask)
            guard length >= attributeHeaderLength, length <= message.count - offset else { return nil }
            if kind == NFQA_VERDICT_HDR.rawValue && length >= attributeHeaderLength + 8 && decoded == nil {
                let verdict = UInt32(bigEndian: message.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
                let id = UInt32(bigEndian: message.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self))
                decoded = VerdictMessage(queue: queue, packetID: id, verdict: verdict)
            } else if kind == NFQA_PAYLOAD.rawValue {
                payload = Array(message[(offset + attributeHeaderLength)..<(offset + length)])
            }
            offset += aligned(length)
        }
        decoded?.payload = payload
        return decoded
    }

    // MARK: Writing

    /// Writes an `nlmsghdr` and `nfgenmsg` for a queue message at `buffer`; returns the
    /// length so far. As libnetfilter_queue's nfq_nlmsg_put: a request, family AF_UNSPEC,
    /// NFNETLINK_V0.
    @inline(__always)
    private static func putHeader(_ buffer: UnsafeMutableRawPointer, type: UInt16, flags: UInt16 = 0,
                                  sequence: UInt32 = 0, queue: UInt16) -> Int {
        buffer.storeBytes(of: UInt32(attributesOffset), as: UInt32.self)
        buffer.storeBytes(of: type, toByteOffset: 4, as: UInt16.self)
        buffer.storeBytes(of: requestFlag | flags, toByteOffset: 6, as: UInt16.self)
        buffer.storeBytes(of: sequence, toByteOffset: 8, as: UInt32.self)
        buffer.storeBytes(of: UInt32(0), toByteOffset: 12, as: UInt32.self)
        buffer.storeBytes(of: UInt8(AF_UNSPEC), toByteOffset: 16, as: UInt8.self)
        buffer.storeBytes(of: UInt8(NFNETLINK_V0), toByteOffset: 17, as: UInt8.self)
        buffer.storeBytes(of: queue.bigEndian, toByteOffset: 18, as: UInt16.self)
        return attributesOffset
    }

    /// Appends an attribute with `count` payload bytes, which `fill` writes; zero padding
    /// after it (mnl_attr_put). Returns the new length and sets it in the header.
    @inline(__always)
    private static func putAttribute(_ buffer: UnsafeMutableRawPointer, at offset: Int, type: UInt32, count: Int,
                                     _ fill: (UnsafeMutableRawPointer) -> Void) -> Int {
        let length = attributeHeaderLength + count
        let padded = aligned(length)
        (buffer + offset).initializeMemory(as: UInt8.self, repeating: 0, count: padded)
        buffer.storeBytes(of: UInt16(length), toByteOffset: offset, as: UInt16.self)
        buffer.storeBytes(of: UInt16(type), toByteOffset: offset + 2, as: UInt16.self)
        fill(buffer + offset + attributeHeaderLength)
        buffer.storeBytes(of: UInt32(offset + padded), as: UInt32.self)
        return offset + padded
    }

    @inline(__always)
    private static func putBigEndian(_ buffer: UnsafeMutableRawPointer, at offset: Int, type: UInt32, _ value: UInt32) -> Int {
        putAttribute(buffer, at: offset, type: type, count: 4) { $0.storeBytes(of: value.bigEndian, as: UInt32.self) }
    }

    /// Writes a verdict for one packet at `buffer` (4-byte aligned, `verdictLength` bytes
    /// free); returns its length, a multiple of 4. It never carries NFQA_MARK: the packet
    /// keeps the mark it was queued with, which belongs to the operator (policy routing,
    /// kube-proxy and others match on it).
    @inline(__always)
    static func putVerdict(_ buffer: UnsafeMutableRawPointer, queue: UInt16, packetID: UInt32, accept: Bool) -> Int {
        let offset = putHeader(buffer, type: verdictType, queue: queue)
        let verdict = accept ? UInt32(NF_ACCEPT) : UInt32(NF_DROP)
        return putAttribute(buffer, at: offset, type: NFQA_VERDICT_HDR.rawValue, count: 8) {
            $0.storeBytes(of: verdict.bigEndian, as: UInt32.self)
            $0.storeBytes(of: packetID.bigEndian, toByteOffset: 4, as: UInt32.self)
        }
    }

    /// The most bytes an NFQA_PAYLOAD attribute holds: its length, header included, is 16 bits.
    static let largestPayload = Int(UInt16.max) - attributeHeaderLength

    /// Writes an accept verdict that replaces the packet with `payload` (NFQA_PAYLOAD), at
    /// `buffer` (4-byte aligned, `verdictCapacity` plus the payload's length, padded, free).
    /// The kernel's nfqnl_mangle makes the packet exactly these bytes: they must be the whole
    /// packet, never a cut copy.
    static func putVerdict(_ buffer: UnsafeMutableRawPointer, queue: UInt16, packetID: UInt32,
                           payload: UnsafeRawBufferPointer) -> Int {
        let offset = putVerdict(buffer, queue: queue, packetID: packetID, accept: true)
        return putAttribute(buffer, at: offset, type: NFQA_PAYLOAD.rawValue, count: payload.count) {
            if let base = payload.baseAddress { $0.copyMemory(from: base, byteCount: payload.count) }
        }
    }

    /// NFQNL_CFG_CMD_BIND or _UNBIND for a queue, asking for an acknowledgment.
    static func putCommand(_ buffer: UnsafeMutableRawPointer, queue: UInt16, bind: Bool, sequence: UInt32) -> Int {
        let offset = putHeader(buffer, type: configurationType, flags: acknowledgeFlag, sequence: sequence, queue: queue)
        let command = UInt8(bind ? NFQNL_CFG_CMD_BIND.rawValue : NFQNL_CFG_CMD_UNBIND.rawValue)
        // struct nfqnl_msg_config_cmd: command, padding, protocol family (ignored by kernels
        // since 3.8, given as libnetfilter_queue's examples give it).
        return putAttribute(buffer, at: offset, type: NFQA_CFG_CMD.rawValue, count: 4) {
            $0.storeBytes(of: command, as: UInt8.self)
            $0.storeBytes(of: UInt16(AF_INET).bigEndian, toByteOffset: 2, as: UInt16.self)
        }
    }

    /// Copy mode (the packet, `copyRange` bytes of it), queue length, and the flags in `mask`
    /// set to `flags`, in one message asking for an acknowledgment.
    static func putParameters(_ buffer: UnsafeMutableRawPointer, queue: UInt16, copyRange: UInt32, queueLength: UInt32,
                              flags: UInt32, mask: UInt32, sequence: UInt32) -> Int {
        var offset = putHeader(buffer, type: configurationType, flags: acknowledgeFlag, sequence: sequence, queue: queue)
        // struct nfqnl_msg_config_params, packed: copy range, copy mode.
        offset = putAttribute(buffer, at: offset, type: NFQA_CFG_PARAMS.rawValue, count: 5) {
            $0.storeBytes(of: copyRange.bigEndian, as: UInt32.self)
            $0.storeBytes(of: UInt8(NFQNL_COPY_PACKET.rawValue), toByteOffset: 4, as: UInt8.self)
        }
        offset = putBigEndian(buffer, at: offset, type: NFQA_CFG_QUEUE_MAXLEN.rawValue, queueLength)
        offset = putBigEndian(buffer, at: offset, type: NFQA_CFG_FLAGS.rawValue, flags)
        return putBigEndian(buffer, at: offset, type: NFQA_CFG_MASK.rawValue, mask)
    }

    static let failOpenFlag = UInt32(NFQA_CFG_F_FAIL_OPEN)
    /// Large offloaded packets queued whole rather than segmented first (nfqnl_enqueue_packet).
    static let gsoFlag = UInt32(NFQA_CFG_F_GSO)

    /// Writes a packet message as nfqnl_build_packet_message lays one out: NFQA_PACKET_HDR
    /// first, then the interface indexes and the mark when not zero, NFQA_CAP_LEN when the
    /// copy is shorter than the packet, and the copied bytes. For a queue's other end (a fake
    /// kernel in tests); returns the length.
    static func putPacket(_ buffer: UnsafeMutableRawPointer, queue: UInt16, packetID: UInt32, hardwareProtocol: UInt16,
                          hook: UInt8, inputInterface: UInt32 = 0, outputInterface: UInt32 = 0, mark: UInt32 = 0,
                          payload: UnsafeRawBufferPointer, wireLength: Int? = nil) -> Int {
        var offset = putHeader(buffer, type: packetType, queue: queue)
        buffer.storeBytes(of: UInt16(0), toByteOffset: 6, as: UInt16.self)
        offset = putAttribute(buffer, at: offset, type: NFQA_PACKET_HDR.rawValue, count: packetHeaderLength) {
            $0.storeBytes(of: packetID.bigEndian, as: UInt32.self)
            $0.storeBytes(of: hardwareProtocol.bigEndian, toByteOffset: 4, as: UInt16.self)
            $0.storeBytes(of: hook, toByteOffset: 6, as: UInt8.self)
        }
        if mark != 0 { offset = putBigEndian(buffer, at: offset, type: NFQA_MARK.rawValue, mark) }
        if inputInterface != 0 { offset = putBigEndian(buffer, at: offset, type: NFQA_IFINDEX_INDEV.rawValue, inputInterface) }
        if outputInterface != 0 { offset = putBigEndian(buffer, at: offset, type: NFQA_IFINDEX_OUTDEV.rawValue, outputInterface) }
        if let wireLength, wireLength != payload.count {
            offset = putBigEndian(buffer, at: offset, type: NFQA_CAP_LEN.rawValue, UInt32(wireLength))
        }
        return putAttribute(buffer, at: offset, type: NFQA_PAYLOAD.rawValue, count: payload.count) {
            if let base = payload.baseAddress { $0.copyMemory(from: base, byteCount: payload.count) }
        }
    }
}
