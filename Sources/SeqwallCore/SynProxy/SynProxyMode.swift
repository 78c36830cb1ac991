/// `set synproxy always` or `set synproxy adaptive [start P% end P%]`: whether `synproxy`
/// rules proxy every handshake, or only while the table holds many half-open connections, as
/// pf's `set syncookies adaptive`: proxying starts when half-open connections reach `start`
/// percent of `limit states` and stops when they fall to `end` percent (pf's defaults, 25 and
/// 12), so that in quiet times connections go straight through and pay no translation.
public enum SynProxyMode: Sendable, Equatable {
    case always
    case adaptive(start: Int, end: Int)

    public static let defaultStart = 25
    public static let defaultEnd = 12
}
