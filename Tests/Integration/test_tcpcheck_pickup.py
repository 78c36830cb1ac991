"""`set pickup on` with real traffic: seqwall starts in the middle of a bulk transfer.

Gateway lab. An iperf3 transfer in both directions, with window scaling (Linux's default) and
large buffers, is started while seqwall is not running (the shipped iptables file has
--queue-bypass, so packets pass); seqwall then starts with `set pickup on` and must take over
both iperf3 connections (control and data) mid-stream, without their SYNs, and drop nothing
while the transfer goes on: a picked-up connection's window scale is unknown, and the core
assumes the largest (TCPWindow, "Picked-up connections"). The control case runs the same with
`set pickup off`: then the connections are `no-connection` and none is created, which shows
the first case really went through pickup.
"""

import json
import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402

IPERF_PORT = 5201
SECONDS = 12             # each transfer is bounded in time
RULES = """\
# seqwall integration test: pickup of connections first seen mid-stream.
inside 203.0.113.0/24, 2001:db8:2::/64
default in block
default out pass
pass in tcp to port {port}
set pickup {pickup}
set pickup grace 0
"""
WINDOW_DROPS = ("seq-above-window", "ack-above-sent", "rst-out-of-window",
                "bad-transition", "time-wait-rst", "no-connection")


@unittest.skipIf(shutil.which("iperf3") is None, "iperf3 not installed (make deps)")
class PickupTests(lab.LabTestCase):
    MODE = lab.GATEWAY
    SERVER_PORTS = ()
    CLIENT_PORTS = ()

    @classmethod
    def setUpClass(cls):
        cls.rules_dir = lab.rules_dir("seqwall-pickup-")
        cls.RULES = os.path.join(cls.rules_dir, "pickup.rules")
        cls.write_rules(True)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls.rules_dir, ignore_errors=True)

    @classmethod
    def write_rules(cls, pickup):
        with open(cls.RULES, "w") as f:
            f.write(RULES.format(port=IPERF_PORT, pickup="on" if pickup else "off"))

    def tearDown(self):
        # Back to pickup on for the next test, daemon running.
        self.write_rules(True)
        if not self.lab.daemon.running():
            self.lab.start_daemon()
        else:
            self.lab.daemon.cli(["reload"])

    # -- helpers --

    def iperf_server(self):
        log = os.path.join(self.lab.workdir, "iperf3-server.log")
        proc = lab.spawn(self.lab.ns["server"], ["iperf3", "-s", "-1", "-p", str(IPERF_PORT)], log,
                         stdout=False)
        self.addCleanup(lab.REGISTRY.kill_proc, proc, 1.0)
        # Listening before the client starts.
        listening = ["ss", "-Htln", f"sport = :{IPERF_PORT}"]
        ready = lab.wait_for(lambda: lab.ns_run(self.lab.ns["server"], listening,
                                                check=False).stdout.strip() != "", 10, 0.2)
        self.assertTrue(ready, "iperf3 server did not start listening")
        return proc

    def iperf_client(self, family):
        """Starts the bidirectional transfer; returns the process (JSON on stdout)."""
        server = self.lab.server_addr(family)
        argv = ["timeout", str(SECONDS + 40), "iperf3", "-c", server, "-p", str(IPERF_PORT),
                "-t", str(SECONDS), "--bidir", "-w", "2M", "-J"]
        log = os.path.join(self.lab.workdir, "iperf3-client.log")
        proc = lab.spawn(self.lab.ns["client"], argv, log)
        self.addCleanup(lab.REGISTRY.kill_proc, proc, 1.0)
        return proc

    def entries_to_iperf(self):
        # A connection is picked up by whichever side the tracker sees first: the server's
        # data may make it the original direction.
        return [e for e in self.lab.daemon.conntrack()
                if IPERF_PORT in (e.get("orig", {}).get("dport"), e.get("orig", {}).get("sport"))]

    def start_mid_transfer(self, family, pickup):
        """Stops seqwall, starts the transfer without it, and starts seqwall again after the
        connections are open and data flows. Returns (client process, stats right after the
        start)."""
        self.write_rules(pickup)
        self.lab.daemon.stop()
        self.iperf_server()
        client = self.iperf_client(family)
        time.sleep(2.5)
        self.assertIsNone(client.poll(), "iperf3 ended before seqwall started")
        self.lab.start_daemon()
        return client, self.lab.daemon.stats()

    # -- tests --

    def pickup_carries_the_transfer(self, family):
        client, _ = self.start_mid_transfer(family, pickup=True)
        # While it runs, both connections are in the table: created by pickup, as their SYNs
        # went by before seqwall started.
        self.assertTrue(lab.wait_for(lambda: len(self.entries_to_iperf()) >= 2, 10, 0.3),
                        f"picked-up connections not in the table: {self.lab.daemon.conntrack()}")
        try:
            out, _ = client.communicate(timeout=SECONDS + 60)
        except Exception:
            client.kill()
            raise
        self.assertEqual(client.returncode, 0, f"iperf3 failed: {out[-2000:]!r}")
        result = json.loads(out)
        end = result["end"]
        sent = end["sum_sent"]["bytes"]
        received = end.get("sum_sent_bidir_reverse", {}).get("bytes", 0)
        self.assertGreater(sent, 1_000_000, f"too little data client -> server: {end}")
        self.assertGreater(received, 1_000_000, f"too little data server -> client: {end}")
        # seqwall was started afresh in the middle of the transfer: its counters cover exactly
        # the part it saw.
        stats = self.lab.daemon.stats()
        self.assertGreater(stats["packets"]["seen"], 1000, "seqwall saw too little of the transfer")
        for reason in WINDOW_DROPS:
            self.assertEqual(lab.drops(stats, reason), 0, f"{reason} drops on a picked-up transfer: {stats}")
        # The control connection and one data connection each way, all picked up.
        self.assertGreaterEqual(stats["connections"]["created"], 3, f"{stats}")

    def test_1_pickup_mid_transfer_ipv4(self):
        self.pickup_carries_the_transfer(4)

    def test_2_pickup_mid_transfer_ipv6(self):
        self.pickup_carries_the_transfer(6)

    def test_3_without_pickup_the_transfer_is_cut(self):
        client, start = self.start_mid_transfer(4, pickup=False)
        self.assertTrue(lab.wait_for(
            lambda: lab.drops(self.lab.daemon.stats(), "no-connection") - lab.drops(start, "no-connection") > 10,
            10, 0.3), "segments of the unknown connections were not dropped as no-connection")
        self.assertEqual(self.entries_to_iperf(), [])
        client.kill()
        client.wait(timeout=10)


if __name__ == "__main__":
    unittest.main()
