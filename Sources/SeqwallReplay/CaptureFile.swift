import CPcap

/// Why a capture could not be read: one line, naming the file.
public struct CaptureError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String

    public init(_ description: String) { self.description = description }
}

/// One frame of a capture, valid only inside the `CaptureFile.read` call that hands it out
/// (`bytes` points into libpcap's buffer).
public struct CapturedFrame {
    /// Capture time, seconds and nanoseconds since the Unix epoch.
    public var seconds: Int64
    public var nanoseconds: Int64
    /// What the capture kept (`caplen`): may be cut short by the snap length.
    public var bytes: UnsafeRawBufferPointer
    /// The frame's length on the wire (`len`), at least `bytes.count`.
    public var originalLength: Int

    public init(seconds: Int64, nanoseconds: Int64, bytes: UnsafeRawBufferPointer, originalLength: Int) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
        self.bytes = bytes
        self.originalLength = max(originalLength, bytes.count)
    }
}

/// A saved capture, pcap or pcapng, read through libpcap. The only place that calls libpcap
/// (as swift-system wraps its system calls): a handle that is closed exactly once, errors turned
/// into `CaptureError` with libpcap's own message.
final class CaptureFile {
    private let handle: OpaquePointer
    let path: String
    /// The DLT_ value of the capture's link layer (pcap_datalink).
    let dataLinkType: Int32

    /// Opens `path` ("-" is standard input, as in tcpdump -r). Timestamps are read with
    /// nanosecond precision whatever the file stores: libpcap scales microsecond files up.
    init(path: String) throws(CaptureError) {
        var message = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let handle = pcap_open_offline_with_tstamp_precision(path, UInt32(PCAP_TSTAMP_PRECISION_NANO), &message) else {
            // libpcap names the file itself for some errors: say it once.
            var reason = CaptureFile.text(message)
            if reason.hasPrefix(path + ": ") { reason.removeFirst(path.count + 2) }
            throw CaptureError("\(path): cannot read capture: \(reason)")
        }
        self.handle = handle
        self.path = path
        self.dataLinkType = pcap_datalink(handle)
    }

    deinit {
        pcap_close(handle)
    }

    /// libpcap's name for the link type, e.g. "EN10MB", "LINUX_SLL2", or "DLT 147".
    var dataLinkName: String { CaptureFile.name(ofDataLinkType: dataLinkType) }

    static func name(ofDataLinkType type: Int32) -> String {
        guard let name = pcap_datalink_val_to_name(type) else { return "DLT \(type)" }
        return String(cString: name)
    }

    /// The capture's snap length: frames longer than this were cut.
    var snapLength: Int { Int(pcap_snapshot(handle)) }

    /// Hands the next frame to `body`; false at the end of the file. Throws when the file is
    /// damaged or cut short in the middle of a record.
    func read<Result>(_ body: (CapturedFrame) -> Result) throws(CaptureError) -> Result? {
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        switch pcap_next_ex(handle, &header, &data) {
        case 1:
            guard let header, let data else { throw CaptureError("\(path): libpcap returned a frame without data") }
            let captured = Int(header.pointee.caplen)
            let frame = CapturedFrame(
                seconds: Int64(header.pointee.ts.tv_sec),
                // With PCAP_TSTAMP_PRECISION_NANO, tv_usec holds nanoseconds.
                nanoseconds: Int64(header.pointee.ts.tv_usec),
                bytes: UnsafeRawBufferPointer(start: data, count: captured),
                originalLength: Int(header.pointee.len))
            return body(frame)
        case PCAP_ERROR_BREAK:
            return nil
        default:
            throw CaptureError("\(path): \(String(cString: pcap_geterr(handle)))")
        }
    }

    /// Reads to the end and says how many frames there were; a damaged file counts the frames
    /// before the damage (the replay pass reports it).
    func countFrames() -> Int {
        var count = 0
        while (try? read({ _ in true })) == true { count += 1 }
        return count
    }

    private static func text(_ buffer: [CChar]) -> String {
        buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
