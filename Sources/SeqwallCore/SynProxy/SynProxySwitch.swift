/// Whether `synproxy` rules proxy right now, for `set synproxy adaptive`: on when half-open
/// connections reach `start` percent of the table, off again when they fall to `end` percent,
/// unchanged in between (hysteresis, so the mode does not flap with each connection), as pf's
/// adaptive syncookies (pf_synflood_check). With `always` it is always on.
public struct SynProxySwitch: Sendable, Equatable {
    public private(set) var engaged: Bool
    /// Half-open counts at which it turns on and off, from the mode and the table's limit.
    let onAt: Int
    let offAt: Int

    public init(mode: SynProxyMode, tableLimit: Int) {
        switch mode {
        case .always:
            engaged = true
            onAt = 0
            offAt = -1
        case .adaptive(let start, let end):
            engaged = false
            // Rounded up, so that a percentage of a small table still needs one connection.
            onAt = max(1, (tableLimit * start + 99) / 100)
            offAt = tableLimit * end / 100
        }
    }

    /// Updates the switch for the current half-open count and returns whether it is on.
    public mutating func update(halfOpen: Int) -> Bool {
        if !engaged && halfOpen >= onAt {
            engaged = true
        } else if engaged && halfOpen <= offAt {
            engaged = false
        }
        return engaged
    }
}
