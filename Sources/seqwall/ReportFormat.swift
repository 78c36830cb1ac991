import ArgumentParser

/// How stats and replay print their report.
enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json
}
