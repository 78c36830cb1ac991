import SeqwallCore
import SeqwallRules

/// A proxied connection's packets are rewritten and sent back whole in the verdict
/// (docs/synproxy.md, Whole packets: the copy range), so the queues that carry them must copy
/// whole packets, with GSO queueing off; every other packet then pays for that copy too. The
/// copy range is set when a queue is bound, so:
///
/// - with `--synproxy-queue`, the queues it names are bound copying whole packets and proxy the
///   `synproxy` rules' connections, and every other queue copies headers only and does not
///   proxy (the diversion sends the rules' ports, both directions, to the named queues); a
///   reload may bring `synproxy` rules at any time;
/// - without it, every queue copies whole packets when the policy seqwall starts with has a
///   `synproxy` rule (said once at the start), and a reload that brings the first one to
///   queues bound for the headers only is refused, naming each rule's place, rather than
///   proxying connections whose packets it could not send back (each would be dropped as
///   `synproxy-short-copy`).
extension Daemon {
    /// The settings queue `queue` is bound with; `copiesWholePackets` set first.
    func settings(forQueue queue: UInt16) -> QueueSettings {
        if options.synProxyQueues.isEmpty {
            return copiesWholePackets ? options.settings.copyingWholePackets() : options.settings
        }
        if options.synProxyQueues.contains(queue) { return options.settings.copyingWholePackets() }
        var settings = options.settings
        settings.proxiesSynProxyRules = false
        return settings
    }

    /// Sets `copiesWholePackets` for the policy seqwall starts with, and says once what it costs
    /// when every queue must copy whole packets.
    func chooseCopyRange(_ policy: Policy) {
        copiesWholePackets = options.synProxyQueues.isEmpty && policy.hasSynProxyRules
        guard copiesWholePackets else { return }
        logger.warning("the policy has 'synproxy' rules and no --synproxy-queue is given: every queue copies whole packets with GSO off, which slows all traffic; give the synproxy rules' ports a queue of their own with --synproxy-queue (docs/synproxy.md)")
    }

    func checkingSynProxy(_ policy: Policy) throws(RuleErrors) -> Policy {
        guard !copiesWholePackets && options.synProxyQueues.isEmpty else { return policy }
        let errors = policy.rules.filter { $0.synProxy != nil }.map {
            RuleError(location: $0.location,
                      message: "'synproxy' needs its queues to copy whole packets: name them with --synproxy-queue, or restart seqwall to apply it (docs/synproxy.md)")
        }
        guard errors.isEmpty else { throw RuleErrors(errors: errors) }
        return policy
    }

    /// Gives every worker the cookie keys of the present rotation period (SynCookieSecret):
    /// set directly before the worker threads start, posted between batches after.
    func handCookieKeys(started: Bool) {
        let cookies = cookieSecret.cookies(wallNanoseconds: SystemCall.wallClockNanoseconds(),
                                           monotonicNanoseconds: SystemCall.monotonicNanoseconds())
        for worker in workers {
            if started {
                worker.mailbox.post { $0.tracker.useCookies(cookies) }
            } else {
                worker.tracker.useCookies(cookies)
            }
        }
    }

    /// When the next rotation period starts, on the monotonic clock (a millisecond after, so
    /// that the wall clock read then is in the new period).
    static func nextCookieKeys() -> UInt64 {
        SystemCall.monotonicNanoseconds()
            &+ SynCookieSecret.untilNextPeriod(wallNanoseconds: SystemCall.wallClockNanoseconds()) &+ 1_000_000
    }
}
