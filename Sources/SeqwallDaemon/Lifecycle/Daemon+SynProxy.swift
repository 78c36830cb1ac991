import SeqwallCore
import SeqwallRules

/// A proxied connection's packets are rewritten and sent back whole in the verdict
/// (docs/synproxy.md), so the queues copy whole packets when the policy seqwall starts with has
/// a `synproxy` rule (QueueSettings.copyingWholePackets). The copy range is set when a queue
/// is bound; a reload that brings the first `synproxy` rule to queues bound for the headers
/// only is refused, naming each rule's place, rather than proxying connections whose packets
/// it could not send back (each would be dropped as `synproxy-short-copy`).
extension Daemon {
    func checkingSynProxy(_ policy: Policy) throws(RuleErrors) -> Policy {
        guard !copiesWholePackets else { return policy }
        let errors = policy.rules.filter { $0.synProxy != nil }.map {
            RuleError(location: $0.location,
                      message: "'synproxy' needs the queues to copy whole packets, which seqwall sets when it starts with a synproxy rule; restart seqwall to apply it (docs/synproxy.md)")
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
