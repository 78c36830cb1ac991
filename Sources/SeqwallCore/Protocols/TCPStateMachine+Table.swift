/// The TCP transition table: the kernel's tcp_conntracks[direction][flag class][state]
/// (nf_conntrack_proto_tcp.c), cell for cell, laid out as the kernel lays it out. Each row is
/// a flag class (TCPFlagIndex) in one direction; each column the state the connection was in.
/// The block above a row gives every cell's reason.
///
/// The table only names a candidate: `TCPStateMachine.track` then applies the rules the table
/// cannot express (reopening a closed tuple, repeated FINs, challenge ACKs, the RST rules of
/// RFC 5961 and RFC 1337), and the window check (TCPWindow) decides whether the segment is in
/// window at all.
///
/// A cell is 4 bits: a state's raw value (0...9), or sIV or sIG. A row packs its ten cells into
/// one integer, the cell for state s at bits 4s..4s+3, so `transitionRow` is a `switch` over
/// constants that compiles to a read-only table: a lookup is a load, a shift and a mask, with
/// no lazily initialised global and no bounds check.
extension TCPStateMachine {
    // Computed, not stored, so they are constants folded into the rows rather than globals.
    private static var sNO: UInt64 { UInt64(TCPState.none.rawValue) }
    private static var sSS: UInt64 { UInt64(TCPState.synSent.rawValue) }
    private static var sSR: UInt64 { UInt64(TCPState.synRecv.rawValue) }
    private static var sES: UInt64 { UInt64(TCPState.established.rawValue) }
    private static var sFW: UInt64 { UInt64(TCPState.finWait.rawValue) }
    private static var sCW: UInt64 { UInt64(TCPState.closeWait.rawValue) }
    private static var sLA: UInt64 { UInt64(TCPState.lastAck.rawValue) }
    private static var sTW: UInt64 { UInt64(TCPState.timeWait.rawValue) }
    private static var sCL: UInt64 { UInt64(TCPState.close.rawValue) }
    private static var sS2: UInt64 { UInt64(TCPState.synSent2.rawValue) }
    /// sIV: no valid segment does this; strict by default, so it is dropped.
    private static var sIV: UInt64 { 0xA }
    /// sIG: may be valid or not and only the receiver knows; it passes without changing state.
    private static var sIG: UInt64 { 0xB }

    /// Packs one row; its columns follow TCPState's raw values: NONE, SYN_SENT, SYN_RECV,
    /// ESTABLISHED, FIN_WAIT, CLOSE_WAIT, LAST_ACK, TIME_WAIT, CLOSE, SYN_SENT2.
    private static func row(_ sNO: UInt64, _ sSS: UInt64, _ sSR: UInt64, _ sES: UInt64, _ sFW: UInt64,
                            _ sCW: UInt64, _ sLA: UInt64, _ sTW: UInt64, _ sCL: UInt64, _ sS2: UInt64) -> UInt64 {
        sNO | sSS << 4 | sSR << 8 | sES << 12 | sFW << 16 | sCW << 20 | sLA << 24 | sTW << 28 | sCL << 32
            | sS2 << 36
    }

    /// The kernel's tcp_conntracks[direction][index], packed (see `row`).
    static func transitionRow(_ direction: FlowDirection, _ index: TCPFlagIndex) -> UInt64 {
        switch direction {
        case .original:
            // ORIGINAL: segments from the side that opened the connection.
            switch index {
            //                       sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
            /*syn*/
            //  sNO -> sSS  A new connection starts.
            //  sSS -> sSS  The SYN retransmitted.
            //  sSR -> sIG  A SYN inside a live connection: the receiver answers it (RST or
            //  sES -> sIG  challenge ACK, RFC 5961 4), and that answer tells who is out of
            //  sFW -> sIG  sync, the endpoints or the tracker. Let it through unchanged; a
            //  sCW -> sIG  SYN-ACK that answers it resynchronises (`track`).
            //  sLA -> sIG
            //  sTW -> sSS  The tuple reused for a new connection (RFC 1122 4.2.2.13), if the
            //  sCL -> sSS  old one was seen to close (`track`, else sIG).
            //  sS2 -> sS2  The SYN retransmitted during a simultaneous open.
            case .syn:     return row(sSS, sSS, sIG, sIG, sIG, sIG, sIG, sSS, sSS, sS2)
            /*synack*/
            //  sNO -> sIV  Nothing to answer: a SYN-ACK opens no connection.
            //  sSS -> sIV  The opener cannot answer its own SYN.
            //  sSR -> sSR  The SYN-ACK of a simultaneous open, retransmitted.
            //  sES -> sIV  The opener sends no SYN-ACK once the handshake is done.
            //  sFW -> sIV  Likewise in every later state.
            //  sCW -> sIV
            //  sLA -> sIV
            //  sTW -> sIV
            //  sCL -> sIV
            //  sS2 -> sSR  Simultaneous open: the opener answers the other side's SYN.
            case .synAck:  return row(sIV, sIV, sSR, sIV, sIV, sIV, sIV, sIV, sIV, sSR)
            /*fin*/
            //  sNO -> sIV  A FIN opens no connection.
            //  sSS -> sIV  No FIN before the SYN-ACK: wait for the handshake.
            //  sSR -> sFW  The close starts.
            //  sES -> sFW  The close starts.
            //  sFW -> sLA  FINs seen both ways, the last ACK to come; only for this side's
            //  sCW -> sLA  first FIN: a FIN repeated by its sender stays (`track`, CloseProgress).
            //  sLA -> sLA  A FIN retransmitted: stay.
            //  sTW -> sTW  Likewise.
            //  sCL -> sCL  Likewise.
            //  sS2 -> sIV  No FIN before the SYN-ACK.
            case .fin:     return row(sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV)
            /*ack*/
            //  sNO -> sES  A connection picked up mid-stream (TCPStateMachine.begin).
            //  sSS -> sIV  Nothing to acknowledge: no SYN-ACK seen yet.
            //  sSR -> sES  The third ACK of the handshake.
            //  sES -> sES  Data and ACKs.
            //  sFW -> sCW  The FIN acknowledged.
            //  sCW -> sCW  Data or ACKs of the half still open.
            //  sLA -> sTW  The last ACK, unless it is a challenge ACK to a SYN (`track`).
            //  sTW -> sTW  The last ACK retransmitted.
            //  sCL -> sCL  Stay.
            //  sS2 -> sIV  Nothing to acknowledge yet.
            case .ack:     return row(sES, sIV, sES, sES, sCW, sCW, sTW, sTW, sCL, sIV)
            /*rst*/
            //  sNO -> sIV  An RST opens nothing.
            //  sSS -> sCL  Every other state: the connection is reset, once the RST rules
            //  sSR -> sCL  (`track`: RFC 5961 3.2, RFC 1337, RFC 9293 3.10.7.3) and the window
            //  sES -> sCL  check let it.
            //  sFW -> sCL
            //  sCW -> sCL
            //  sLA -> sCL
            //  sTW -> sCL
            //  sCL -> sCL
            //  sS2 -> sCL
            case .rst:     return row(sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL)
            /*none*/
            //  Every state -> sIV  No SYN, FIN, RST or ACK: never valid (tcp_valid_flags).
            case .none:    return row(sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV)
            }
        case .reply:
            // REPLY: segments from the side that answered.
            switch index {
            //                       sNO  sSS  sSR  sES  sFW  sCW  sLA  sTW  sCL  sS2
            /*syn*/
            //  sNO -> sIV  Never reached: a connection starts in the original direction.
            //  sSS -> sS2  Simultaneous open (RFC 9293 3.5, figure 7): the SYNs crossed.
            //  sSR -> sIV  The side that answered never sends a SYN in a live connection, so
            //  sES -> sIV  none is ignored (nor answered by an RST that skips the window
            //  sFW -> sIV  check).
            //  sCW -> sIV
            //  sLA -> sIV
            //  sTW -> sSS  The tuple reused with the roles swapped (`track`, else sIG).
            //  sCL -> sIV  The kernel does not reopen from this side.
            //  sS2 -> sS2  The simultaneous SYN retransmitted.
            case .syn:     return row(sIV, sS2, sIV, sIV, sIV, sIV, sIV, sSS, sIV, sS2)
            /*synack*/
            //  sNO -> sIV  Never reached.
            //  sSS -> sSR  The answer to the SYN.
            //  sSR -> sIG  The SYN-ACK retransmitted: the opener decides.
            //  sES -> sIG  A late retransmitted SYN-ACK, or the answer to an ignored SYN,
            //  sFW -> sIG  which resynchronises (`track`).
            //  sCW -> sIG
            //  sLA -> sIG
            //  sTW -> sIG
            //  sCL -> sIG
            //  sS2 -> sSR  Simultaneous open: the answer to the opener's SYN.
            case .synAck:  return row(sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sSR)
            /*fin*/
            //  sNO -> sIV  Never reached.
            //  sSS -> sIV  No FIN before the handshake.
            //  sSR -> sFW  The close starts.
            //  sES -> sFW  The close starts.
            //  sFW -> sLA  FINs seen both ways; only for this side's first FIN (`track`).
            //  sCW -> sLA
            //  sLA -> sLA  A FIN retransmitted: stay.
            //  sTW -> sTW  Likewise.
            //  sCL -> sCL  Likewise.
            //  sS2 -> sIV  No FIN before the handshake.
            case .fin:     return row(sIV, sIV, sFW, sFW, sLA, sLA, sLA, sTW, sCL, sIV)
            /*ack*/
            //  sNO -> sIV  Never reached.
            //  sSS -> sIG  A challenge ACK answering the SYN, or a half-open peer (RFC 5961
            //              4): an RST from the opener may follow (`track`).
            //  sSR -> sSR  May answer a late retransmitted SYN; in a simultaneous open it
            //              completes the handshake (`track`).
            //  sES -> sES  Data and ACKs.
            //  sFW -> sCW  The FIN acknowledged.
            //  sCW -> sCW  Data or ACKs of the half still open.
            //  sLA -> sTW  The last ACK, unless it is a challenge ACK to a SYN (`track`).
            //  sTW -> sTW  The last ACK retransmitted.
            //  sCL -> sCL  Stay.
            //  sS2 -> sIG  As in sSS.
            case .ack:     return row(sIV, sIG, sSR, sES, sCW, sCW, sTW, sTW, sCL, sIG)
            /*rst*/
            //  sNO -> sIV  Never reached.
            //  sSS -> sCL  Only an RST that acknowledges the SYN (RFC 9293 3.10.7.3, `track`).
            //  sSR -> sCL  Every later state: reset, once the RST rules and the window check
            //  sES -> sCL  let it (`track`).
            //  sFW -> sCL
            //  sCW -> sCL
            //  sLA -> sCL
            //  sTW -> sCL
            //  sCL -> sCL
            //  sS2 -> sCL
            case .rst:     return row(sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL)
            /*none*/
            //  Every state -> sIV  No SYN, FIN, RST or ACK: never valid (tcp_valid_flags).
            case .none:    return row(sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV)
            }
        }
    }

    /// The cell for a segment of class `index` going `direction` in a connection in `state`.
    public static func transition(_ direction: FlowDirection, _ index: TCPFlagIndex, _ state: TCPState) -> TCPTransition {
        let cell = UInt8(truncatingIfNeeded: transitionRow(direction, index) >> (UInt64(state.rawValue) &* 4)) & 0xF
        // Spelled out rather than TCPState(rawValue:), which stays a call: this switch maps each
        // cell to itself and folds away.
        switch cell {
        case 0: return .to(.none)
        case 1: return .to(.synSent)
        case 2: return .to(.synRecv)
        case 3: return .to(.established)
        case 4: return .to(.finWait)
        case 5: return .to(.closeWait)
        case 6: return .to(.lastAck)
        case 7: return .to(.timeWait)
        case 8: return .to(.close)
        case 9: return .to(.synSent2)
        case 0xA: return .invalid   // sIV
        default: return .ignore     // sIG
        }
    }
}
