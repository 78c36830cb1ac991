import SeqwallCore
import SeqwallRules

/// The SYN proxy's parts in SeqwallCore (cookies, handshake, translation; docs/synproxy.md) are
/// not yet wired into the packet path. Until they are, a policy with `synproxy` rules would pass
/// those connections unproxied while the operator believes the server shielded, so the daemon
/// refuses to start with it or reload it; `seqwall rules check` still accepts the file.
extension Daemon {
    static func refusingSynProxy(_ policy: Policy) throws(RuleErrors) -> Policy {
        let errors = policy.rules.filter { $0.synProxy != nil }.map {
            RuleError(location: $0.location,
                      message: "'synproxy' is not carried out by this daemon yet (docs/synproxy.md); remove it")
        }
        guard errors.isEmpty else { throw RuleErrors(errors: errors) }
        return policy
    }
}
