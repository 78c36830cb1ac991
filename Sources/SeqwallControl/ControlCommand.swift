import Foundation
import SeqwallCore

public enum ControlCommand: String, Codable, Sendable, CaseIterable {
    case ping
    case stats
    case list
    case count
    case delete
    case flush
    case reload
    /// Stream `{"watch":{...}}` lines for every table change until the client goes away.
    case watch
    /// The policy in force with per-rule counters: `{"ok":true,"rules":{...}}` (RulesRecord).
    case rules
    /// Show, change or test one address table (`request.table`, TableRequest).
    case table
    /// The state sync's figures: `{"ok":true,"sync":{...}}` (SyncStatus); ok false without a peer.
    case sync
}
