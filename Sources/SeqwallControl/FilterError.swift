import Foundation
import SeqwallCore

public struct FilterError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
