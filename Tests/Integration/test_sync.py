"""State sync between two seqwall nodes (docs/ha.md, docs/sync-protocol.md), real packets
through a real NFQUEUE.

A gateway lab (client, firewall A, server) and a second firewall namespace B joined to A by a
sync link with documentation addresses. Connections made through A appear in B's table with
their state; closing them on A changes them on B, deleting them on A removes them on B; a
node with the wrong key is refused and counted while A's packet path carries on. The sync runs
over IPv4 in one class and over IPv6 in the other; the connections are IPv4 and IPv6 in both.
"""

import json
import os
import socket
import time
import unittest

import lab

SYNC_PORT = 7946


class SyncLab:
    """The two-node lab and its helpers, shared with test_sync_refusal.py."""

    MODE = lab.GATEWAY
    RULES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rules", "gateway.rules")
    SERVER_PORTS = (8080,)
    CLIENT_PORTS = ()
    SYNC_A = "192.0.2.1"
    SYNC_B = "192.0.2.2"
    PREFIX = 24

    @classmethod
    def endpoint(cls, address):
        return f"[{address}]:{SYNC_PORT}" if ":" in address else f"{address}:{SYNC_PORT}"

    @classmethod
    def write_key(cls, name, data):
        path = os.path.join(cls.lab.workdir, name)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600)
        return path

    @classmethod
    def sync_args(cls, mine, peer, key):
        return ["--sync-listen", cls.endpoint(mine), "--sync-peer", cls.endpoint(peer), "--sync-key", key]

    @classmethod
    def setUpClass(cls):
        problem = lab.environment_problem()
        if problem:
            raise unittest.SkipTest(problem)
        cls.lab = cls.make_lab()
        cls.lab.build()
        try:
            fw_a = cls.lab.fw_ns
            fw_b = cls.lab._new_ns("fwb")
            cls.lab._veth(fw_a, "sync0", fw_b, "sync0")
            cls.lab._addr(fw_a, "sync0", f"{cls.SYNC_A}/{cls.PREFIX}")
            cls.lab._addr(fw_b, "sync0", f"{cls.SYNC_B}/{cls.PREFIX}")
            cls.key = cls.write_key("sync.key", os.urandom(32))
            cls.lab.daemon.extra = cls.sync_args(cls.SYNC_A, cls.SYNC_B, cls.key)
            cls.lab.start_daemon()
            cls.node_b = lab.Daemon(fw_b, cls.lab.rules, os.path.join(cls.lab.workdir, "b.sock"),
                                    os.path.join(cls.lab.workdir, "b.log"),
                                    extra=cls.sync_args(cls.SYNC_B, cls.SYNC_A, cls.key))
            cls.node_b.start()
        except BaseException:
            cls.lab.destroy()
            raise

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "node_b", None) is not None and cls.node_b.running():
            cls.node_b.stop()
        if cls.lab is not None:
            cls.lab.destroy()

    def setUp(self):
        for node in (self.lab.daemon, self.node_b):
            self.assertTrue(node.running(), f"seqwall in {node.ns} died; log:\n{node.log_tail()}")

    # -- helpers --

    def sync_status(self, node):
        cp = node.cli(["sync", "status", "-o", "json"])
        return json.loads(cp.stdout)

    def in_sync(self, node):
        return node.cli(["sync", "status", "--check"], check=False).returncode == 0

    def flow(self, node, sport):
        for entry in node.conntrack():
            if entry["proto"] == "tcp" and entry["orig"].get("sport") == sport:
                return entry
        return None

    def wait_both_in_sync(self):
        for node in (self.lab.daemon, self.node_b):
            self.assertTrue(lab.wait_for(lambda: self.in_sync(node), 20, 0.2),
                            f"{node.ns} not in sync: {self.sync_status(node)}")


class SyncLabMixin(SyncLab):
    # -- tests --

    def test_1_both_nodes_get_in_sync(self):
        self.wait_both_in_sync()
        status = self.sync_status(self.node_b)
        self.assertTrue(status["peer_alive"])
        self.assertEqual(status["peer"], self.endpoint(self.SYNC_A))
        self.assertGreaterEqual(status["bulks_received"], 1)
        stats = self.lab.daemon.stats()
        self.assertIn("sync", stats)
        self.assertTrue(stats["sync"]["in_sync"])

    def test_2_connections_through_a_appear_on_b_and_go_with_their_close(self):
        self.wait_both_in_sync()
        for family in (4, 6):
            with self.subTest(family=family):
                conn = self.lab.connect("client", self.lab.server_addr(family), 8080)
                self.assertTrue(conn.connected, conn.error)
                self.assertEqual(conn.send(b"hello"), b"echo:hello")
                on_a = self.flow(self.lab.daemon, conn.sport)
                self.assertIsNotNone(on_a)
                self.assertEqual(on_a["state"], "ESTABLISHED")
                self.assertTrue(lab.wait_for(lambda: (self.flow(self.node_b, conn.sport) or {}).get("state")
                                             == "ESTABLISHED", 10, 0.2),
                                f"B never showed the connection ESTABLISHED: {self.flow(self.node_b, conn.sport)}")
                on_b = self.flow(self.node_b, conn.sport)
                self.assertEqual(on_b["orig"]["dst"], self.lab.server_addr(family))
                self.assertGreater(on_b["timeout"], 0)
                # A clean close on A: B follows its state.
                conn.close()
                closed = lab.wait_for(lambda: self.flow(self.lab.daemon, conn.sport) is not None
                                      and self.flow(self.lab.daemon, conn.sport)["state"] != "ESTABLISHED", 5, 0.1)
                self.assertTrue(closed)
                state_a = self.flow(self.lab.daemon, conn.sport)["state"]
                self.assertTrue(lab.wait_for(lambda: (self.flow(self.node_b, conn.sport) or {}).get("state")
                                             == state_a, 10, 0.2),
                                f"B did not follow A to {state_a}: {self.flow(self.node_b, conn.sport)}")
                # Deleted on A: gone from B.
                self.lab.daemon.cli(["conntrack", "delete", "-p", "tcp", "--sport", str(conn.sport)])
                self.assertIsNone(self.flow(self.lab.daemon, conn.sport))
                self.assertTrue(lab.wait_for(lambda: self.flow(self.node_b, conn.sport) is None, 10, 0.2),
                                "B kept a connection A deleted")
        status = self.sync_status(self.node_b)
        self.assertEqual(status["refused"], {})
        self.assertGreater(status["entries_applied"], 0)

    def test_2b_a_connection_over_within_the_coalescing_interval_is_not_sent(self):
        """A connection that opens and closes within the 50 ms coalescing interval is never on B
        (docs/sync-protocol.md, Coalescing): A counts it as closed before sent. One opened
        after it that stays open is on B, so its absence is not lag."""
        self.wait_both_in_sync()
        for family in (4, 6):
            with self.subTest(family=family):
                before = self.sync_status(self.lab.daemon)["closed_unsent"]
                # Connect, send, half-close, read to the server's close, close: a few
                # milliseconds in one process in the client's namespace. A try that took longer
                # than half the interval (a busy machine) is not the case tested: tried again.
                for _ in range(5):
                    sport, answer, took = lab.brief_connection(self.lab.ns["client"], self.lab.server_addr(family), 8080)
                    self.assertEqual(answer, "echo:brief")
                    if took < 25:
                        break
                    time.sleep(0.3)  # past the interval: sent or not, the count is read again
                    before = self.sync_status(self.lab.daemon)["closed_unsent"]
                else:
                    self.skipTest("no connection closed within 25 ms in 5 tries: the machine is too busy")
                self.assertTrue(lab.wait_for(lambda: (self.flow(self.lab.daemon, sport) or {}).get("state")
                                             == "TIME_WAIT", 5, 0.05),
                                f"A: {self.flow(self.lab.daemon, sport)}")
                conn = self.lab.connect("client", self.lab.server_addr(family), 8080)
                self.assertTrue(conn.connected, conn.error)
                self.assertTrue(lab.wait_for(lambda: self.flow(self.node_b, conn.sport) is not None, 10, 0.1),
                                "the open connection never reached B")
                self.assertIsNone(self.flow(self.node_b, sport),
                                  "B holds a connection that was over before it was sent")
                self.assertEqual(self.sync_status(self.lab.daemon)["closed_unsent"], before + 1)
                conn.close()

    def test_3_a_stranger_and_a_wrong_key_are_refused_and_counted(self):
        self.wait_both_in_sync()
        # Bytes from an address that is not the peer: refused, whatever they hold.
        family = socket.AF_INET6 if ":" in self.SYNC_A else socket.AF_INET
        stranger = f"""
import socket
s = socket.socket({int(family)}, socket.SOCK_DGRAM)
for payload in (b"SQWS" + bytes(60), b"garbage", b"SQWS\\x02" + bytes(50)):
    s.sendto(payload, ("{self.SYNC_A}", {SYNC_PORT}))
"""
        lab.ns_run(self.node_b.ns, [lab.PY, "-c", stranger])
        self.assertTrue(lab.wait_for(lambda: self.sync_status(self.lab.daemon)["refused"].get("unknown-peer", 0) >= 3,
                                     10, 0.2), self.sync_status(self.lab.daemon))
        # B restarted with another key: everything it sends is refused by A, nothing applied.
        applied = self.sync_status(self.lab.daemon)["entries_applied"]
        self.node_b.stop()
        wrong = self.write_key("wrong.key", os.urandom(32))
        self.node_b.extra = self.sync_args(self.SYNC_B, self.SYNC_A, wrong)
        self.node_b.start()
        self.assertTrue(lab.wait_for(lambda: self.sync_status(self.lab.daemon)["refused"].get("authentication", 0) > 0,
                                     10, 0.2), self.sync_status(self.lab.daemon))
        self.assertTrue(lab.wait_for(lambda: self.sync_status(self.node_b)["refused"].get("authentication", 0) > 0,
                                     10, 0.2), self.sync_status(self.node_b))
        self.assertFalse(self.in_sync(self.node_b))
        self.assertEqual(self.sync_status(self.lab.daemon)["entries_applied"], applied)
        # A's packet path is unaffected.
        for fam in (4, 6):
            with self.lab.connect("client", self.lab.server_addr(fam), 8080) as conn:
                self.assertTrue(conn.connected, conn.error)
                self.assertEqual(conn.send(b"still"), b"echo:still")
        self.assertIn("refused", self.lab.daemon.log_text())
        # And back with the right key: in sync again.
        self.node_b.stop()
        self.node_b.extra = self.sync_args(self.SYNC_B, self.SYNC_A, self.key)
        self.node_b.start()
        self.wait_both_in_sync()

    def test_4_a_bad_key_file_stops_the_start(self):
        short = self.write_key("short.key", os.urandom(16))
        exposed = self.write_key("exposed.key", os.urandom(32))
        os.chmod(exposed, 0o644)
        for key, words in ((short, "16 bytes"), (exposed, "readable"),
                           (os.path.join(self.lab.workdir, "missing.key"), "does not exist")):
            with self.subTest(key=key):
                other = self.endpoint(self.SYNC_B).rsplit(":", 1)[0] + f":{SYNC_PORT + 1}"
                argv = [lab.SEQWALL_BIN, "run", "--rules", self.lab.rules, "--queue", "7",
                        "--control", os.path.join(self.lab.workdir, "x.sock"),
                        "--sync-listen", other, "--sync-peer", self.endpoint(self.SYNC_A), "--sync-key", key]
                cp = lab.ns_run(self.node_b.ns, argv, check=False, timeout=20)
                self.assertEqual(cp.returncode, 1, cp.stderr)
                self.assertIn(words, cp.stderr)

    def test_5_the_sync_address_may_be_configured_after_the_start(self):
        # The unit starts seqwall before the network: its sync address may not exist yet.
        later = "192.0.2.99" if ":" not in self.SYNC_A else "2001:db8:5::99"
        node = lab.Daemon(self.node_b.ns, self.lab.rules, os.path.join(self.lab.workdir, "later.sock"),
                          os.path.join(self.lab.workdir, "later.log"), queues=(7,),
                          extra=self.sync_args(later, self.SYNC_A, self.key))
        node.start()
        try:
            self.assertFalse(self.sync_status(node)["in_sync"])
        finally:
            self.assertEqual(node.stop(), 0, node.log_tail())


class SyncOverIPv4Test(SyncLabMixin, lab.LabTestCase):
    pass


class IPv6SyncLink:
    """The sync link over IPv6 (SyncLab's default is IPv4)."""
    SYNC_A = "2001:db8:5::1"
    SYNC_B = "2001:db8:5::2"
    PREFIX = 64


class SyncOverIPv6Test(IPv6SyncLink, SyncLabMixin, lab.LabTestCase):
    pass


if __name__ == "__main__":
    unittest.main()
