"""Address tables with real traffic: a 100,000-line drop file blocks a listed source and passes
an unlisted one (seqwall.rules(5), tables).

Gateway lab: the client is 198.51.100.10 and 2001:db8:1::10. The drop file lists the IPv4
client among 100,000 lines (IPv6 /128s in 2001:db8:ffff::/48, /32s and /24s of the
documentation ranges, exceptions and comments); the IPv6 client is not listed. The rules open
port 8080 inbound to everyone not in the table.
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402

OPEN_PORT = 8080
LINES = 100_000


def write_drop_file(path):
    lines = ["# drop list for the lab: one address or network a line"]
    lines.append("198.51.100.10")
    # An exception for the firewall's own address, inside a listed /24 of another range.
    lines += ["203.0.113.0/25", "!203.0.113.1"]
    for third in range(0, 256):
        lines.append(f"192.0.2.{third}")
    n = 0
    while len(lines) < LINES:
        lines.append(f"2001:db8:ffff::{n // 65536:x}:{n % 65536:x}")
        n += 1
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")


class GatewayTableLab(lab.LabTestCase):
    """The gateway lab with NAME.rules: RULES between the lab's `inside` line and `set pickup
    grace 0`; WRITE_FILES(path), when set, writes drop.txt beside it first."""
    MODE = lab.GATEWAY
    SERVER_PORTS = (OPEN_PORT,)
    CLIENT_PORTS = ()
    NAME = ""
    RULES = ""
    WRITE_FILES = None

    @classmethod
    def make_lab(cls):
        directory = lab.rules_dir(f"seqwall-{cls.NAME}-")
        if cls.WRITE_FILES:
            cls.WRITE_FILES(os.path.join(directory, "drop.txt"))
        rules = os.path.join(directory, f"{cls.NAME}.rules")
        with open(rules, "w") as fh:
            fh.write("inside 203.0.113.0/24, 2001:db8:2::/64\n" + cls.RULES + "set pickup grace 0\n")
        return lab.Lab(cls.MODE, rules, server_ports=cls.SERVER_PORTS, client_ports=cls.CLIENT_PORTS)


class TableDropFileTests(GatewayTableLab):
    NAME = "tables"
    RULES = ("table <drop> file \"drop.txt\"\n"
             "table <unused> persist\n"
             "default in block\n"
             "default out pass\n"
             "block in tcp from <drop>\n"
             f"pass in tcp to port {OPEN_PORT}\n")
    WRITE_FILES = staticmethod(write_drop_file)

    def test_1_listed_source_is_blocked(self):
        server = self.lab.server_addr(4)
        before = self.lab.daemon.stats()
        with self.lab.connect("client", server, OPEN_PORT, timeout=2.0) as c:
            self.assertFalse(c.connected, "a source in the drop table connected")
            self.assertEqual(c.error, "timeout", "a blocked SYN must be dropped silently")
        time.sleep(0.3)
        after = self.lab.daemon.stats()
        self.assertEqual(self.lab.server.accepts(OPEN_PORT), [])
        self.assertGreaterEqual(lab.drops(after, "rule") - lab.drops(before, "rule"), 1,
                                f"no `rule` drop counted: {before} -> {after}")

    def test_2_unlisted_source_passes(self):
        server = self.lab.server_addr(6)
        with self.lab.connect("client", server, OPEN_PORT) as c:
            self.assertTrue(c.connected, f"an unlisted source could not connect: {c.error}")
            self.assertEqual(c.send(b"not on the list"), b"echo:not on the list")
            self.assertEqual(c.close(), b"")
        peers = [a for a in self.lab.server.accepts(OPEN_PORT) if a["peer_port"] == c.sport]
        self.assertEqual(len(peers), 1, f"server accepts: {self.lab.server.accepts()}")
        self.assertTrue(lab.addr_eq(peers[0]["peer"], self.lab.client_addr(6)))

    def test_3_rules_show_names_the_table(self):
        text = self.lab.daemon.cli(["rules", "show"]).stdout
        self.assertIn("block in tcp from <drop>", text)

    def test_4_a_table_no_rule_uses_is_a_warning_not_an_error(self):
        """`rules check` and the daemon's log at start name the unused table at its
        file:line:column; the file still loads (exit status 0, the daemon runs)."""
        rules = self.lab.daemon.rules
        warning = f"{rules}:3:1: warning: table <unused> is defined but no rule uses it"
        # Reading the 100,000-line table file takes seconds in a debug build on a busy machine.
        cp = lab.run([lab.SEQWALL_BIN, "rules", "check", rules], check=False, timeout=120)
        self.assertEqual(cp.returncode, 0, cp)
        self.assertEqual(cp.stderr, warning + "\n")
        self.assertIn(warning, self.lab.daemon.log_text())


class TableWithoutProtocolTests(GatewayTableLab):
    """`block in from <drop>`, written without a protocol as pf.conf allows, blocks TCP and ICMP
    echo from a listed source (seqwall.rules(5): a rule per protocol), while the rules below it
    still pass an unlisted source's connections and pings."""
    NAME = "anyproto"
    RULES = ("table <drop> { 198.51.100.10 }\n"
             "block in from <drop>\n"
             f"pass in tcp to port {OPEN_PORT}\n"
             "pass in icmp echo\n"
             "pass in icmp6 echo\n")

    def ping(self, family):
        cp = lab.ns_run(self.lab.ns["client"], [lab.PY, lab.LAB_FILE, "ping", self.lab.server_addr(family)],
                        check=False, timeout=10)
        return cp.returncode == 0

    def test_listed_source_is_blocked_for_every_protocol(self):
        before = self.lab.daemon.stats()
        with self.lab.connect("client", self.lab.server_addr(4), OPEN_PORT, timeout=2.0) as c:
            self.assertFalse(c.connected, "a source in the table connected")
        self.assertFalse(self.ping(4), "a source in the table was answered a ping")
        time.sleep(0.3)
        after = self.lab.daemon.stats()
        self.assertGreaterEqual(lab.drops(after, "rule") - lab.drops(before, "rule"), 2,
                                f"the SYN and the echo request must be `rule` drops: {before} -> {after}")
        text = self.lab.daemon.cli(["rules", "show"]).stdout
        for line in ("block in tcp from <drop>", "block in udp from <drop>", "block in icmp echo from <drop>",
                     "block in icmp6 echo from <drop>"):
            self.assertIn(line, text)

    def test_unlisted_source_passes(self):
        with self.lab.connect("client", self.lab.server_addr(6), OPEN_PORT) as c:
            self.assertTrue(c.connected, f"an unlisted source could not connect: {c.error}")
            self.assertEqual(c.send(b"not listed"), b"echo:not listed")
        self.assertTrue(self.ping(6), "an unlisted source's ping was not answered")


class LiveTableTests(lab.LabTestCase):
    """`seqwall table` on the running daemon (docs/operations.md, Live table changes): an add
    blocks the listed client's next SYN without a reload while established connections carry
    on; a persist table's run-time entries survive a reload and a restart with the state file.

    Gateway lab: 198.51.100.10 (the client added to <drop>) and 2001:db8:1::10 (another
    source, never listed) both connect to the server's port 8080."""

    MODE = lab.GATEWAY
    SERVER_PORTS = (OPEN_PORT,)
    CLIENT_PORTS = ()

    @classmethod
    def make_lab(cls):
        directory = lab.rules_dir("seqwall-live-tables-")
        cls.rules_path = os.path.join(directory, "live.rules")
        with open(cls.rules_path, "w") as fh:
            fh.write("inside 203.0.113.0/24, 2001:db8:2::/64\n"
                     "table <drop> persist\n"
                     "default in block\n"
                     "default out pass\n"
                     "block in tcp from <drop>\n"
                     f"pass in tcp to port {OPEN_PORT}\n"
                     "set pickup grace 0\n")
        return lab.Lab(cls.MODE, cls.rules_path, server_ports=cls.SERVER_PORTS, client_ports=cls.CLIENT_PORTS)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        state_dir = os.path.join(cls.lab.workdir, "state")
        os.mkdir(state_dir, 0o700)
        cls.lab.daemon.stop()
        cls.lab.daemon.extra = ["--state-file", os.path.join(state_dir, "seqwall.state"), "--state-interval", "3600"]
        cls.lab.daemon.start()

    def table(self, *args, check=True):
        return self.lab.daemon.cli(["table", "drop", *args], check=check)

    def assert_blocked(self, family, label):
        with self.lab.connect("client", self.lab.server_addr(family), OPEN_PORT, timeout=2.0) as c:
            self.assertFalse(c.connected, f"{label}: a source in <drop> connected")
            self.assertEqual(c.error, "timeout", f"{label}: a blocked SYN must be dropped silently")

    def test_add_blocks_the_next_syn_and_established_connections_carry_on(self):
        self.table("flush")
        ipv4 = self.lab.server_addr(4)
        ipv6 = self.lab.server_addr(6)
        with self.lab.connect("client", ipv6, OPEN_PORT) as other, \
                self.lab.connect("client", ipv4, OPEN_PORT) as own:
            self.assertTrue(other.connected, f"the IPv6 client could not connect: {other.error}")
            self.assertTrue(own.connected, f"the IPv4 client could not connect before the add: {own.error}")
            reloads = self.lab.daemon.stats().get("last_reload")
            added = self.table("add", self.lab.client_addr(4))
            self.assertEqual(added.stdout.strip(), "1/1 addresses added")
            self.assertEqual(self.lab.daemon.stats().get("last_reload"), reloads, "the add made a reload")
            self.assert_blocked(4, "after the add")
            # Tables decide new connections: both established ones carry on.
            self.assertEqual(other.send(b"still here"), b"echo:still here")
            self.assertEqual(own.send(b"mine too"), b"echo:mine too")
            self.assertEqual(other.close(), b"")
            self.assertEqual(own.close(), b"")
        with self.lab.connect("client", ipv6, OPEN_PORT) as again:
            self.assertTrue(again.connected, f"an unlisted source could not connect after the add: {again.error}")
        self.assertEqual(self.table("test", self.lab.client_addr(4)).returncode, 0)
        self.assertEqual(self.table("test", self.lab.client_addr(6), check=False).returncode, 1)
        entries = [t for t in self.lab.daemon.stats()["tables"] if t["name"] == "drop"]
        self.assertEqual(entries, [{"name": "drop", "persist": True, "entries": 1}])
        deleted = self.table("delete", self.lab.client_addr(4))
        self.assertEqual(deleted.stdout.strip(), "1/1 addresses deleted")
        with self.lab.connect("client", ipv4, OPEN_PORT) as back:
            self.assertTrue(back.connected, f"the deleted source could not connect: {back.error}")

    def test_persist_entries_survive_a_reload_and_a_restart(self):
        self.table("flush")
        self.table("add", self.lab.client_addr(4))
        self.lab.daemon.cli(["reload"])
        self.assertEqual(self.table("show").stdout.split(), [self.lab.client_addr(4)])
        self.assert_blocked(4, "after the reload")
        self.assertEqual(self.lab.daemon.stop(), 0)
        self.lab.daemon.start()
        self.assertEqual(self.table("show").stdout.split(), [self.lab.client_addr(4)])
        self.assert_blocked(4, "after the restart")
        self.table("flush")
        with self.lab.connect("client", self.lab.server_addr(4), OPEN_PORT) as c:
            self.assertTrue(c.connected, f"the flushed source could not connect: {c.error}")


if __name__ == "__main__":
    unittest.main()
