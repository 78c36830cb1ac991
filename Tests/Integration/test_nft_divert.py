"""seqwall-divert's nftables backend (rules/host.nft, rules/gateway.nft), in namespaces of the
test's own.

- start loads `table inet seqwall` in one transaction (nft monitor shows the old table deleted
  and the new one added in one generation), start again and restart replace it, host to
  gateway swaps its chains, stop deletes exactly it (also after seqwall was killed with
  SIGKILL), and every other table (inet, ip, ip6, with sets and counters) stays byte for byte.
- a file the kernel refuses changes nothing: the earlier table stays as it was.
- a file that would add anything but table inet seqwall is refused before anything is loaded.
- SEQWALL_QUEUES turns `queue num 0` into one queue or a hashed range (never `fanout`), for
  nft and iptables alike.
- the iptables backend still works when chosen, and each backend's start removes the other's
  diversion; auto chooses nft exactly when the kernel can queue from nftables.
- defragmentation: with the diversion loaded, a forwarded 4,000-byte UDP datagram (IPv4 and
  IPv6) and a 4,000-byte IPv6 datagram to the host reach the filter hooks as one packet, the
  receiver gets it whole, and the kernel's conntrack table stays empty (conntrack -C, -L);
  without the diversion the same datagrams reach forward as fragments.
- host.nft with real packets (its queue statement counted instead): loopback, neighbour
  discovery (hop limit 255) and MLD (hop limit 1 after a hop-by-hop header) are not queued; the
  same ICMPv6 with another hop limit, and an echo and its reply, are.
- with a kernel that can queue from nftables (CONFIG_NFT_QUEUE): seqwall judges IPv4 and IPv6
  through the one inet table, on one queue and on two.

A kernel built without nft_queue (the `queue` expression) cannot load the shipped files. There
the table-handling tests load stand-ins: the shipped files with each `queue ...` statement
turned into a counter whose comment keeps the statement's text (so SEQWALL_QUEUES's rewriting
is still seen), the tests that need a real queue are skipped, and one test checks that the
shipped files are refused with the reason and nothing changed.
"""

import os
import re
import shutil
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402

DIVERT = os.path.join(lab.REPO, "dist", "seqwall-divert.in")
SHIPPED = os.path.join(lab.REPO, "rules")
HOST_RULES = os.path.join(lab.RULES_DIR, "host.rules")        # 8080 passes, 8081 dropped
GATEWAY_RULES = os.path.join(lab.RULES_DIR, "gateway.rules")
QUEUE_STATEMENT = re.compile(r"\bqueue num [0-9-]+(?: [a-z,]+)?")

# Someone else's tables, in three families, with a set, counters, a comment that needs quoting
# and base chains on the hooks seqwall uses: none of it may change.
OTHERS = """
table inet other {
	set blocked {
		type ipv4_addr
		elements = { 192.0.2.7, 192.0.2.9 }
	}
	chain pre {
		type filter hook prerouting priority -150; policy accept;
		ip saddr @blocked counter drop
	}
	chain input {
		type filter hook input priority 10; policy accept;
		tcp dport 22 counter accept comment "keep me, please"
	}
}
table ip filter {
	chain forward {
		type filter hook forward priority 0; policy accept;
		ip daddr 192.0.2.0/24 tcp dport 25 counter drop
	}
}
table ip6 mine {
	chain output {
		type filter hook output priority 0; policy accept;
		ip6 daddr 2001:db8:ffff::/48 counter reject
	}
}
"""


def nft_available():
    return shutil.which("nft") is not None


def kernel_can_queue_from_nft():
    """Whether the kernel has nft_queue: `nft --check` of a queue rule in a namespace made for
    the question (the kernel checks the rule and aborts the transaction)."""
    ns = lab.REGISTRY.unique("q")
    lab.run(["ip", "netns", "add", ns])
    lab.REGISTRY.add_ns(ns)
    try:
        cp = lab.ns_run(ns, ["nft", "--check", "-f", "-"], check=False,
                        input="table inet probe { chain c { queue num 0 bypass; }; }\n")
        return cp.returncode == 0
    finally:
        lab.REGISTRY.del_ns(ns)


def stand_in(text):
    """A shipped file with each queue statement turned into a counter that keeps its text."""
    return QUEUE_STATEMENT.sub(lambda m: f'counter comment "stand-in for: {m.group(0)}"', text)


def tables(ruleset):
    """`nft list ruleset` output split into its tables: {"inet seqwall": "table inet seqwall {...}"}."""
    out = {}
    name, lines = None, []
    for line in ruleset.splitlines():
        if name is None:
            m = re.match(r"^table (\S+ \S+) \{$", line)
            if m:
                name, lines = m.group(1), [line]
            continue
        lines.append(line)
        if line == "}":
            out[name] = "\n".join(lines)
            name = None
    return out


def chains(table_text):
    return re.findall(r"^\tchain (\S+) \{", table_text, re.M)


class DiversionFiles:
    """A directory of diversion files for SEQWALL_IPTABLES_DIR: the shipped ones, or their
    stand-ins where the kernel cannot queue from nftables, beside the shipped iptables files."""

    def __init__(self, real_queue):
        self.real_queue = real_queue
        self.dir = tempfile.mkdtemp(prefix="seqwall-nft-")
        lab.REGISTRY.add_tmp(self.dir)
        for name in os.listdir(SHIPPED):
            if name.endswith((".nft", ".iptables", ".ip6tables")):
                with open(os.path.join(SHIPPED, name)) as f:
                    text = f.read()
                if name.endswith(".nft") and not real_queue:
                    text = stand_in(text)
                with open(os.path.join(self.dir, name), "w") as f:
                    f.write(text)

    def path(self, name):
        return os.path.join(self.dir, name)

    def add(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)


class NftTestCase(unittest.TestCase):
    files = None
    real_queue = False

    @classmethod
    def setUpClass(cls):
        problem = lab.environment_problem()
        if problem:
            raise unittest.SkipTest(problem)
        if not nft_available():
            raise unittest.SkipTest("nft not found (Debian package nftables)")
        lab.REGISTRY.install()
        cls.real_queue = kernel_can_queue_from_nft()
        cls.files = DiversionFiles(cls.real_queue)

    def divert(self, ns, *args, check=True, **variables):
        """seqwall-divert ARGS in ns with the variables given (SEQWALL_DIVERSION_BACKEND=nft
        unless another backend is named) and no others of its own."""
        variables.setdefault("SEQWALL_DIVERSION_BACKEND", "nft")
        env = [f"SEQWALL_IPTABLES_DIR={self.files.dir}"]
        env += [f"{name}={value}" for name, value in variables.items() if value is not None]
        unset = []
        for name in ("SEQWALL_DIVERSION", "SEQWALL_FAMILIES", "SERVICE_RESULT", "SEQWALL_QUEUES",
                     "SEQWALL_KEEP_DIVERSION_ON_FAILURE", "SEQWALL_DIVERSION_BACKEND",
                     "SEQWALL_SYNPROXY_QUEUE", "SEQWALL_SYNPROXY_PORTS"):
            unset += ["-u", name]
        cp = lab.ns_run(ns, ["env"] + unset + env + ["sh", DIVERT] + list(args),
                        check=False, timeout=30)
        if check:
            self.assertEqual(cp.returncode, 0,
                             f"seqwall-divert {' '.join(args)} failed: {cp.stderr.strip()}")
        return cp

    def new_ns(self):
        ns = lab.REGISTRY.unique("n")
        lab.run(["ip", "netns", "add", ns])
        lab.REGISTRY.add_ns(ns)
        self.addCleanup(lab.REGISTRY.del_ns, ns)
        return ns


class NftDiversionTest(NftTestCase):
    """The helper's handling of table inet seqwall, in a bare namespace holding others' tables."""

    def setUp(self):
        self.ns = self.new_ns()
        lab.ns_run(self.ns, ["nft", "-f", "-"], input=OTHERS)
        self.before = self.ruleset()
        self.assertEqual(set(tables(self.before)), {"inet other", "ip filter", "ip6 mine"})

    def ruleset(self):
        return lab.ns_run(self.ns, ["nft", "list", "ruleset"]).stdout

    def seqwall_table(self):
        return tables(self.ruleset()).get("inet seqwall")

    def assert_others_untouched(self, what, iptables_used=False):
        """Every table that was there is there byte for byte. iptables_used: the iptables
        backend ran, and iptables-nft keeps its empty base chains (INPUT, OUTPUT, FORWARD) in
        the `ip filter` and `ip6 filter` tables it shares with nft users: iptables's doing,
        left out of the comparison."""
        after = tables(self.ruleset())
        if iptables_used:
            after = {name: re.sub(r"\n\n?\tchain (?:INPUT|OUTPUT|FORWARD) \{\n\t\ttype filter hook "
                                  r"\w+ priority filter; policy accept;\n\t\}", "", text)
                     for name, text in after.items()}
            after = {name: text for name, text in after.items()
                     if name in tables(self.before) or text != f"table {name} {{\n}}"}
        for name, text in tables(self.before).items():
            self.assertEqual(after.get(name), text, f"{what}: table {name} changed")
        self.assertLessEqual(set(after) - set(tables(self.before)), {"inet seqwall"},
                             f"{what}: a table appeared")

    def assert_loaded(self, mode, queue="queue num 0 bypass", iptables_used=False):
        table = self.seqwall_table()
        self.assertIsNotNone(table, f"no table inet seqwall after start {mode}")
        expected = {"host": ["defragment", "input", "output", "divert"],
                    "gateway": ["defragment", "forward"]}[mode]
        self.assertEqual(chains(table), expected, table)
        self.assertIn("tproxy to :9", table)
        self.assertIn(queue, table)
        self.assertNotIn("fanout", table)
        self.assert_others_untouched(f"start {mode}", iptables_used)
        return table

    def test_start_restart_stop_host(self):
        self.assertEqual(self.divert(self.ns, "status", check=False).returncode, 1)
        self.divert(self.ns, "start")  # host is the default mode
        loaded = self.assert_loaded("host")
        self.assertIn('iif "lo" return', loaded)
        self.assertIn("icmpv6 type 133-137 return", loaded)
        self.divert(self.ns, "start", "host")
        self.assertEqual(self.seqwall_table(), loaded, "a second start changed the table")
        status = self.divert(self.ns, "status")
        self.assertIn("nft table inet seqwall {", status.stdout)
        self.assertIn("chain divert", status.stdout)
        self.divert(self.ns, "stop")
        self.assertIsNone(self.seqwall_table())
        self.assertEqual(self.ruleset(), self.before, "stop left the ruleset changed")
        self.divert(self.ns, "stop")
        self.assertEqual(self.ruleset(), self.before, "a second stop changed the ruleset")
        self.assertEqual(self.divert(self.ns, "status", check=False).returncode, 1)

    def test_restart_replaces_the_table_in_one_transaction(self):
        self.divert(self.ns, "start", "host")
        log = os.path.join(self.files.dir, f"monitor-{self.ns}.txt")
        # Line-buffered: nft writes its events through stdio.
        monitor = lab.spawn(self.ns, ["stdbuf", "-oL", "nft", "monitor"], log, stdout=False)

        def logged():
            with open(log) as f:
                return f.read()
        try:
            # The monitor is subscribed once a marker table of ours shows up in its log.
            subscribed = False
            for attempt in range(40):
                marker = f"marker{attempt}"
                lab.ns_run(self.ns, ["nft", "add", "table", "inet", marker])
                subscribed = lab.wait_for(lambda: f"add table inet {marker}\n" in logged(), 0.5)
                lab.ns_run(self.ns, ["nft", "delete", "table", "inet", marker])
                if subscribed:
                    break
            self.assertTrue(subscribed, f"nft monitor printed nothing: {logged()}")
            self.divert(self.ns, "start", "gateway")
            self.assertTrue(lab.wait_for(lambda: re.search(
                r"add chain inet seqwall forward.*\n# new generation", logged(), re.S), 10),
                logged())
        finally:
            lab.REGISTRY.kill_proc(monitor, grace=1.0)
        text = logged()
        # The generations (transactions) after the marker's removal: the restart is one.
        blocks = re.split(r"^# new generation \d+ by process \d+ \(\S+\)$", text, flags=re.M)
        restart = [b for b in blocks if "add chain inet seqwall forward" in b]
        self.assertEqual(len(restart), 1, text)
        self.assertIn("delete table inet seqwall", restart[0])
        self.assertIn("delete chain inet seqwall input", restart[0])
        self.assertIn("add table inet seqwall", restart[0])
        self.assertLess(restart[0].index("delete table inet seqwall"),
                        restart[0].rindex("add table inet seqwall"))
        self.assert_loaded("gateway")

    def test_host_to_gateway_and_back(self):
        self.divert(self.ns, "start", SEQWALL_DIVERSION="host")
        self.assert_loaded("host")
        self.divert(self.ns, "start", SEQWALL_DIVERSION="gateway")
        self.assert_loaded("gateway")
        self.divert(self.ns, "start", "host")
        self.assert_loaded("host")
        self.divert(self.ns, "stop", SEQWALL_DIVERSION="gateway")
        self.assertEqual(self.ruleset(), self.before)

    def test_a_file_the_kernel_refuses_changes_nothing(self):
        self.divert(self.ns, "start", "gateway")
        loaded = self.ruleset()
        # Valid syntax, but the set does not exist: the kernel refuses the transaction.
        own = self.files.add(f"refused-{self.ns}.nft",
                             "table inet seqwall {\n\tchain forward {\n"
                             "\t\ttype filter hook forward priority filter; policy accept;\n"
                             "\t\tip saddr @nosuchset counter\n\t}\n}\n")
        cp = self.divert(self.ns, "start", own, check=False)
        self.assertEqual(cp.returncode, 1)
        self.assertIn(f"{own}:4:", cp.stderr, "nft's message does not name the file and line")
        self.assertIn("nothing changed", cp.stderr)
        self.assertEqual(self.ruleset(), loaded, "a refused load changed the ruleset")

    def test_shipped_files_where_the_kernel_cannot_queue(self):
        if self.real_queue:
            self.skipTest("this kernel queues from nftables: the shipped files load (other tests)")
        self.divert(self.ns, "start", "gateway")
        loaded = self.ruleset()
        cp = self.divert(self.ns, "start", os.path.join(SHIPPED, "host.nft"), check=False)
        self.assertEqual(cp.returncode, 1)
        self.assertIn("CONFIG_NFT_QUEUE", cp.stderr)
        self.assertIn("queue num 0 bypass", cp.stderr)
        self.assertEqual(self.ruleset(), loaded)

    def test_stop_after_sigkill(self):
        workdir = tempfile.mkdtemp(prefix="seqwall-nft-", dir=self.files.dir)
        daemon = lab.Daemon(self.ns, HOST_RULES, os.path.join(workdir, "control.sock"),
                            os.path.join(workdir, "seqwall.log"))
        self.divert(self.ns, "start", "host")
        daemon.start(ready_timeout=30)
        self.addCleanup(daemon.stop)
        self.assertEqual(daemon.bound_queues(), {0})
        daemon.send_signal(signal.SIGKILL)
        daemon.proc.wait(timeout=10)
        # What systemd's ExecStopPost sees after a SIGKILL: SERVICE_RESULT=signal.
        cp = self.divert(self.ns, "stop", SERVICE_RESULT="signal",
                         SEQWALL_KEEP_DIVERSION_ON_FAILURE="yes")
        self.assertIn("the diversion stays", cp.stderr)
        self.assert_loaded("host")
        self.divert(self.ns, "stop", SERVICE_RESULT="signal")
        self.assertEqual(self.ruleset(), self.before, "stop after SIGKILL left the ruleset changed")

    def test_files_that_add_other_things_are_refused(self):
        cases = {
            "other-table": ("table inet seqwall {\n}\ntable ip filter {\n\tchain input {\n"
                            "\t\ttype filter hook input priority 0;\n\t}\n}\n", 3),
            "flush": ("table inet seqwall {\n\tchain c {\n\t\tcounter\n\t}\n}; flush ruleset\n", 5),
            "include": ('include "/etc/nftables.conf"\n', 1),
            "command": ("table inet seqwall {\n}\ndelete table inet other\n", 3),
        }
        for name, (text, line) in cases.items():
            with self.subTest(file=name):
                own = self.files.add(f"{name}-{self.ns}.nft", text)
                cp = self.divert(self.ns, "start", own, check=False)
                self.assertEqual(cp.returncode, 1)
                self.assertIn(f"{own}:{line}: only table inet seqwall may be defined", cp.stderr)
                self.assertIn("refused; nothing loaded", cp.stderr)
                self.assertEqual(self.ruleset(), self.before)
        # Braces in comments and strings do not confuse the check; defines are allowed.
        own = self.files.add(f"fine-{self.ns}.nft",
                             "define port = 8443  # { not a brace\ndefine more = { 9443, 9444 }\n"
                             "table inet seqwall {\n"
                             "\tchain input {\n\t\ttype filter hook input priority filter;\n"
                             '\t\ttcp dport $port counter comment "}{"\n'
                             "\t\tudp dport $more counter\n\t}\n}\n")
        self.divert(self.ns, "start", own)
        self.assertIn('tcp dport 8443 counter packets 0 bytes 0 comment "}{"', self.seqwall_table())
        self.assertIn("udp dport { 9443, 9444 } counter", self.seqwall_table())
        self.divert(self.ns, "stop")
        self.assertEqual(self.ruleset(), self.before)

    def test_queues(self):
        stand = "" if self.real_queue else 'counter packets 0 bytes 0 comment "stand-in for: '
        for queues, statement in (("7", "queue num 7 bypass"), ("2-5", "queue num 2-5 bypass"),
                                  ("3-3", "queue num 3 bypass")):
            with self.subTest(queues=queues):
                self.divert(self.ns, "start", "gateway", SEQWALL_QUEUES=queues)
                self.assert_loaded("gateway", queue=stand + statement)
        loaded = self.ruleset()
        for bad in ("5-2", "x", "1-2-3", "70000", "-1", "0-70000"):
            with self.subTest(bad=bad):
                cp = self.divert(self.ns, "start", "host", SEQWALL_QUEUES=bad, check=False)
                self.assertEqual(cp.returncode, 1)
                self.assertIn("SEQWALL_QUEUES", cp.stderr)
                self.assertEqual(self.ruleset(), loaded)
        # The same setting for iptables: --queue-balance, the same flow hash.
        self.divert(self.ns, "start", "gateway", SEQWALL_QUEUES="2-5",
                    SEQWALL_DIVERSION_BACKEND="iptables")
        rules = lab.ns_run(self.ns, ["iptables", "-S", "SEQWALL"]).stdout
        self.assertIn("-j NFQUEUE --queue-balance 2:5 --queue-bypass", rules)
        self.divert(self.ns, "stop")

    def test_synproxy_queue(self):
        """SEQWALL_SYNPROXY_QUEUE and _PORTS: both directions of the ports go to their queue
        ahead of the general rule (docs/synproxy.md), nft and iptables; bad settings change
        nothing."""
        ports = "8080,8443"
        if self.real_queue:
            self.divert(self.ns, "start", "gateway", SEQWALL_SYNPROXY_QUEUE="1", SEQWALL_SYNPROXY_PORTS=ports)
            table = self.assert_loaded("gateway")
            forward = table[table.index("chain forward"):]
            dport = forward.index("tcp dport { 8080, 8443 } queue num 1 bypass")
            sport = forward.index("tcp sport { 8080, 8443 } queue num 1 bypass")
            self.assertLess(max(dport, sport), forward.index("queue num 0 bypass"), forward)
        loaded = self.ruleset()
        for variables in ({"SEQWALL_SYNPROXY_QUEUE": "1"}, {"SEQWALL_SYNPROXY_PORTS": ports},
                          {"SEQWALL_SYNPROXY_QUEUE": "0", "SEQWALL_SYNPROXY_PORTS": ports},
                          {"SEQWALL_SYNPROXY_QUEUE": "3", "SEQWALL_QUEUES": "2-5", "SEQWALL_SYNPROXY_PORTS": ports},
                          {"SEQWALL_SYNPROXY_QUEUE": "1", "SEQWALL_SYNPROXY_PORTS": "80;443"},
                          {"SEQWALL_SYNPROXY_QUEUE": "1", "SEQWALL_SYNPROXY_PORTS": "0"},
                          {"SEQWALL_SYNPROXY_QUEUE": "x", "SEQWALL_SYNPROXY_PORTS": ports}):
            with self.subTest(**variables):
                cp = self.divert(self.ns, "start", "gateway", check=False, **variables)
                self.assertEqual(cp.returncode, 1, cp.stderr)
                self.assertIn("SEQWALL_SYNPROXY", cp.stderr)
                self.assertEqual(self.ruleset(), loaded)
        self.divert(self.ns, "start", "gateway", SEQWALL_DIVERSION_BACKEND="iptables", SEQWALL_QUEUES="0-1",
                    SEQWALL_SYNPROXY_QUEUE="2-3", SEQWALL_SYNPROXY_PORTS=ports)
        rules = lab.ns_run(self.ns, ["iptables", "-S", "SEQWALL"]).stdout.splitlines()
        self.assertEqual([r for r in rules if "NFQUEUE" in r], [
            "-A SEQWALL -p tcp -m multiport --dports 8080,8443 -j NFQUEUE --queue-balance 2:3 --queue-bypass",
            "-A SEQWALL -p tcp -m multiport --sports 8080,8443 -j NFQUEUE --queue-balance 2:3 --queue-bypass",
            "-A SEQWALL -j NFQUEUE --queue-balance 0:1 --queue-bypass"], rules)
        self.divert(self.ns, "stop")

    def test_iptables_backend_and_switching_backends(self):
        self.divert(self.ns, "start", "host", SEQWALL_DIVERSION_BACKEND="iptables")
        for tool in ("iptables", "ip6tables"):
            rules = lab.ns_run(self.ns, [tool, "-S"]).stdout
            self.assertIn("-A INPUT ! -i lo -p tcp -j SEQWALL", rules)
            self.assertIn("-j NFQUEUE --queue-num 0 --queue-bypass", rules)
        self.assertIsNone(self.seqwall_table())
        status = self.divert(self.ns, "status").stdout
        self.assertIn("ipv4 *filter -A INPUT ! -i lo -p tcp -j SEQWALL", status)
        # nft's start takes the iptables diversion away (else packets would be queued twice).
        self.divert(self.ns, "start", "host")
        self.assert_loaded("host", iptables_used=True)
        for tool in ("iptables", "ip6tables"):
            self.assertNotIn("SEQWALL", lab.ns_run(self.ns, [tool, "-S"]).stdout)
        # And the other way round.
        self.divert(self.ns, "start", "gateway", SEQWALL_DIVERSION_BACKEND="iptables")
        self.assertIsNone(self.seqwall_table())
        self.assertIn("-A FORWARD -p tcp -j SEQWALL", lab.ns_run(self.ns, ["iptables", "-S"]).stdout)
        # Stop removes whichever is there, whatever backend it is told.
        self.divert(self.ns, "stop")
        for tool in ("iptables", "ip6tables"):
            self.assertNotIn("SEQWALL", lab.ns_run(self.ns, [tool, "-S"]).stdout)
        self.assert_others_untouched("after stop", iptables_used=True)

    def test_backend_choice(self):
        self.divert(self.ns, "start", "host", SEQWALL_DIVERSION_BACKEND=None)
        iptables_used = not self.real_queue
        if self.real_queue:
            self.assert_loaded("host")
        else:
            self.assertIsNone(self.seqwall_table())
            self.assertIn("-j SEQWALL", lab.ns_run(self.ns, ["iptables", "-S"]).stdout)
        self.divert(self.ns, "stop")
        cp = self.divert(self.ns, "start", "host", SEQWALL_DIVERSION_BACKEND="pf", check=False)
        self.assertEqual(cp.returncode, 1)
        self.assertIn("unknown SEQWALL_DIVERSION_BACKEND 'pf'", cp.stderr)
        cp = self.divert(self.ns, "start", self.files.path("host.nft"),
                         SEQWALL_DIVERSION_BACKEND="iptables", check=False)
        self.assertEqual(cp.returncode, 1)
        self.assertIn("an nft file, but SEQWALL_DIVERSION_BACKEND=iptables", cp.stderr)
        cp = self.divert(self.ns, "start", "host", SEQWALL_FAMILIES="ipv4", check=False)
        self.assertEqual(cp.returncode, 1)
        self.assertIn("SEQWALL_FAMILIES is for the iptables backend", cp.stderr)
        self.assert_others_untouched("refused starts", iptables_used)
        self.assertIsNone(self.seqwall_table())


# ---------------------------------------------------------------------------------------------
# Defragmentation: what the kernel hands to the hooks with the diversion loaded
# ---------------------------------------------------------------------------------------------

# A table of the test's own, after seqwall's chains (priority filter + 10), that counts the
# UDP packets to port 9999 by kind: fragments, or datagrams larger than the link's MTU.
PROBE_CHAIN = """
	chain {hook} {{
		type filter hook {hook} priority filter + 10; policy accept;
		ip frag-off & 0x3fff != 0 counter comment "fragments"
		exthdr frag exists counter comment "fragments"
		meta l4proto udp udp dport 9999 meta length > 1500 counter comment "whole"
	}}"""
PROBE = "table inet probe {" + "".join(PROBE_CHAIN.format(hook=h) for h in ("forward", "input")) + "\n}\n"

RECEIVE = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9999))
s.settimeout(20)
print("bound", flush=True)
print(len(s.recvfrom(65535)[0]), flush=True)
"""

SEND = """
import socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"d" * int(sys.argv[2]), (sys.argv[1], 9999))
"""

SIZE = 4000


class DefragmentTest(NftTestCase):
    """The kernel's reassembler runs in the namespace with the diversion loaded, and keeps no
    connection state."""

    def setUp(self):
        if shutil.which("conntrack") is None:
            self.skipTest("conntrack not found (Debian package conntrack)")
        self.empty = self.files.add("nothing.iptables", "*filter\nCOMMIT\n")

    def make_lab(self, mode):
        rules = GATEWAY_RULES if mode == lab.GATEWAY else HOST_RULES
        built = lab.Lab(mode, rules, server_ports=(8080,), client_ports=(), iptables=self.empty)
        built.build()
        self.addCleanup(built.destroy)
        lab.ns_run(built.fw_ns, ["nft", "-f", "-"], input=PROBE)
        return built

    def counters(self, ns, chain):
        text = lab.ns_run(ns, ["nft", "list", "chain", "inet", "probe", chain]).stdout
        out = {"fragments": 0, "whole": 0}
        for packets, kind in re.findall(r'counter packets (\d+) bytes \d+ comment "(\w+)"', text):
            out[kind] += int(packets)
        return out

    def send(self, built, dst, receiver_ns):
        """One SIZE-byte datagram from the client to dst:9999; returns what the receiver got."""
        path = os.path.join(built.workdir, "receive.py")
        with open(path, "w") as f:
            f.write(RECEIVE)
        receiver = lab.spawn(receiver_ns, [lab.PY, path, dst], os.path.join(built.workdir, "rx.log"))
        try:
            lines = lab.LineReader(receiver.stdout)
            self.assertEqual(lines.readline(30), "bound")  # before the datagram leaves
            lab.ns_run(built.ns["client"], [lab.PY, "-c", SEND, dst, str(SIZE)])
            return lines.readline(20)
        finally:
            lab.REGISTRY.kill_proc(receiver, grace=1.0)

    def assert_kernel_table_empty(self, built, ns):
        """After a TCP connection in each family too, the kernel has no connection."""
        for family in (4, 6):
            with built.connect("client", built.server_addr(family), 8080, timeout=5.0) as conn:
                self.assertTrue(conn.connected, conn.error)
                self.assertEqual(conn.send(b"hi"), b"echo:hi")
        self.assertEqual(lab.ns_run(ns, ["conntrack", "-C"]).stdout.strip(), "0")
        cp = lab.ns_run(ns, ["conntrack", "-L"], check=False)
        self.assertEqual(cp.stdout.strip(), "", cp.stdout)
        self.assertIn("0 flow entries", cp.stderr)

    def test_gateway_forwards_whole_datagrams(self):
        built = self.make_lab(lab.GATEWAY)
        fw = built.fw_ns
        for family in (4, 6):
            with self.subTest(family=family, diversion=False):
                before = self.counters(fw, "forward")
                self.assertEqual(self.send(built, built.server_addr(family), built.ns["server"]),
                                 str(SIZE))
                after = self.counters(fw, "forward")
                # Without the diversion nothing reassembles: the fragments cross one by one.
                self.assertGreaterEqual(after["fragments"] - before["fragments"], 3, after)
                self.assertEqual(after["whole"], before["whole"], after)
        self.divert(fw, "start", "gateway")
        for family in (4, 6):
            with self.subTest(family=family, diversion=True):
                before = self.counters(fw, "forward")
                self.assertEqual(self.send(built, built.server_addr(family), built.ns["server"]),
                                 str(SIZE))
                after = self.counters(fw, "forward")
                self.assertEqual(after["whole"] - before["whole"], 1, after)
                self.assertEqual(after["fragments"], before["fragments"], after)
        self.assert_kernel_table_empty(built, fw)
        # Deleting the table takes the reassembler back (nft_tproxy_destroy()).
        self.divert(fw, "stop")
        before = self.counters(fw, "forward")
        self.assertEqual(self.send(built, built.server_addr(4), built.ns["server"]), str(SIZE))
        after = self.counters(fw, "forward")
        self.assertGreaterEqual(after["fragments"] - before["fragments"], 3, after)

    def test_host_receives_whole_ipv6_datagrams(self):
        built = self.make_lab(lab.HOST)
        host = built.fw_ns
        # IPv6: reassembled before input only by the netfilter reassembler.
        before = self.counters(host, "input")
        self.assertEqual(self.send(built, built.server_addr(6), host), str(SIZE))
        after = self.counters(host, "input")
        self.assertGreaterEqual(after["fragments"] - before["fragments"], 3, after)
        self.divert(host, "start", "host")
        self.addCleanup(self.divert, host, "stop")
        for family in (6, 4):
            with self.subTest(family=family):
                before = self.counters(host, "input")
                self.assertEqual(self.send(built, built.server_addr(family), host), str(SIZE))
                after = self.counters(host, "input")
                self.assertEqual(after["whole"] - before["whole"], 1, after)
                self.assertEqual(after["fragments"], before["fragments"], after)
        self.assert_kernel_table_empty(built, host)


# ---------------------------------------------------------------------------------------------
# What host.nft queues: not loopback, not neighbour discovery or MLD
# ---------------------------------------------------------------------------------------------

# ICMPv6 sent from the client to the host, crafted with scapy: (what, queued?).
ICMPV6 = """
import logging, sys
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import (Ether, ICMPv6EchoRequest, ICMPv6MLQuery, ICMPv6ND_NS, IPv6,
                       IPv6ExtHdrHopByHop, RouterAlert, send, sendp)
host = sys.argv[1]
for p in [
    IPv6(dst=host, hlim=255) / ICMPv6ND_NS(tgt=host),               # spared
    IPv6(dst=host, hlim=64) / ICMPv6ND_NS(tgt=host),                # queued
    IPv6(dst=host, hlim=64) / ICMPv6EchoRequest(id=7, seq=1),       # queued, and its reply
]:
    send(p, iface="eth0", verbose=0)
# MLD queries to all nodes, on the link (a multicast Ethernet address of its own).
for hlim in (1, 2):                                                 # spared, queued
    sendp(Ether(dst="33:33:00:00:00:01") / IPv6(dst="ff02::1", hlim=hlim)
          / IPv6ExtHdrHopByHop(options=[RouterAlert()]) / ICMPv6MLQuery(), iface="eth0", verbose=0)
"""
QUEUED = 4  # the NS with hop limit 64, the MLD query with hop limit 2, the echo and its reply


class HostQueueSelectionTest(NftTestCase):
    """host.nft's matches with real packets: the shipped file with its queue statement turned
    into a counter (a stand-in on every kernel, so that the count is exact), in a host lab."""

    def test_loopback_neighbour_discovery_and_mld_are_not_queued(self):
        problem = lab.scapy_problem()
        if problem:
            self.skipTest(problem)
        empty = self.files.add("nothing.iptables", "*filter\nCOMMIT\n")
        built = lab.Lab(lab.HOST, HOST_RULES, server_ports=(), client_ports=(), iptables=empty)
        built.build()
        self.addCleanup(built.destroy)
        host = built.fw_ns
        with open(os.path.join(SHIPPED, "host.nft")) as f:
            own = self.files.add(f"host-counted-{host}.nft", stand_in(f.read()))
        self.divert(host, "start", own)
        self.addCleanup(self.divert, host, "stop")

        def queued():
            text = lab.ns_run(host, ["nft", "list", "chain", "inet", "seqwall", "divert"]).stdout
            m = re.search(r'counter packets (\d+) bytes \d+ comment "stand-in for: queue', text)
            self.assertIsNotNone(m, text)
            return int(m.group(1))
        # Loopback, both families: never queued.
        before = queued()
        for addr in ("127.0.0.1", "::1", built.server_addr(4), built.server_addr(6)):
            lab.ns_run(host, [lab.PY, lab.LAB_FILE, "ping", addr])
        self.assertEqual(queued(), before, "loopback traffic was queued")
        # From the client: only what host.iptables would queue too.
        lab.ns_run(built.ns["client"], [lab.PY, "-c", ICMPV6, built.server_addr(6)], timeout=60)
        lab.wait_for(lambda: queued() - before >= QUEUED, 5)
        time.sleep(0.5)  # anything queued late would show now
        self.assertEqual(queued() - before, QUEUED,
                         lab.ns_run(host, ["nft", "list", "table", "inet", "seqwall"]).stdout)


# ---------------------------------------------------------------------------------------------
# seqwall behind the nft diversion (needs a kernel with nft_queue)
# ---------------------------------------------------------------------------------------------

class NftQueueTest(NftTestCase):
    """Real traffic, IPv4 and IPv6, judged by seqwall through the one inet table."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not cls.real_queue:
            raise unittest.SkipTest("this kernel cannot queue from nftables (no nft_queue: "
                                    "CONFIG_NFT_QUEUE); the shipped .nft files do not load here")

    def run_lab(self, mode, queues):
        empty = self.files.add("nothing.iptables", "*filter\nCOMMIT\n")
        rules = GATEWAY_RULES if mode == lab.GATEWAY else HOST_RULES
        built = lab.Lab(mode, rules, server_ports=(8080, 8081), client_ports=(), iptables=empty)
        built.build()
        self.addCleanup(built.destroy)
        spec = "0" if len(queues) == 1 else f"{queues[0]}-{queues[-1]}"
        self.divert(built.fw_ns, "start", mode, SEQWALL_QUEUES=spec)
        self.addCleanup(self.divert, built.fw_ns, "stop")
        built.daemon.queues = list(queues)
        built.start_daemon()
        return built

    def check_traffic(self, built, connections=6):
        for family in (4, 6):
            with self.subTest(family=family):
                server = built.server_addr(family)
                for _ in range(connections):
                    with built.connect("client", server, 8080, timeout=5.0) as conn:
                        self.assertTrue(conn.connected, f"allowed connection failed: {conn.error}")
                        self.assertEqual(conn.send(b"hello"), b"echo:hello")
                        conn.close()
                with built.connect("client", server, 8081, timeout=2.0) as conn:
                    self.assertFalse(conn.connected, "a connection to a blocked port got through")
        stats = built.daemon.stats()
        self.assertGreaterEqual(lab.drops(stats, "rule"), 2, stats)
        return stats

    def test_host_mode_one_queue(self):
        built = self.run_lab(lab.HOST, [0])
        self.check_traffic(built)

    def test_gateway_mode_two_queues(self):
        built = self.run_lab(lab.GATEWAY, [0, 1])
        self.assertIn("queue num 0-1 bypass",
                      lab.ns_run(built.fw_ns, ["nft", "list", "table", "inet", "seqwall"]).stdout)
        stats = self.check_traffic(built, connections=12)
        seen = [q.get("seen", 0) for q in stats.get("queues", [])]
        self.assertEqual(len(seen), 2, stats)
        self.assertTrue(all(n > 0 for n in seen), f"the hash left a queue idle: {seen}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
