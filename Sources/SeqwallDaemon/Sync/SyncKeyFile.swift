import SeqwallSync
#if canImport(Glibc)
import Glibc
#endif

/// Reads the sync key (`--sync-key`) as OwnedFile reads what it guards (not a link, ours,
/// writable by no one else, small), and readable by no one else (SyncKey says why). Every
/// refusal says what to fix.
enum SyncKeyFile {
    struct Problem: Error, CustomStringConvertible {
        let description: String
    }

    static func read(path: String) throws(Problem) -> SyncKey {
        func problem(_ text: String) -> Problem { Problem(description: "sync key \(path) \(text)") }
        let file: (bytes: [UInt8], mode: mode_t)?
        do throws(OwnedFile.Problem) {
            file = try OwnedFile.read(path: path, maximumBytes: 256, bound: "for a key")
        } catch {
            throw problem(error.description)
        }
        guard let file else {
            throw problem("does not exist; make one with: head -c32 /dev/urandom > \(path); chmod 600 \(path)")
        }
        do {
            return try SyncKey(fileContents: file.bytes, mode: UInt32(file.mode))
        } catch {
            throw problem(error.description)
        }
    }
}
