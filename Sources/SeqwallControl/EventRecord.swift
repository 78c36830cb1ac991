import SeqwallCore

/// A table change for `conntrack watch`: the connection's fields plus `"event"`.
public struct EventRecord: Codable, Sendable, Equatable {
    /// "new", "update" or "destroy".
    public var event: String
    public var connection: ConnectionRecord

    public init(_ event: ConnectionEvent, now: UInt64) {
        self.event = event.kind.name
        self.connection = ConnectionRecord(event.connection, now: now)
    }

    enum CodingKeys: String, CodingKey { case event }

    /// One flat object: `{"event":"new","proto":"tcp",...}`.
    public func encode(to encoder: Encoder) throws {
        try connection.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(event, forKey: .event)
    }

    public init(from decoder: Decoder) throws {
        connection = try ConnectionRecord(from: decoder)
        event = try decoder.container(keyedBy: CodingKeys.self).decode(String.self, forKey: .event)
    }
}
