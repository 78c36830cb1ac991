"""The pickup grace period: live sessions survive a start without a state file and a
`conntrack flush`; blocked ports stay blocked; strict again afterwards (docs/design.md,
Pickup).

Gateway and host mode, IPv4 and IPv6. The interactive sessions are the lab's echo client: data
both ways every 0.5 s, from a thread, while seqwall stops, starts, reloads and flushes. The
shipped diversion has --queue-bypass, so while seqwall is down packets pass and connections
are opened without it.

- A start without a state file: a session opened while seqwall was down carries on
  (picked up, client as opener); a connection to the blocked port 8081 opened meanwhile is
  not picked up, whether the client or the server (a crafted segment from the server's port)
  speaks first: both are dropped as `rule`, not `no-connection`, which shows the grace period
  was on and the rules refused it.
- Strict again after a 3 s grace period: a session opened while seqwall was down and silent
  until then is cut (`no-connection`); the session picked up in the grace period goes on.
- A reload starts no grace period; `conntrack delete` cuts; `conntrack flush` starts one and
  the session carries on.
"""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402

OPEN_PORT = 8080
BLOCKED_PORT = 8081
RULES = """\
# test_pickup_grace.py: {open_port} open inbound, {blocked_port} blocked (default in block).
{inside}default in block
default out pass
pass in tcp to port {open_port}
set pickup grace {grace}
"""


class Chatter:
    """An interactive session: the client sends and the server echoes every 0.5 s, from a
    thread, until stopped. Records each exchange's time and result."""

    def __init__(self, conn, interval=0.5):
        self.conn = conn
        self.interval = interval
        self.results = []          # (monotonic time, ok, detail)
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        n = 0
        while not self.stopping.is_set():
            n += 1
            data = f"tick {n}".encode()
            try:
                reply = self.conn.send(data, timeout=3.0)
                ok, detail = reply == b"echo:" + data, reply
            except AssertionError as e:
                ok, detail = False, str(e)
            with self.lock:
                self.results.append((time.monotonic(), ok, detail))
            if not ok:
                return             # a lost exchange leaves the agent's stream out of step
            self.stopping.wait(self.interval)

    def since(self, t):
        with self.lock:
            return [r for r in self.results if r[0] >= t]

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=10)

    def failures(self):
        with self.lock:
            return [r for r in self.results if not r[1]]


class GraceTestsBase:
    """The tests, for a lab MODE set by the subclasses."""

    SERVER_PORTS = (OPEN_PORT, BLOCKED_PORT)
    CLIENT_PORTS = ()

    @classmethod
    def setUpClass(cls):
        cls.RULES = os.path.join(lab.rules_dir("seqwall-grace-"), "grace.rules")
        cls.write_rules(30)
        super().setUpClass()

    @classmethod
    def write_rules(cls, grace):
        inside = "inside 203.0.113.0/24, 2001:db8:2::/64\n" if cls.MODE == lab.GATEWAY else ""
        with open(cls.RULES, "w") as f:
            f.write(RULES.format(open_port=OPEN_PORT, blocked_port=BLOCKED_PORT, inside=inside, grace=grace))

    # -- helpers --

    def connect(self, family, port):
        conn = self.lab.connect("client", self.lab.server_addr(family), port, timeout=3.0)
        self.addCleanup(conn.abort)
        self.assertTrue(conn.connected, f"connect to port {port} failed: {conn.error}")
        return conn

    def chatter(self, conn):
        chat = Chatter(conn)
        self.addCleanup(chat.stop)
        return chat

    def stats(self):
        return self.lab.daemon.stats()

    def entries(self, port):
        return [e for e in self.lab.daemon.conntrack()
                if port in (e["orig"].get("dport"), e["orig"].get("sport"))]

    def wait_exchanges(self, chat, since, count, timeout=20):
        ok = lab.wait_for(lambda: len(chat.since(since)) >= count or chat.failures(), timeout, 0.1)
        self.assertTrue(ok, f"the session made fewer than {count} exchanges in {timeout} s")
        self.assertEqual(chat.failures(), [], "the interactive session was cut")

    def restart_without_state(self, grace):
        self.lab.daemon.stop()
        self.write_rules(grace)

    def wait_grace_over(self, timeout=40):
        ok = lab.wait_for(lambda: self.stats()["pickup"].get("grace_seconds_left", 0) == 0, timeout, 0.5)
        self.assertTrue(ok, f"the grace period did not end: {self.stats()['pickup']}")

    def server_segment(self, family, conn, port):
        """A segment from the server's port to the client's, as the server would send it
        first: the tracker has not seen the connection yet."""
        return {"family": family, "src": self.lab.server_addr(family), "dst": self.lab.client_addr(family),
                "sport": port, "dport": conn.sport, "flags": "PA", "seq": 123456, "ack": 654321}

    # -- tests --

    def start_without_state_file(self, family):
        self.restart_without_state(30)
        session = self.connect(family, OPEN_PORT)
        blocked_client_first = self.connect(family, BLOCKED_PORT)
        blocked_server_first = self.connect(family, BLOCKED_PORT)
        # seqwall is down: everything passes (--queue-bypass), the blocked port included.
        self.assertEqual(blocked_client_first.send(b"before"), b"echo:before")
        self.assertEqual(blocked_server_first.send(b"before"), b"echo:before")
        chat = self.chatter(session)
        self.wait_exchanges(chat, 0, 2)

        self.lab.start_daemon()
        started = time.monotonic()
        self.wait_exchanges(chat, started, 6)
        stats = self.stats()
        self.assertGreaterEqual(stats["pickup"]["picked_up"], 1, f"{stats['pickup']}")
        self.assertGreater(stats["pickup"].get("grace_seconds_left", 0), 0, f"{stats['pickup']}")
        self.assertIn("grace period until", self.lab.daemon.cli(["stats"]).stdout)
        # Picked up with the client as opener, whoever spoke first.
        [entry] = self.entries(OPEN_PORT)
        self.assertTrue(lab.addr_eq(entry["orig"]["src"], self.lab.client_addr(family)), f"{entry}")
        self.assertEqual(entry["orig"]["dport"], OPEN_PORT, f"{entry}")
        self.assertEqual(entry["orig"]["sport"], session.sport, f"{entry}")

        # The blocked port: the server speaks first (its port is not ephemeral, the client's
        # is: the client opened it, inbound to 8081, blocked) ...
        before = lab.drops(stats, "rule")
        self.lab.craft([self.server_segment(family, blocked_server_first, BLOCKED_PORT)], src_role="server")
        self.assertTrue(lab.wait_for(lambda: lab.drops(self.stats(), "rule") > before, 10, 0.2),
                        "the server's segment of a blocked connection was not dropped as rule")
        self.assertEqual(self.entries(BLOCKED_PORT), [])
        # ... or the client does.
        before = lab.drops(self.stats(), "rule")
        with self.assertRaises(AssertionError):
            blocked_client_first.send(b"after", timeout=2.0)
        self.assertGreater(lab.drops(self.stats(), "rule"), before)
        self.assertEqual(self.entries(BLOCKED_PORT), [])
        # The grace period was on all along: the drops were the rules', not no-connection.
        self.assertGreater(self.stats()["pickup"].get("grace_seconds_left", 0), 0)
        self.wait_exchanges(chat, time.monotonic(), 2)

    def strict_after_the_grace_period(self, family):
        self.restart_without_state(3)
        session = self.connect(family, OPEN_PORT)
        silent = self.connect(family, OPEN_PORT)
        self.assertEqual(silent.send(b"before"), b"echo:before")
        chat = self.chatter(session)
        self.wait_exchanges(chat, 0, 2)
        self.lab.start_daemon()
        self.wait_grace_over()
        after = time.monotonic()
        stats = self.stats()
        self.assertGreaterEqual(stats["pickup"]["picked_up"], 1, f"{stats['pickup']}")
        self.assertIn("grace period over since", self.lab.daemon.cli(["stats"]).stdout)
        # The session picked up in the grace period goes on after it.
        self.wait_exchanges(chat, after, 4)
        # One first seen now is not picked up.
        before = lab.drops(stats, "no-connection")
        with self.assertRaises(AssertionError):
            silent.send(b"late", timeout=2.0)
        self.assertGreater(lab.drops(self.stats(), "no-connection"), before)
        self.assertEqual([e for e in self.entries(OPEN_PORT) if e["orig"]["sport"] == silent.sport], [])

    def flush_keeps_sessions_delete_cuts(self, family):
        # Started with a short grace period, over before the connections are opened.
        self.restart_without_state(1)
        self.lab.start_daemon()
        self.wait_grace_over()
        session = self.connect(family, OPEN_PORT)
        doomed = self.connect(family, OPEN_PORT)
        self.assertEqual(doomed.send(b"one"), b"echo:one")
        chat = self.chatter(session)
        self.wait_exchanges(chat, 0, 2)

        # A reload with a longer grace period starts none.
        self.write_rules(30)
        self.lab.daemon.cli(["reload"])
        self.assertEqual(self.stats()["pickup"].get("grace_seconds_left", 0), 0)

        # `conntrack delete` cuts.
        before = lab.drops(self.stats(), "no-connection")
        out = self.lab.daemon.cli(["conntrack", "delete", "--sport", str(doomed.sport)]).stdout
        self.assertIn("1 flow entry has been deleted", out)
        with self.assertRaises(AssertionError):
            doomed.send(b"two", timeout=2.0)
        self.assertGreater(lab.drops(self.stats(), "no-connection"), before)

        # `conntrack flush` empties the table and starts a grace period: the session goes on.
        picked = self.stats()["pickup"]["picked_up"]
        out = self.lab.daemon.cli(["conntrack", "flush"]).stdout
        self.assertIn("picked up for 30 s", out)
        flushed = time.monotonic()
        self.wait_exchanges(chat, flushed, 4)
        stats = self.stats()
        self.assertGreater(stats["pickup"]["picked_up"], picked, f"{stats['pickup']}")
        self.assertGreater(stats["pickup"].get("grace_seconds_left", 0), 0, f"{stats['pickup']}")
        # The session's entry, client as opener. (The deleted connection's stack is still
        # retransmitting its lost segment: the flush's grace period picks that up too.)
        mine = [e for e in self.entries(OPEN_PORT) if e["orig"]["sport"] == session.sport]
        self.assertEqual(len(mine), 1, f"{self.entries(OPEN_PORT)}")
        self.assertEqual(mine[0]["orig"]["dport"], OPEN_PORT)

    def test_start_without_state_file_ipv4(self):
        self.start_without_state_file(4)

    def test_start_without_state_file_ipv6(self):
        self.start_without_state_file(6)

    def test_strict_after_the_grace_period_ipv4(self):
        self.strict_after_the_grace_period(4)

    def test_strict_after_the_grace_period_ipv6(self):
        self.strict_after_the_grace_period(6)

    def test_flush_keeps_sessions_delete_cuts_ipv4(self):
        self.flush_keeps_sessions_delete_cuts(4)

    def test_flush_keeps_sessions_delete_cuts_ipv6(self):
        self.flush_keeps_sessions_delete_cuts(6)


class GatewayGraceTests(GraceTestsBase, lab.LabTestCase):
    MODE = lab.GATEWAY


class HostGraceTests(GraceTestsBase, lab.LabTestCase):
    MODE = lab.HOST


if __name__ == "__main__":
    unittest.main()
