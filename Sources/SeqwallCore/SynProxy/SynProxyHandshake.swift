/// The SYN proxy's handshakes, as pure functions from the segment that arrived to the segments
/// seqwall sends (written by SynProxySegment), as the kernel's SYNPROXY target does
/// (nf_synproxy_core.c: synproxy_send_client_synack, synproxy_send_server_syn,
/// synproxy_send_server_ack, synproxy_send_client_ack):
///
/// 1. client SYN: answered with a SYN-ACK whose ISN is the cookie and whose window is 0, so
///    the client sends no data before the server has answered; the SYN is dropped, nothing kept;
/// 2. client ACK with a good cookie: a SYN to the server in the client's name, with the client's
///    ISN and options; the ACK is dropped (it carries no data: the window was 0), and the
///    connection is kept as proxied (SynProxyState);
/// 3. server SYN-ACK: the offsets are learned; an ACK goes to the server in the client's name,
///    and an ACK with the server's window to the client (a window update that opens the
///    window the SYN-ACK closed). The SYN-ACK itself is dropped.
///
/// From then on SynProxyTranslation rewrites every packet.
public enum SynProxyHandshake {
    /// The SYN-ACK that answers `syn`: the cookie as its ISN; MSS the rule's or the cookie's;
    /// window scale (the rule's, else the client's own shift) and SACK-permitted when the
    /// client offered them; timestamps when the client sent them, the value carrying the
    /// client's options (SynCookieOptions). ECN is not offered: the server has not agreed to it.
    public static func synAck(answering syn: TCPSegment, rule: SynProxyRule, cookies: SynCookie, counter: UInt32,
                              timestampClock: UInt32) -> TCPSegment {
        let ipv4 = syn.source.isIPv4
        let index = SynCookie.mssIndex(clientMSS: syn.options.mss == 0 ? 536 : syn.options.mss, ipv4: ipv4)
        let cookie = cookies.make(client: syn.source, clientPort: syn.sourcePort, server: syn.destination,
                                  serverPort: syn.destinationPort, clientISN: syn.sequence, mssIndex: index,
                                  counter: counter)
        var options = TCPOptions()
        options.mss = rule.mss ?? SynCookie.mssTable(ipv4: ipv4, index: index)
        if syn.options.hasWindowScale {
            options.hasWindowScale = true
            options.windowScale = rule.windowScale ?? min(syn.options.windowScale, SynCookieOptions.maximumWindowScale)
        }
        options.sackPermitted = syn.options.sackPermitted
        if syn.options.hasTimestamps {
            let carried = SynCookieOptions(mss: options.mss,
                                           windowScale: syn.options.hasWindowScale ? syn.options.windowScale : nil,
                                           sackPermitted: syn.options.sackPermitted, timestamps: true)
            options.hasTimestamps = true
            options.timestampValue = carried.timestampValue(clock: timestampClock)
            options.timestampEcho = syn.options.timestampValue
        } else {
            // Without timestamps the client's shift and SACK cannot come back in its ACK, so
            // none is offered (cookie_timestamp_decode clears them too).
            options.hasWindowScale = false
            options.sackPermitted = false
        }
        return TCPSegment(source: syn.destination, destination: syn.source, sourcePort: syn.destinationPort,
                          destinationPort: syn.sourcePort, sequence: cookie, acknowledgment: syn.sequence &+ 1,
                          flags: [.syn, .ack], window: 0, options: options)
    }

    /// The proxied connection a client's ACK opens, or nil when its cookie is not ours (forged,
    /// stale, for another tuple) or it is not a bare ACK. `rule` is the one that matched the
    /// ACK's flow, whose window scale the SYN-ACK advertised.
    public static func accept(ack: TCPSegment, rule: SynProxyRule, cookies: SynCookie, counter: UInt32)
        -> SynProxyState? {
        guard ack.flags.subtracting([.psh]) == .ack else { return nil }
        let cookie = ack.acknowledgment &- 1
        let clientISN = ack.sequence &- 1
        guard let mss = cookies.check(client: ack.source, clientPort: ack.sourcePort, server: ack.destination,
                                      serverPort: ack.destinationPort, clientISN: clientISN, cookie: cookie,
                                      counter: counter) else { return nil }
        let echo = ack.options.hasTimestamps ? ack.options.timestampEcho : nil
        let options = SynCookieOptions.decode(mss: mss, timestampEcho: echo)
        let advertised = options.windowScale.map { rule.windowScale ?? $0 }
        return SynProxyState(cookie: cookie, clientISN: clientISN, options: options, advertisedWindowScale: advertised,
                             clientWindow: ack.window, clientTimestamp: ack.options.timestampValue,
                             proxyTimestamp: ack.options.timestampEcho)
    }

    /// The SYN seqwall sends the server in the client's name for `ack` (the ACK `accept` took):
    /// the client's ISN, MSS, window scale, SACK-permitted and timestamp value.
    public static func serverSyn(for state: SynProxyState, ack: TCPSegment) -> TCPSegment {
        var options = TCPOptions()
        options.mss = state.options.mss
        if let shift = state.options.windowScale {
            options.hasWindowScale = true
            options.windowScale = shift
        }
        options.sackPermitted = state.options.sackPermitted
        if state.options.timestamps {
            options.hasTimestamps = true
            options.timestampValue = state.clientTimestamp
        }
        return TCPSegment(source: ack.source, destination: ack.destination, sourcePort: ack.sourcePort,
                          destinationPort: ack.destinationPort, sequence: state.clientISN, acknowledgment: 0,
                          flags: .syn, window: ack.window, options: options)
    }

    /// On the server's SYN-ACK: records the offsets in `state` and returns the ACK to the
    /// server (in the client's name) and the window update to the client (in the server's).
    /// Nil when the SYN-ACK does not acknowledge the SYN seqwall sent (then it is dropped).
    public static func serverAnswered(_ state: inout SynProxyState, synAck: TCPSegment)
        -> (toServer: TCPSegment, toClient: TCPSegment)? {
        guard synAck.flags.contains([.syn, .ack]), synAck.acknowledgment == state.clientISN &+ 1 else { return nil }
        state.sequenceOffset = synAck.sequence &- state.cookie
        state.timestampOffset = synAck.options.hasTimestamps ? synAck.options.timestampValue &- state.proxyTimestamp : 0
        state.serverWindowScale = synAck.options.hasWindowScale
            ? min(synAck.options.windowScale, SynCookieOptions.maximumWindowScale) : nil
        state.serverAnswered = true
        var serverOptions = TCPOptions()
        var clientOptions = TCPOptions()
        if state.options.timestamps && synAck.options.hasTimestamps {
            serverOptions.hasTimestamps = true
            serverOptions.timestampValue = state.clientTimestamp
            serverOptions.timestampEcho = synAck.options.timestampValue
            clientOptions.hasTimestamps = true
            clientOptions.timestampValue = state.proxyTimestamp
            clientOptions.timestampEcho = state.clientTimestamp
        }
        let toServer = TCPSegment(source: synAck.destination, destination: synAck.source,
                                  sourcePort: synAck.destinationPort, destinationPort: synAck.sourcePort,
                                  sequence: state.clientISN &+ 1, acknowledgment: synAck.sequence &+ 1, flags: .ack,
                                  window: state.clientWindow, options: serverOptions)
        // A SYN's window is never scaled (RFC 7323 2.2); the client reads this one with the
        // shift seqwall advertised.
        let window = synAck.window >> UInt16(state.advertisedWindowScale ?? 0)
        let toClient = TCPSegment(source: synAck.source, destination: synAck.destination, sourcePort: synAck.sourcePort,
                                  destinationPort: synAck.destinationPort, sequence: state.cookie &+ 1,
                                  acknowledgment: state.clientISN &+ 1, flags: .ack, window: window,
                                  options: clientOptions)
        return (toServer, toClient)
    }

    /// The server refused the SYN (an RST to it): the client, which believes itself connected,
    /// gets an RST at its next expected sequence number (RFC 9293 3.10.7.4: in a synchronized
    /// state an RST is taken when its sequence number is the one expected).
    public static func refusal(_ state: SynProxyState, reset: TCPSegment) -> TCPSegment {
        TCPSegment(source: reset.source, destination: reset.destination, sourcePort: reset.sourcePort,
                   destinationPort: reset.destinationPort, sequence: state.cookie &+ 1, acknowledgment: 0,
                   flags: .rst, window: 0)
    }
}
