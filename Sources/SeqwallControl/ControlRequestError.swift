import Foundation
import SeqwallCore

/// Why a control request line was refused; the text goes back to the client.
public struct ControlRequestError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }

    public static let tooLong = ControlRequestError("request too long: at most \(ControlLimits.maximumRequestBytes) bytes")
}
