import ArgumentParser

/// How conntrack list, get and watch print connections.
enum ConnectionFormat: String, ExpressibleByArgument, CaseIterable {
    /// The conntrack -L / -E layout.
    case line
    /// conntrack -o extended with counters: the family first, packets and bytes per direction.
    case extended
    /// One JSON document (list, get) or one object a line (watch).
    case json
}
