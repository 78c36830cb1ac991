"""Expiry in the daemon: connections leave the table on their deadline, a burst of them at
once, each with a DESTROY for `conntrack watch`.

Gateway mode (the lab of lab.py), rules Tests/Integration/rules/expiry.rules: port 8082 open
inbound, SYN_SENT 3 s. The SYNs go to an inside address nobody holds (203.0.113.99), so they
are forwarded but never answered and every entry stays in SYN_SENT until it expires.
"""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NOBODY4 = "203.0.113.99"
PORT = 8082
SENTINEL_PORT = 8080
SYN_SENT_SECONDS = 3.0
BURST = 600
SPORT_BASE = 20000


class ExpiryTest(lab.LabTestCase):
    MODE = lab.GATEWAY
    RULES = os.path.join(HERE, "rules", "expiry.rules")
    SERVER_PORTS = (SENTINEL_PORT,)

    def ct(self, args):
        cp = self.lab.daemon.cli(["conntrack"] + list(args), check=False)
        self.assertEqual(cp.returncode, 0, f"conntrack {args}: {cp.stderr.strip()}")
        return cp.stdout

    def start_watcher(self):
        """`conntrack watch -o json`; returns the (arrival time, event) list it fills."""
        d = self.lab.daemon
        log = os.path.join(self.lab.workdir, "watch-expiry.stderr")
        proc = lab.spawn(d.ns, [lab.SEQWALL_BIN, "conntrack", "watch", "-o", "json",
                                "--control", d.control], log)
        self.addCleanup(lambda: lab.REGISTRY.kill_proc(proc, grace=1.0))
        events = []

        def reader():
            for raw in iter(proc.stdout.readline, b""):
                events.append((time.monotonic(), json.loads(raw)))
        threading.Thread(target=reader, daemon=True).start()
        return events

    @staticmethod
    def of(events, dport, kind):
        """{source port: arrival time} of the events of one kind for a destination port."""
        return {e["orig"]["sport"]: t for t, e in list(events)
                if e.get("event") == kind and e.get("orig", {}).get("dport") == dport}

    def test_burst_of_unanswered_syns_goes_on_its_deadline(self):
        """BURST unanswered SYNs (hping3, bounded) make BURST SYN_SENT entries; each leaves
        the table SYN_SENT's 3 s after its SYN, not before, all in one burst that the worker
        drains in slices; watch shows one NEW and one DESTROY for each and loses nothing, and
        the destroyed counter moves by exactly BURST."""
        events = self.start_watcher()
        # A sentinel connection: once its NEW shows, the watcher is subscribed. Its DESTROY
        # (TIME_WAIT, 2 s) comes before the counters are read.
        c = self.lab.connect("client", self.lab.server_addr(4), SENTINEL_PORT)
        self.assertTrue(c.connected, c.error)
        self.assertEqual(c.send(b"hello"), b"echo:hello")
        self.assertEqual(c.close(), b"")
        sentinel_gone = lab.wait_for(lambda: c.sport in self.of(events, SENTINEL_PORT, "destroy"),
                                     15.0, 0.1)
        self.assertTrue(sentinel_gone, f"no NEW/DESTROY for the sentinel: {events}")
        before = self.lab.daemon.stats()

        cp = lab.ns_run(self.lab.ns["client"],
                        ["hping3", "-q", "-S", "-p", str(PORT), "-s", str(SPORT_BASE),
                         "-c", str(BURST), "-i", "u2000", NOBODY4], check=False, timeout=60)
        self.assertIn(cp.returncode, (0, 1), f"hping3: {cp.stderr}")  # 1: no replies
        sports = set(range(SPORT_BASE, SPORT_BASE + BURST))

        done = lab.wait_for(lambda: set(self.of(events, PORT, "destroy")) >= sports, 30.0, 0.2)
        new, destroy = self.of(events, PORT, "new"), self.of(events, PORT, "destroy")
        self.assertTrue(done, f"{len(destroy)} of {BURST} DESTROY events within 30 s; "
                              f"table: {self.ct(['list', '--dport', str(PORT)])}")
        self.assertEqual(set(new), sports, "a NEW event for each SYN")
        self.assertEqual(set(destroy), sports)
        lost = [e for _, e in events if "lost" in e]
        self.assertEqual(lost, [], "the watcher lost events")
        for sport in sorted(sports):
            lived = destroy[sport] - new[sport]
            # Not before the deadline (the NEW may be read up to a poll interval late), and
            # soon after it: a one-second tick plus the worker's pace, with room for a loaded
            # machine.
            self.assertGreaterEqual(lived, SYN_SENT_SECONDS - 0.5, f"sport {sport}")
            self.assertLess(lived, SYN_SENT_SECONDS + 5.0, f"sport {sport}")

        self.assertEqual(self.ct(["count", "--dport", str(PORT)]).strip(), "0")
        after = self.lab.daemon.stats()
        created = after["connections"]["created"] - before["connections"]["created"]
        destroyed = after["connections"]["destroyed"] - before["connections"]["destroyed"]
        self.assertEqual(created, BURST)
        self.assertEqual(destroyed, BURST)
        self.assertEqual(after["connections"]["half_open"], 0)
