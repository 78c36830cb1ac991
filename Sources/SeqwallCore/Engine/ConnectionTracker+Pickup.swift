/// Connections first seen mid-stream: picked up with `set pickup on`, and with pickup off for a
/// grace period after a start without a usable state file and after `conntrack flush`
/// (docs/design.md, Pickup). Either way a picked-up connection is checked from
/// then on (TCPWindow, "Picked-up connections"); the kernel instead picks up any such
/// connection (nf_conntrack_tcp_loose) and never checks it again (be_liberal).
extension ConnectionTracker {
    /// Starts a grace period of `set pickup grace` from `now` (none when it is 0). The owner
    /// calls it on a start with no usable state file and after emptying the table; a reload
    /// never does. Every tracker of the daemon is given the same `now`, so they end together.
    public func startPickupGrace(now: UInt64) {
        let grace = UInt64(policy.pickupGrace) &* TCPStateMachine.nanosecondsPerSecond
        hot.pointee.pickupGraceEnds = grace == 0 ? 0 : now &+ grace
    }

    /// When the grace period ends (or ended), on the tracker clock; nil when none was started
    /// (or a reload turned it off).
    public var pickupGraceEnds: UInt64? {
        let ends = hot.pointee.pickupGraceEnds
        return ends == 0 ? nil : ends
    }

    /// Whether a connection first seen mid-stream at `now` may be picked up: a flag and a
    /// deadline compare, no lock and no allocation on the packet path.
    public func picksUp(now: UInt64) -> Bool {
        policy.pickup || now < hot.pointee.pickupGraceEnds
    }

    /// A lone ACK of a connection the table does not hold, with pickup allowed. The opener is
    /// told by the ports (PickupOpener) and the policy judges the connection as opened by it;
    /// when the ports do not tell, the connection must pass opened from either end. Anything
    /// the policy refuses is dropped as `rule`: so an inbound connection to a blocked port is
    /// never picked up, whichever side speaks first.
    func pickUp(_ segment: TCPSegment, key: FlowKey, hook: PacketHook, now: UInt64) -> Verdict {
        let opener = PickupOpener(sourcePort: segment.sourcePort, destinationPort: segment.destinationPort,
                                  ephemeral: policy.ephemeralPorts)
        let sender: FlowDirection = opener == .receiver ? .reply : .original
        let forward = decision(for: segment, hook: hook, openedBySender: sender == .original)
        switch forward.action {
        case .block:
            return dropped(.rule)
        case .reject:
            // Refused the way the rule says (the answer goes to the segment's sender), and
            // remembered under the segment's own tuple, where that answer travels back.
            rememberRejection(key, direction: forward.direction, state: .close, now: now)
            return rejectedByRule()
        case .pass:
            break
        }
        if opener == .unknown {
            let other = decision(for: segment, hook: hook, openedBySender: false)
            guard other.action == .pass else { return dropped(.rule) }
        }
        let connectionKey = sender == .original ? key : key.reversed
        var connection = Connection(key: connectionKey, direction: forward.direction)
        guard TCPStateMachine.begin(&connection, with: segment, pickup: true, sender: sender) else {
            return dropped(.noConnection)
        }
        return store(&connection, firstSegment: segment, sender: sender, ruleIndex: forward.ruleIndex, now: now)
    }

    /// The policy's decision for `segment`'s connection, opened by the segment's sender or by
    /// its receiver, and which way that connection goes. Every SYN's path (`open`) runs it too.
    // Always inlined: every SYN decides its rule here; inlined into `open`, it costs no call.
    @inline(__always)
    func decision(for segment: TCPSegment, hook: PacketHook, openedBySender: Bool)
        -> (action: RuleAction, ruleIndex: Int?, direction: Direction) {
        let client = openedBySender ? segment.source : segment.destination
        let server = openedBySender ? segment.destination : segment.source
        let serverPort = openedBySender ? segment.destinationPort : segment.sourcePort
        let direction: Direction
        switch hook {
        // In host mode the hook says which way the segment goes; the connection goes the
        // other way when the segment's receiver opened it.
        case .input: direction = openedBySender ? .inbound : .outbound
        case .output: direction = openedBySender ? .outbound : .inbound
        case .forward, .other: direction = self.direction(of: hook, source: client, destination: server)
        }
        let decision = policy.decide(direction: direction, source: client, destination: server,
                                     destinationPort: serverPort, answers: hot.pointee.tableAnswers)
        return (decision.action, decision.ruleIndex, direction)
    }
}
