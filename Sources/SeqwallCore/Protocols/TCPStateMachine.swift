/// The TCP state machine: the kernel's transition table (nf_conntrack_proto_tcp.c,
/// tcp_conntracks) and the rules around it, on one connection at a time. Pure: no clock but
/// the one passed in, no table, no I/O.

public enum TCPStateMachine {
    /// After this many identical retransmissions, a long timeout shrinks (tcp_max_retrans).
    public static let maximumRetransmissions: UInt8 = 3
    /// Lower bound of acceptable ACKs below the receiver's end (MAXACKWINCONST).
    static let minimumAckWindow: UInt32 = 66000
    /// The largest window scale shift (RFC 7323 2.3, TCP_MAX_WSCALE).
    public static let maximumWindowScale: UInt8 = 14

    /// Sets up a connection from the segment that creates it (the kernel's tcp_new). Returns
    /// false when the segment cannot open a connection: only a SYN can, and with pickup on also
    /// a segment whose only control flag is ACK (tcp_conntracks ORIGINAL column sNO: SYN -> sSS,
    /// ACK -> sES, SYN-ACK, FIN, RST and none -> sIV; so a FIN or an RST never starts a pickup).
    /// `sender` is the direction the segment goes in the connection: a SYN always goes in the
    /// original one; a picked-up segment goes in the reply one when its receiver opened the
    /// connection (PickupOpener). Track the segment in that direction next.
    public static func begin(_ connection: inout Connection, with segment: TCPSegment, pickup: Bool,
                             sender direction: FlowDirection = .original) -> Bool {
        let index = TCPFlagIndex(segment.flags)
        guard case .to(let first) = transition(.original, index, .none) else { return false }
        if first == .synSent {
            guard direction == .original else { return false }
            open(&connection, with: segment)
        } else {
            guard pickup else { return false }
            pickUp(&connection, with: segment, sender: direction)
        }
        connection.lastIndex = .none
        return true
    }

    /// A connection opened by a SYN: its opener's side is what the SYN shows.
    static func open(_ connection: inout Connection, with syn: TCPSegment) {
        var opener = TCPPeerState()
        opener.end = syn.end
        opener.maxEnd = opener.end
        opener.maxWindow = max(UInt32(syn.window), 1)
        applySynOptions(syn.options, to: &opener)
        connection.original = opener
    }

    /// A connection first seen mid-stream (ESTABLISHED, UNREPLIED until the other side
    /// answers): its history is lost, so what the segments show is learned and what can be
    /// checked is checked (TCPWindow, "Picked-up connections"). The kernel instead marks both
    /// sides "be liberal" and never judges the connection again. Picked up from the reply side,
    /// the connection is ESTABLISHED at once, as the opener's ACK would have made it.
    static func pickUp(_ connection: inout Connection, with segment: TCPSegment, sender direction: FlowDirection) {
        // The SYNs carried the window scale: assume the largest legal one, so no window is
        // taken smaller than it really is. SACK may have been agreed: take SACK blocks as
        // ACKs, which only a stack that agreed to them sends.
        let unknown: PeerFlags = [.sackPermitted, .windowScaleUnknown, .endUnknown]
        var sender = TCPPeerState()
        sender.end = segment.end
        sender.scale = maximumWindowScale
        sender.flags = unknown
        sender.maxWindow = max(UInt32(segment.window) << UInt32(maximumWindowScale), 1)
        // Its upper bound comes from the other side's window; until that is seen, what this
        // side sends sets it (TCPWindow.checkPickedUp).
        sender.maxEnd = sender.end
        connection.setPeer(direction, sender)
        // The other side has sent at least what this segment acknowledges.
        var other = TCPPeerState()
        other.scale = maximumWindowScale
        other.flags = unknown
        other.end = segment.acknowledgment
        other.maxEnd = segment.acknowledgment
        connection.setPeer(direction.opposite, other)
        connection.status.insert(.pickedUp)
        if direction == .reply { connection.state = .established }
    }

    /// Tracks one segment of an existing connection (nf_conntrack_tcp_packet). `now` and the
    /// timeouts set the new expiry; the connection is updated in place for segments that pass.
    /// A dropped segment changes nothing, except that a FIN or RST out of window in an assured
    /// connection may shorten its timeout, as the kernel's nf_tcp_handle_invalid does.
    public static func track(_ connection: inout Connection, direction: FlowDirection, segment: TCPSegment,
                             timeouts: borrowing TCPTimeouts, now: UInt64) -> TrackOutcome {
        let index = TCPFlagIndex(segment.flags)
        var oldState = connection.state
        var cell = transition(direction, index, oldState)
        var checkWindow = true
        // What a resynchronisation (`applyRules`) changes, to put back should its window check
        // fail: only these, since a failing window check changes nothing itself.
        var beforeResync: Resync?

        if index == .fin || cell.needsRules {
            if let outcome = applyRules(&connection, direction: direction, index: index, segment: segment,
                                        oldState: &oldState, cell: &cell, checkWindow: &checkWindow,
                                        beforeResync: &beforeResync) {
                return outcome
            }
        }

        guard case .to(let newState) = cell else { return .drop(.badTransition) }

        if checkWindow {
            switch TCPWindow.check(&connection, direction: direction, index: index, segment: segment, state: oldState) {
            case .accept: break
            case .ignore: return .accept
            case .invalid(let reason):
                if let beforeResync {
                    connection.status = beforeResync.status
                    connection.original = beforeResync.original
                    connection.reply = beforeResync.reply
                }
                noteInvalid(&connection, direction: direction, index: index, timeouts: timeouts, now: now)
                return .drop(index == .rst ? .rstOutOfWindow : reason)
            }
        }

        // From here on the segment is in window.
        noteLast(index, direction, in: &connection)
        // Only a FIN starts the bookkeeping, and every state a FIN leads to is FIN_WAIT or
        // later: the state already at hand spares the established path a load.
        if index == .fin || oldState.rawValue >= TCPState.finWait.rawValue {
            noteClose(&connection, direction: direction, index: index, segment: segment)
        }
        connection.state = newState
        if oldState != newState && newState == .finWait {
            var sender = connection.peer(direction)
            sender.flags.insert(.closeInit)
            connection.setPeer(direction, sender)
        }

        var timeout = timeoutSeconds(for: newState, retransmissions: connection.retransmissions,
                                     peerFlags: connection.original.flags.union(connection.reply.flags),
                                     lastWindow: connection.lastWindow, index: index, timeouts: timeouts)
        if !connection.status.contains(.seenReply) {
            // Only an RST answered: there never was a connection (the kernel deletes it at once).
            if index == .rst { return .destroy }
            // "Do not renew timeout on SYN retransmit" (nf_conntrack_tcp_packet): an
            // unanswered entry keeps the deadline its first SYN set, however often the SYN is
            // sent again (this includes a crossing SYN, the first reply of a simultaneous
            // open). So a sender retransmitting into silence forever loses the entry SYN_SENT's
            // timeout after it was made; the next SYN finds nothing (or an expired entry,
            // which counts as nothing), makes a new entry and is judged by the rules and the
            // half-open limits again. Otherwise port reuse could keep one entry alive for ever.
            if index == .syn && oldState == .synSent { return .accept }
            // Picked up without a reply yet: no long ESTABLISHED timeout.
            if newState == .established { timeout = min(timeout, timeouts.unacknowledged) }
        } else if !connection.status.contains(.assured),
                  oldState == .synRecv || oldState == .established, newState == .established {
            if connection.status.contains(.pickedUp)
                && (connection.original.maxWindow == 0 || connection.reply.maxWindow == 0) {
                // Picked up from the reply side (begin): its own segments mark the connection
                // replied, but the opener has not been heard yet. Not assured, and no long
                // timeout, until both sides have spoken.
                timeout = min(timeout, timeouts.unacknowledged)
            } else {
                connection.status.insert(.assured)
            }
        }
        connection.expiresAt = now &+ UInt64(timeout) &* nanosecondsPerSecond
        return .accept
    }

    /// Connection status and both sides, as a resynchronisation found them.
    typealias Resync = (status: ConnectionStatus, original: TCPPeerState, reply: TCPPeerState)

    /// The rules the transition table cannot express, for the cells that have any (see
    /// `TCPTransition.needsRules`) and for FINs: reopening a closed tuple, repeated FINs,
    /// ignored segments and the resynchronisation after them, challenge ACKs, simultaneous
    /// open, and the RST rules. Returns the outcome when they settle the segment, else nil with
    /// `oldState`, `cell` and `checkWindow` as the window check and the rest of `track` take them.
    // Never inlined: the handshake and the close only, kept out of `track`, which every
    // established segment runs.
    @inline(never)
    static func applyRules(_ connection: inout Connection, direction: FlowDirection, index: TCPFlagIndex,
                           segment: TCPSegment, oldState: inout TCPState, cell: inout TCPTransition,
                           checkWindow: inout Bool, beforeResync: inout Resync?) -> TrackOutcome? {
        if case .to(.synSent) = cell, oldState.rawValue >= TCPState.timeWait.rawValue, oldState != .synSent2 {
            // A SYN on a TIME_WAIT or CLOSE tuple. If the old connection was closed or aborted
            // by us seeing FIN or RST, start over; otherwise we may be out of sync: ignore it.
            let closed = connection.original.flags.union(connection.reply.flags).contains(.closeInit)
            if closed || (connection.lastDirection == direction && connection.lastIndex == .rst) {
                return .reopen
            }
            cell = .ignore
        }

        if index == .fin, connection.closing.contains(.fin(direction)), case .to = cell {
            // A FIN repeated by the side that sent one (a retransmission or a duplicate)
            // closes nothing more: the kernel's table would take it for the other side's FIN
            // (sFW -> sLA) and then an ACK for the last ACK, so the entry would reach a
            // TIME_WAIT that neither endpoint is in.
            cell = .to(oldState)
        }

        switch cell {
        case .invalid:
            return .drop(.badTransition)

        case .ignore:
            if index == .synAck, connection.lastIndex == .syn, connection.lastDirection != direction,
               segment.acknowledgment == connection.lastEnd {
                // This SYN-ACK answers a SYN we ignored: both ends are in sync and we are not.
                // Adopt what the ignored SYN said and go on as for a fresh handshake. Should the
                // window check then fail (a SACK block beyond the SYN), nothing of this stays.
                beforeResync = (connection.status, connection.original, connection.reply)
                oldState = .synSent
                cell = .to(.synRecv)
                var opener = TCPPeerState()
                opener.end = connection.lastEnd
                opener.maxEnd = connection.lastEnd
                opener.maxWindow = max(UInt32(connection.lastWindow), 1)
                opener.scale = connection.lastWindowScale
                opener.flags = connection.lastPeerFlags
                // A picked-up connection is now known from its SYNs.
                connection.status.subtract([.expectChallengeAck, .pickedUp])
                connection.closing = []
                connection.setPeer(connection.lastDirection, opener)
                connection.setPeer(direction, TCPPeerState())
            } else {
                remember(segment, index: index, direction: direction, in: &connection)
                if index == .syn && direction == .original {
                    // The kernel keeps these two bits in last_flags, which an ignored SYN
                    // starts afresh: after it, an ACK from the reply side in SYN_RECV no
                    // longer completes a simultaneous open.
                    connection.status.subtract([.simultaneousOpen, .expectChallengeAck])
                    var seen = TCPPeerState()
                    applySynOptions(segment.options, to: &seen)
                    connection.lastPeerFlags = seen.flags.intersection([.windowScale, .sackPermitted])
                    connection.lastWindowScale = seen.scale
                    // A SYN in LAST_ACK may draw a challenge ACK that is not the last ACK.
                    if oldState == .lastAck { connection.status.insert(.expectChallengeAck) }
                }
                if oldState == .synSent && index == .ack && direction == .reply {
                    // Possible challenge ACK answering the SYN; an RST may follow with this seq.
                    connection.lastAcknowledgment = segment.acknowledgment
                }
                return .accept
            }

        case .to(.timeWait):
            // RFC 5961 4: a challenge ACK answering a SYN in LAST_ACK does not ack the last FIN.
            if oldState == .lastAck, index == .ack, connection.lastDirection != direction,
               connection.lastIndex == .syn, connection.status.contains(.expectChallengeAck) {
                connection.status.remove(.expectChallengeAck)
                return .accept
            }

        case .to(.synSent2):
            connection.status.insert(.simultaneousOpen)

        case .to(.synRecv):
            if direction == .reply, index == .ack, connection.status.contains(.simultaneousOpen) {
                cell = .to(.established)
            }

        case .to(.close):
            guard index == .rst else { break }
            // RFC 1337: an RST must not assassinate TIME_WAIT, so one addressed to an endpoint
            // that is in TIME_WAIT (CloseProgress) is dropped; the kernel lets any RST close
            // the entry. Any other RST in TIME_WAIT (from that endpoint, to the passive
            // closer, or after a close the tracker did not see whole) is judged as in the
            // other closing states below: an endpoint may still be in CLOSE_WAIT, LAST_ACK or
            // FIN_WAIT, and its RST or the RST it needs must pass.
            if oldState == .timeWait, connection.closing.inTimeWait(direction.opposite) {
                return .drop(.timeWaitRST)
            }
            switch oldState {
            case .close:
                // Closed already (the kernel's tcp_can_early_drop): nothing left to protect,
                // and the window data may belong to a tuple reused since.
                checkWindow = false
            case .synSent where direction == .reply:
                // RFC 9293 3.10.7.3: in SYN-SENT an RST is acceptable only if it acknowledges
                // the SYN; the client discards any other. Stricter than the kernel, which takes
                // any ACK up to 66000 below (and passes those further down unchanged), so a
                // blind RST could end the entry before the real SYN-ACK.
                guard segment.flags.contains(.ack), segment.acknowledgment == connection.original.end else {
                    return .drop(.rstOutOfWindow)
                }
                checkWindow = false
            default:
                // FIN_WAIT, CLOSE_WAIT, LAST_ACK and TIME_WAIT included: the kernel takes any
                // RST there (tcp_can_early_drop), but an out-of-window RST never closes a
                // connection here (RFC 5961 3.2; docs/design.md, Deliberate differences from the
                // kernel), and half-closed connections still carry data one way. Tuple reuse is
                // caught by the rules below (an RST answering an ignored SYN).
                switch resetCheck(connection, direction: direction, segment: segment, oldState: oldState) {
                case .invalid: return .drop(.rstOutOfWindow)
                case .keepState: cell = .to(oldState)
                case .skipWindow: checkWindow = false
                case .checkWindow: break
                }
            }

        default:
            break
        }
        return nil
    }

    /// The kernel's nf_tcp_handle_invalid: in an assured connection, a FIN or RST out of window
    /// that answers a FIN or RST from the other side (passed, or dropped as out of window too)
    /// means the ends have closed while the tracker fell out of step: do not keep the entry for
    /// days, shorten its timeout to the unacknowledged one (unless less than two minutes are
    /// left). Otherwise note it, so that an answer to it is recognised. The kernel notes it in
    /// last_index, where it also changes how the RST rules judge the next segments (a blind
    /// out-of-window RST would make the real RST answering an ignored SYN invalid); seqwall
    /// keeps the note apart.
    static func noteInvalid(_ connection: inout Connection, direction: FlowDirection, index: TCPFlagIndex,
                            timeouts: TCPTimeouts, now: UInt64) {
        guard connection.status.contains(.assured), index == .fin || index == .rst else { return }
        let answered = (connection.lastDirection != direction
                        && (connection.lastIndex == .fin || connection.lastIndex == .rst))
            || connection.status.contains(droppedClose(direction.opposite))
        if answered {
            let left = connection.expiresAt > now ? connection.expiresAt - now : 0
            if left < 120 * nanosecondsPerSecond { return }
            let shortened = now &+ UInt64(timeouts.unacknowledged) &* nanosecondsPerSecond
            if connection.expiresAt > shortened { connection.expiresAt = shortened }
        } else {
            connection.status.insert(droppedClose(direction))
        }
    }

    static func droppedClose(_ direction: FlowDirection) -> ConnectionStatus {
        direction == .original ? .droppedCloseOriginal : .droppedCloseReply
    }

    /// Notes the last segment that passed (last_index, last_dir); a note of a dropped FIN or
    /// RST ends there, as the kernel's last_index is overwritten.
    static func noteLast(_ index: TCPFlagIndex, _ direction: FlowDirection, in connection: inout Connection) {
        connection.lastIndex = index
        connection.lastDirection = direction
        connection.status.subtract([.droppedCloseOriginal, .droppedCloseReply])
    }

    /// Keeps CloseProgress after a segment that passed: whether it acknowledges the other
    /// side's FIN, and whether it is this side's first FIN and then an active close (it does
    /// not acknowledge the other side's FIN, RFC 9293 3.6). A FIN's end is its sender's `end`
    /// (nothing follows a FIN); should a side send past its FIN, no ACK covers that and its
    /// FIN stays unacknowledged, so no RST to it is ever dropped as `time-wait-rst`.
    static func noteClose(_ connection: inout Connection, direction: FlowDirection, index: TCPFlagIndex,
                          segment: TCPSegment) {
        let other = direction.opposite
        if segment.flags.contains(.ack), connection.closing.contains(.fin(other)),
           !connection.closing.contains(.finAcked(other)),
           !SequenceNumber.before(segment.acknowledgment, connection.peer(other).end) {
            connection.closing.insert(.finAcked(other))
        }
        if index == .fin && !connection.closing.contains(.fin(direction)) {
            connection.closing.insert(.fin(direction))
            if !connection.closing.contains(.finAcked(other)) { connection.closing.insert(.active(direction)) }
        }
    }

    static let nanosecondsPerSecond: UInt64 = 1_000_000_000

    enum ResetCheck { case invalid, keepState, skipWindow, checkWindow }

    /// The kernel's RST rules for an RST that would close a live connection (RFC 5961 3.2).
    static func resetCheck(_ connection: Connection, direction: FlowDirection, segment: TCPSegment,
                           oldState: TCPState) -> ResetCheck {
        let other = connection.peer(direction.opposite)
        let established = oldState == .established && connection.status.contains(.assured)
        // The segment that passed last, if it was one we let through while out of sync (an
        // ignored SYN, or an ACK in a half-open connection), can be answered only by its
        // receiver: an RST from the side that sent it answers nothing, and is judged as any
        // other RST. Otherwise a SYN and an RST from one side, both forged blind (the RST's
        // ACK is the forged SYN's end), would close the connection, as they did in kernels
        // whose nf_conntrack_tcp_packet did not compare last_dir here.
        let answering = connection.lastDirection != direction
        // After a SYN from the other side, the RST's receiver may be a new incarnation whose
        // old maxAck says nothing (the kernel's "td_maxack might be outdated"). A SYN from the
        // RST's own side changes nothing about its receiver: the RFC 5961 checks stay.
        if other.flags.contains(.maxAckSet) && !(connection.lastIndex == .syn && answering) {
            // Each early return to the window check below is the kernel's `break`: such an
            // RST is judged by tcp_in_window alone, never waved through by the rules after
            // this block.
            let sequence = segment.sequence
            // SEQ 0 outside ESTABLISHED: likely the answer to a SYN we let through.
            if sequence == 0 && !established { return .checkWindow }
            // Below what the other side already acknowledged: not a valid RST.
            if SequenceNumber.before(sequence, other.maxAck) { return .invalid }
            if !established || sequence == other.maxAck { return .checkWindow }
            // The end of a data train: "P seq:end ack" followed by "R end".
            if connection.lastIndex == .ack && connection.lastDirection == direction
                && sequence == connection.lastEnd {
                return .checkWindow
            }
            // In window but not exact: the receiver answers with a challenge ACK; keep the
            // state until an exact RST comes (RFC 5961 3.2). The kernel goes on to the checks
            // below, but in an assured ESTABLISHED connection whose last segment was not a SYN
            // none of them can hold.
            return .keepState
        }
        // An RST answering a SYN or ACK we let through while out of sync.
        let answersIgnored = (connection.status.contains(.seenReply) && connection.lastIndex == .syn)
            || (!connection.status.contains(.assured) && connection.lastIndex == .ack)
        if answersIgnored && answering && segment.acknowledgment == connection.lastEnd { return .skipWindow }
        // An RST answering a challenge ACK we let through in SYN_SENT (from the original
        // side: the reply side's RSTs in SYN_SENT are settled in `track`).
        if oldState == .synSent, connection.lastIndex == .ack, connection.lastDirection == .reply,
           segment.sequence == connection.lastAcknowledgment {
            return .skipWindow
        }
        return .checkWindow
    }

    /// The kernel's choice of timeout after an accepted segment (end of
    /// nf_conntrack_tcp_packet), first match in this order: RETRANS once the same ACK came
    /// tcp_max_retrans times in a row, when shorter than the state's; CLOSE for an RST; UNACK
    /// while either side has data unacknowledged, when shorter; RETRANS after a zero window,
    /// when shorter; else the state's own. Like the kernel's last_win, `lastWindow` is set by
    /// ACK segments only and is 0 before the first: with RETRANS set below SYN_SENT's or
    /// SYN_RECV's timeout, the handshake gets RETRANS too.
    /// Takes the few fields it needs rather than the connection, which the caller holds inout
    /// and would otherwise have to copy.
    static func timeoutSeconds(for state: TCPState, retransmissions: UInt8, peerFlags: PeerFlags,
                               lastWindow: UInt16, index: TCPFlagIndex, timeouts: TCPTimeouts) -> UInt32 {
        let normal = timeouts[state]
        if retransmissions >= maximumRetransmissions && normal > timeouts.retransmit {
            return timeouts.retransmit
        }
        if index == .rst { return timeouts.close }
        if peerFlags.contains(.dataUnacknowledged) && normal > timeouts.unacknowledged {
            return timeouts.unacknowledged
        }
        if lastWindow == 0 && normal > timeouts.retransmit { return timeouts.retransmit }
        return normal
    }

    /// Notes an ignored segment (last_index, last_seq, ...), to resolve what answers it.
    static func remember(_ segment: TCPSegment, index: TCPFlagIndex, direction: FlowDirection,
                         in connection: inout Connection) {
        noteLast(index, direction, in: &connection)
        connection.lastSequence = segment.sequence
        connection.lastEnd = segment.end
        connection.lastWindow = segment.window
    }

    /// Window scale and SACK-permitted from a SYN or SYN-ACK (RFC 7323 2.2, RFC 2018 2).
    static func applySynOptions(_ options: TCPOptions, to peer: inout TCPPeerState) {
        // A SYN tells everything about its side: nothing learned before it stays (the kernel
        // keeps only its "be liberal" bit, which seqwall does not have).
        peer.scale = 0
        peer.flags = []
        if options.sackPermitted { peer.flags.insert(.sackPermitted) }
        if options.hasWindowScale {
            // RFC 7323 2.3: a shift over 14 is treated as 14.
            peer.scale = min(options.windowScale, maximumWindowScale)
            peer.flags.insert(.windowScale)
        }
    }
}
