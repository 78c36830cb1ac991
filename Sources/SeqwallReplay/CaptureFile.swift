import CPcap
#if canImport(Glibc)
import Glibc
#endif

/// Why a capture could not be read: one line, naming the file.
public struct CaptureError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String

    public init(_ description: String) { self.description = description }
}

/// One frame of a capture, valid only inside the `CaptureFile.read` call that hands it out
/// (`bytes` points into the reader's buffer).
public struct CapturedFrame {
    /// Capture time, seconds and nanoseconds since the Unix epoch.
    public var seconds: Int64
    public var nanoseconds: Int64
    /// What the capture kept (`caplen`): may be cut short by the snap length.
    public var bytes: UnsafeRawBufferPointer
    /// The frame's length on the wire (`len`), at least `bytes.count`.
    public var originalLength: Int
    /// The link layer of the interface the frame was captured on, when a capture has one per
    /// interface (pcapng); nil for the capture's one link layer.
    public var link: LinkLayer?

    public init(seconds: Int64, nanoseconds: Int64, bytes: UnsafeRawBufferPointer, originalLength: Int,
                link: LinkLayer? = nil) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
        self.bytes = bytes
        self.originalLength = max(originalLength, bytes.count)
        self.link = link
    }
}

/// A saved capture: pcapng through `PcapNGReader`, classic pcap through libpcap. The only
/// place that calls libpcap (as swift-system wraps its system calls): a handle that is closed
/// exactly once, errors turned into `CaptureError` with libpcap's own message.
final class CaptureFile {
    private enum Reader {
        case libpcap(OpaquePointer)
        case pcapng(PcapNGReader)
    }

    private let reader: Reader
    let path: String
    /// The DLT_ value of the capture's link layer (pcap_datalink); a pcapng file's first
    /// interface's.
    let dataLinkType: Int32

    /// Opens `path` ("-" is standard input, as in tcpdump -r). Timestamps are read with
    /// nanosecond precision whatever the file stores (libpcap scales microsecond files up).
    /// The first byte tells the formats apart: a pcapng file starts with its Section Header
    /// Block's type, 0x0A0D0D0A, and no classic pcap magic starts with 0x0A.
    init(path: String) throws(CaptureError) {
        guard let file = path == "-" ? fdopen(STDIN_FILENO, "rb") : fopen(path, "rb") else {
            throw CaptureError("\(path): cannot read capture: \(String(cString: strerror(errno)))")
        }
        let first = getc(file)
        if first != EOF { ungetc(first, file) }
        self.path = path
        if first == 0x0A {
            let reader = try PcapNGReader(file: file, path: path)
            self.reader = .pcapng(reader)
            dataLinkType = reader.dataLinkType
            return
        }
        var message = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let handle = pcap_fopen_offline_with_tstamp_precision(file, UInt32(PCAP_TSTAMP_PRECISION_NANO), &message) else {
            fclose(file)
            // libpcap names the file itself for some errors: say it once.
            var reason = CaptureFile.text(message)
            if reason.hasPrefix(path + ": ") { reason.removeFirst(path.count + 2) }
            throw CaptureError("\(path): cannot read capture: \(reason)")
        }
        reader = .libpcap(handle)
        dataLinkType = pcap_datalink(handle)
    }

    deinit {
        // pcap_close closes the file too; a PcapNGReader closes its own.
        if case .libpcap(let handle) = reader { pcap_close(handle) }
    }

    /// libpcap's name for the link type, e.g. "EN10MB", "LINUX_SLL2", or "DLT 147".
    var dataLinkName: String { CaptureFile.name(ofDataLinkType: dataLinkType) }

    static func name(ofDataLinkType type: Int32) -> String {
        guard let name = pcap_datalink_val_to_name(type) else { return "DLT \(type)" }
        return String(cString: name)
    }

    /// The capture's snap length: frames longer than this were cut. For a pcapng file with
    /// several interfaces, the largest.
    var snapLength: Int {
        switch reader {
        case .libpcap(let handle): Int(pcap_snapshot(handle))
        case .pcapng(let reader): reader.snapLength
        }
    }

    /// Each interface's link type and snap length, for a pcapng file of more than one
    /// interface; nil otherwise.
    var interfaces: [(dataLinkType: Int32, snapLength: Int)]? {
        guard case .pcapng(let reader) = reader, reader.allInterfaces.count > 1 else { return nil }
        return reader.allInterfaces.map { ($0.linkType, $0.snapLength) }
    }

    /// Hands the next frame to `body`; false at the end of the file. Throws when the file is
    /// damaged or cut short in the middle of a record, or a frame comes from an interface whose
    /// link layer replay does not read.
    func read<Result>(_ body: (CapturedFrame) -> Result) throws(CaptureError) -> Result? {
        switch reader {
        case .libpcap(let handle):
            return try CaptureFile.read(handle, path: path, body)
        case .pcapng(let reader):
            var unsupported: Int32?
            let result = try reader.read { frame, interface -> Result? in
                guard let link = LinkLayer(dataLinkType: interface.linkType) else {
                    unsupported = interface.linkType
                    return nil
                }
                var frame = frame
                frame.link = link
                return body(frame)
            }
            if let unsupported {
                throw CaptureError("\(path): a frame's interface has link type \(CaptureFile.name(ofDataLinkType: unsupported)) "
                    + "(\(unsupported)), which replay does not read")
            }
            return result ?? nil
        }
    }

    private static func read<Result>(_ handle: OpaquePointer, path: String,
                                     _ body: (CapturedFrame) -> Result) throws(CaptureError) -> Result? {
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
