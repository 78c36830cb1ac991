/// "1 connection", "2 connections": a count with its noun in the right number, for every
/// message that says how many of something there were.
public enum Counted {
    public static func text(_ count: some BinaryInteger, _ singular: String, _ plural: String? = nil) -> String {
        "\(count) " + (count == 1 ? singular : plural ?? singular + "s")
    }
}
