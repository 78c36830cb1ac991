import Foundation
import CNetfilterQueue
@testable import SeqwallDaemon
#if canImport(Glibc)
import Glibc
#endif

/// The kernel's side of an NFQUEUE queue for a QueueWorker, without root: it hands the worker
/// datagrams of real netlink bytes, one receive at a time as scripted, and keeps every datagram
/// the worker sends, read back as the kernel reads verdicts (nfqnl_recv_verdict). Its
/// descriptor polls readable while a receive is scripted, so a worker's run() loop can be
/// driven too. The worker's thread and the test's share it under a lock.
final class FakeKernelQueue: PacketSource, VerdictSink, @unchecked Sendable {
    /// What one datagram of a receive is.
    enum Datagram {
        /// These bytes, whole.
        case bytes([UInt8])
        /// These bytes, cut to their slot, with MSG_TRUNC: what recvmmsg gives for a datagram
        /// longer than the buffer.
        case truncated([UInt8])
    }

    /// What one receive returns.
    enum Receive {
        case datagrams([Datagram])
        /// The call fails with this errno (ENOBUFS: messages were lost).
        case error(Int32)
    }

    private let lock = NSLock()
    private var script: [Receive] = []
    private var sendFailures: [Int32] = []
    private var sentDatagrams: [[UInt8]] = []
    private var wasClosed = false
    private let readEnd: Int32
    private let writeEnd: Int32

    init() {
        var ends: [Int32] = [0, 0]
        precondition(pipe(&ends) == 0)
        readEnd = ends[0]
        writeEnd = ends[1]
        _ = fcntl(readEnd, F_SETFL, fcntl(readEnd, F_GETFL) | O_NONBLOCK)
    }

    deinit {
        Glibc.close(readEnd)
        Glibc.close(writeEnd)
    }

    var descriptor: Int32 { readEnd }

    /// Scripts the next receive.
    func enqueue(_ receive: Receive) {
        lock.withLock {
            script.append(receive)
            updateReadiness()
        }
    }

    /// Scripts a receive of these datagrams, each whole.
    func enqueue(_ datagrams: [[UInt8]]) { enqueue(.datagrams(datagrams.map { .bytes($0) })) }

    /// The next sends fail with these errnos, one each.
    func failSends(_ codes: [Int32]) { lock.withLock { sendFailures += codes } }

    var sent: [[UInt8]] { lock.withLock { sentDatagrams } }
    var closed: Bool { lock.withLock { wasClosed } }
    var pendingReceives: Int { lock.withLock { script.count } }

    /// Every verdict sent, in order, as the kernel reads them; a message that is not a
    /// well-formed verdict fails the read.
    var verdicts: [NetfilterQueueMessages.VerdictMessage?] {
        var result: [NetfilterQueueMessages.VerdictMessage?] = []
        for datagram in sent {
            datagram.withUnsafeBytes { bytes in
                var walk = NetfilterQueueMessages.Walk(bytes)
                while let message = walk.next() { result.append(NetfilterQueueMessages.decodeVerdict(message)) }
                if walk.malformed { result.append(nil) }
            }
        }
        return result
    }

    /// One byte in the pipe while a receive is scripted, none otherwise.
    private func updateReadiness() {
        var byte: UInt8 = 0
        while read(readEnd, &byte, 1) > 0 {}
        if !script.isEmpty { _ = write(writeEnd, &byte, 1) }
    }

    func receive(into batch: ReceiveBatch) -> Int {
        lock.withLock {
            defer { updateReadiness() }
            guard !script.isEmpty else { return -Int(EAGAIN) }
            switch script.removeFirst() {
            case .error(let code):
                return -Int(code)
            case .datagrams(let datagrams):
                precondition(datagrams.count <= batch.capacity, "a receive takes at most a batch")
                for (index, datagram) in datagrams.enumerated() {
                    let (bytes, cut) = switch datagram {
                    case .bytes(let bytes): (bytes, false)
                    case .truncated(let bytes): (bytes, true)
                    }
                    let kept = min(bytes.count, batch.slotSize)
                    bytes.withUnsafeBytes { batch.slot(index).copyMemory(from: $0.baseAddress!, byteCount: kept) }
                    batch.messages[index].msg_len = UInt32(kept)
                    batch.messages[index].msg_hdr.msg_flags = cut || bytes.count > batch.slotSize ? Int32(MSG_TRUNC) : 0
                }
                return datagrams.count
            }
        }
    }

    func send(_ messages: UnsafeRawPointer, length: Int) -> Int {
        lock.withLock {
            sentDatagrams.append(Array(UnsafeRawBufferPointer(start: messages, count: length)))
            if !sendFailures.isEmpty { return -Int(sendFailures.removeFirst()) }
            return length
        }
    }

    func close() { lock.withLock { wasClosed = true } }
}

extension FakeKernelQueue {
    /// A packet message as the kernel sends one for `packet` (NetfilterQueueMessages' encoder,
    /// in nfqnl_build_packet_message's layout).
    static func message(_ packet: [UInt8], id: UInt32, hook: UInt32 = NF_INET_LOCAL_IN.rawValue, queue: UInt16 = 0,
                        inputInterface: UInt32 = 2, wireLength: Int? = nil) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: packet.count + 128)
        let length = buffer.withUnsafeMutableBytes { out in
            packet.withUnsafeBytes { payload in
                NetfilterQueueMessages.putPacket(out.baseAddress!, queue: queue, packetID: id,
                                                 hardwareProtocol: packet.first.map { $0 >> 4 == 6 } == true ? 0x86DD : 0x0800,
                                                 hook: UInt8(hook), inputInterface: inputInterface, payload: payload,
                                                 wireLength: wireLength)
            }
        }
        return Array(buffer.prefix(length))
    }
}
