/// Service names a rule may write for a port (`to port ssh, https`), as pf.conf and nft do
/// through /etc/services. A table of its own rather than the host's file: the same rule file
/// means the same ports on every host, also on one without netbase (a minimal Debian root), and
/// `rules check` on a workstation agrees with the firewall. The names and numbers are IANA's,
/// spelled as Debian's /etc/services spells them; the canonical text prints the numbers.
enum ServiceName {
    static let ports: [String: Int] = [
        "ftp-data": 20, "ftp": 21, "ssh": 22, "telnet": 23, "smtp": 25, "domain": 53,
        "bootps": 67, "bootpc": 68, "tftp": 69, "finger": 79, "http": 80, "www": 80,
        "kerberos": 88, "pop3": 110, "sunrpc": 111, "auth": 113, "nntp": 119, "ntp": 123,
        "netbios-ns": 137, "netbios-dgm": 138, "netbios-ssn": 139, "imap2": 143, "imap": 143,
        "snmp": 161, "snmp-trap": 162, "bgp": 179, "ldap": 389, "https": 443, "microsoft-ds": 445,
        "submissions": 465, "isakmp": 500, "syslog": 514, "submission": 587, "ipp": 631,
        "ldaps": 636, "rsync": 873, "imaps": 993, "pop3s": 995, "openvpn": 1194,
        "ms-sql-s": 1433, "nfs": 2049, "mysql": 3306, "ms-wbt-server": 3389, "sip": 5060,
        "sip-tls": 5061, "xmpp-client": 5222, "xmpp-server": 5269, "postgresql": 5432,
        "amqp": 5672, "http-alt": 8080, "git": 9418,
    ]

    /// The port of a name, in any case (`SSH`).
    static func port(_ name: Substring) -> Int? { ports[name.lowercased()] }
}
