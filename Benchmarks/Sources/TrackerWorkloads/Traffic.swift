import SeqwallCore
#if canImport(Glibc)
import Glibc
#endif

/// The address family of a benchmark, with documentation-range addresses
/// (docs/design.md, Test lab addresses):
/// clients outside (198.51.100.0/24, 2001:db8:1::/64), servers inside (203.0.113.0/24,
/// 2001:db8:2::/64).
public enum Family: String, CaseIterable {
    case ipv4
    case ipv6

    /// IP header bytes ahead of the TCP header (no IPv4 options, no IPv6 extension headers).
    var ipHeaderLength: Int { self == .ipv4 ? 20 : 40 }

    /// Client number `index` of up to 16 million: IPv4 spreads them over 198.51.100.1-254 and
    /// source ports 1024-65535, IPv6 over 2001:db8:1::/64 with ports 1024-65535.
    func client(_ index: Int) -> (address: IPAddress, port: UInt16) {
        let port = UInt16(1024 + index % 64_512)
        let host = index / 64_512
        switch self {
        case .ipv4:
            precondition(host < 254, "more clients than 198.51.100.0/24 x 64512 ports")
            return (IPAddress(ipv4: 0xC633_6401 + UInt32(host)), port)
        case .ipv6:
            return (IPAddress(high: 0x2001_0DB8_0001_0000, low: 0x10 + UInt64(host)), port)
        }
    }

    /// One of 16 servers on port 443.
    func server(_ index: Int) -> (address: IPAddress, port: UInt16) {
        switch self {
        case .ipv4: return (IPAddress(ipv4: 0xCB00_710A + UInt32(index % 16)), 443)
        case .ipv6: return (IPAddress(high: 0x2001_0DB8_0002_0000, low: 0x10 + UInt64(index % 16)), 443)
        }
    }

    /// Outside clients may open connections to port 443 inside; everything else inbound is
    /// blocked (a short, typical rule set: new connections are not what this measures).
    func policy(states: Int) -> Policy {
        var policy = Policy()
        policy.inside = [
            IPNetwork(address: IPAddress(ipv4: 0xCB00_7100), prefixLength: 24),
            IPNetwork(address: IPAddress(high: 0x2001_0DB8_0002_0000, low: 0), prefixLength: 64),
        ]
        policy.defaultInbound = .block
        policy.defaultOutbound = .pass
        policy.rules = [
            Rule(action: .block, direction: .inbound, ports: [PortRange(23)],
                 location: SourceLocation(file: "bench.rules", line: 1, column: 1)),
            Rule(action: .pass, direction: .inbound, ports: [PortRange(80), PortRange(443)],
                 location: SourceLocation(file: "bench.rules", line: 2, column: 1)),
        ]
        policy.limits.states = states
        return policy
    }
}

/// One TCP segment to write: the headers only, since the NFQUEUE copy range (256 bytes) cuts
/// the payload off; `payloadLength` goes into the IP length field as on the wire.
struct SegmentSpec {
    var source: (address: IPAddress, port: UInt16)
    var destination: (address: IPAddress, port: UInt16)
    var sequence: UInt32
    var acknowledgment: UInt32
    var flags: TCPFlags
    var window: UInt16
    var payloadLength: Int = 0
    /// Timestamps (RFC 7323) on every segment, as Linux sends them.
    var timestampValue: UInt32 = 1
    var timestampEcho: UInt32 = 0
    /// SYN and SYN-ACK also carry MSS, SACK-permitted and window scale 7.
    var isHandshakeSYN: Bool { flags.contains(.syn) }
}

enum PacketWriter {
    /// The most bytes `write` puts down: IPv6 header + TCP header with SYN options.
    static let maximumHeaderBytes = 40 + 40

    /// Writes the IP and TCP headers of `segment` at `base`; returns (captured bytes, wire
    /// length). Checksums stay zero: the kernel checks them, the tracker never reads them.
    @discardableResult
    static func write(_ segment: SegmentSpec, family: Family, to base: UnsafeMutableRawPointer) -> (captured: Int, wire: Int) {
        // SYN: MSS 1460, SACK-permitted, timestamps, NOP, window scale 7 (Linux's SYN layout).
        // Others: NOP, NOP, timestamps.
        let tcpHeaderLength = segment.isHandshakeSYN ? 40 : 32
        let captured = family.ipHeaderLength + tcpHeaderLength
        let wire = captured + segment.payloadLength
        var writer = ByteWriter(base)
        switch family {
        case .ipv4:
            writer.put(UInt16(0x4500)); writer.put(UInt16(wire)); writer.put(UInt32(0xBEEF_4000)); writer.put(UInt32(0x4006_0000))
            writer.put(segment.source.address.ipv4Value); writer.put(segment.destination.address.ipv4Value)
        case .ipv6:
            writer.put(UInt32(0x6000_0000)); writer.put(UInt16(wire - 40)); writer.put(UInt16(0x0640))
            writer.put(segment.source.address.high); writer.put(segment.source.address.low)
            writer.put(segment.destination.address.high); writer.put(segment.destination.address.low)
        }
        writer.put(segment.source.port); writer.put(segment.destination.port)
        writer.put(segment.sequence); writer.put(segment.acknowledgment)
        writer.put(UInt8(tcpHeaderLength / 4) << 4); writer.put(segment.flags.rawValue); writer.put(segment.window)
        writer.put(UInt32(0))                  // checksum, urgent pointer
        if segment.isHandshakeSYN {
            writer.put(UInt32(0x0204_05B4)); writer.put(UInt32(0x0402_080A))
            writer.put(segment.timestampValue); writer.put(segment.timestampEcho)
            writer.put(UInt32(0x0103_0307))
        } else {
            writer.put(UInt32(0x0101_080A))
            writer.put(segment.timestampValue); writer.put(segment.timestampEcho)
        }
        precondition(writer.offset == captured)
        return (captured, wire)
    }
}

/// Big-endian stores at a moving offset.
struct ByteWriter {
    let base: UnsafeMutableRawPointer
    var offset = 0

    init(_ base: UnsafeMutableRawPointer) { self.base = base }

    @inline(__always)
    mutating func put<T: FixedWidthInteger>(_ value: T) {
        base.storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
    }

}

/// Pre-built packets in one contiguous buffer, read in order by the measured loop (as the
/// daemon reads them from its receive buffer). Filled outside the measured region.
final class PacketSchedule {
    let count: Int
    let stride: Int
    let bytes: UnsafeMutableRawPointer
    let capturedLengths: UnsafeMutablePointer<UInt16>
    let wireLengths: UnsafeMutablePointer<UInt32>
    /// One batch of packets and its verdicts, as the daemon's worker keeps them.
    let batch: UnsafeMutablePointer<QueuedPacket>
    let verdicts: UnsafeMutablePointer<Verdict>

    init(count: Int) {
        self.count = count
        stride = (PacketWriter.maximumHeaderBytes + 15) & ~15
        bytes = .allocate(byteCount: count * stride, alignment: 64)
        capturedLengths = .allocate(capacity: count)
        wireLengths = .allocate(capacity: count)
        batch = .allocate(capacity: ConnectionTracker.batchCapacity)
        verdicts = .allocate(capacity: ConnectionTracker.batchCapacity)
        verdicts.initialize(repeating: .accept, count: ConnectionTracker.batchCapacity)
    }

    deinit {
        bytes.deallocate()
        capturedLengths.deallocate()
        wireLengths.deallocate()
        batch.deallocate()
        verdicts.deallocate()
    }

    func set(_ index: Int, _ segment: SegmentSpec, family: Family) {
        let (captured, wire) = PacketWriter.write(segment, family: family, to: bytes + index * stride)
        capturedLengths[index] = UInt16(captured)
        wireLengths[index] = UInt32(wire)
    }

    /// Runs every packet through `tracker` at `now`, the way `feeding` says; returns how many
    /// were accepted. This loop is the measured region: no allocation, no I/O, nothing but the
    /// tracker.
    @inline(never)
    func run(through tracker: ConnectionTracker, now: UInt64, feeding: Feeding) -> Int {
        switch feeding {
        case .batches: return runBatches(through: tracker, now: now)
        case .oneByOne: return runOneByOne(through: tracker, now: now)
        }
    }

    func packet(_ index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: bytes + index * stride, count: Int(capturedLengths[index]))
    }

    func runOneByOne(through tracker: ConnectionTracker, now: UInt64) -> Int {
        var accepted = 0
        for index in 0..<count {
            if tracker.process(packet(index), wireLength: Int(wireLengths[index]), hook: .forward, now: now) == .accept {
                accepted += 1
            }
        }
        return accepted
    }

    /// As the daemon's worker does with a receive batch: up to `batchCapacity` packets
    /// described in a buffer it owns, decided by one call, then the verdicts read back.
    func runBatches(through tracker: ConnectionTracker, now: UInt64) -> Int {
        var accepted = 0
        var start = 0
        while start < count {
            let batchCount = min(ConnectionTracker.batchCapacity, count - start)
            for member in 0..<batchCount {
                batch[member] = QueuedPacket(bytes: packet(start + member), wireLength: Int(wireLengths[start + member]),
                                             hook: .forward)
            }
            tracker.process(batch: UnsafeBufferPointer(start: batch, count: batchCount), verdicts: verdicts, now: now)
            for member in 0..<batchCount where verdicts[member] == .accept { accepted += 1 }
            start += batchCount
        }
        return accepted
    }
}

/// How a workload hands its packets to the tracker.
public enum Feeding: String, CaseIterable, Sendable {
    /// `process(batch:verdicts:now:)`, `ConnectionTracker.batchCapacity` packets a call, as
    /// the daemon does.
    case batches
    /// `process(_:wireLength:hook:now:)`, one packet a call.
    case oneByOne = "one-by-one"
}

/// What the daemon asks the kernel for the table's large arrays (ConnectionTable's memory
/// advisor), so that the benchmark measures the memory the daemon runs on.
public func adviseHugePages(_ start: UnsafeMutableRawPointer, _ length: Int) {
    _ = madvise(start, length, MADV_HUGEPAGE)
}

/// The advisor a workload's tracker gets: the daemon's when `hugePages`, else none.
func memoryAdvisor(hugePages: Bool) -> ConnectionTable.MemoryAdvisor? {
    guard hugePages else { return nil }
    return { start, length in adviseHugePages(start, length) }
}

/// The anonymous memory of this process on transparent huge pages, in bytes
/// (/proc/self/smaps_rollup): shows whether the advice took.
public func residentHugePageBytes() -> Int {
    guard let file = fopen("/proc/self/smaps_rollup", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(cString: line)
        guard text.hasPrefix("AnonHugePages:") else { continue }
        let fields = text.split(separator: " ", omittingEmptySubsequences: true)
        return fields.count >= 2 ? (Int(fields[1]) ?? 0) * 1024 : 0
    }
    return 0
}

/// A small, fast, seeded generator: the same flows and orders every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Resident set size of this process, from /proc/self/statm (resident pages * page size).
public func residentBytes() -> Int {
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    guard fgets(&line, Int32(line.count), file) != nil else { return 0 }
    let fields = String(cString: line).split(separator: " ")
    guard fields.count >= 2, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
