import Foundation
import SeqwallCore

/// The control socket's protocol: JSON lines over a Unix stream socket.
///
/// A client sends one request line, e.g. `{"command":"stats"}`, and reads lines back until one
/// carries `"ok"`. A `list` answer streams one `{"connection":{...}}` line per connection before
/// its final `{"ok":true,"count":N}`; `delete` streams the connections it removed the same way.
/// `watch` streams `{"watch":{...}}` lines (and `{"lost":N}` when the watcher fell behind) until
/// the client closes the connection; its `filter` and `events` (e.g. `["new","destroy"]`)
/// select which. A failure is `{"ok":false,"error":"message"}`.
/// Requests are at most `ControlLimits.maximumRequestBytes` long.
public enum ControlLimits {
    public static let maximumRequestBytes = 64 * 1024
    /// Seconds a client may take to send its request.
    public static let requestTimeoutSeconds = 5
    public static let maximumClients = 32
    public static let defaultSocketPath = "/run/seqwall/control.sock"
}
