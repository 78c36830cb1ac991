import Foundation
import SeqwallCore

/// A streamed line of a `list` answer.
public struct ConnectionLine: Codable, Sendable {
    public var connection: ConnectionRecord

    public init(connection: ConnectionRecord) { self.connection = connection }
}
