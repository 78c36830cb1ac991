import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct ControlClientError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
