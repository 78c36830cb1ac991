"""seqwall's limits on new connections, and live reload, with real packets (gateway mode).

What test_firewall.py already covers is not repeated here (a blocked SYN is dropped silently
with reason `rule`; a rejected one is answered with a RST). This file adds:

- SynFloodTest: a SYN flood from random spoofed sources (hping3 --rand-source, bounded by -c
  and by `timeout`) at an open port while a legitimate client opens 200 connections. At least
  99% of them must succeed, the half-open count (polled from `seqwall stats -o json` during
  the flood) never exceeds `limit half-open`, and seqwall's peak memory (VmHWM) stays under
  MEMORY_CEILING_KIB.

  Where the replies to spoofed sources go: the server answers each spoofed SYN with a SYN-ACK
  to the spoofed address, through its default route to the firewall namespace. That namespace
  has no default route and no route to anything but the lab's two /24s (asserted), so it
  drops every such reply at its routing decision (counted in its IpExt InNoRoutes, asserted
  to grow), before the FORWARD hook: no packet to a spoofed address is forwarded, and none
  leaves the lab's namespaces (which are joined to nothing else anyway: veth pairs between
  the lab's own namespaces only). seqwall never sees these replies, so every spoofed entry
  stays unreplied, which is what a real spoofed flood looks like.

- SynRateTest: one source (198.51.100.10) over `limit syn-rate` is limited (drops with
  reason syn-rate, logged with its address) while a second source (198.51.100.11, a second
  documentation address on the client) connects every time; and `reject` answers at once
  while `block` leaves the client waiting (timing, which test_firewall.py does not assert).

- ReloadTest: a reload that adds a rule opens its port without dropping a live connection
  (data before and after), and a reload of a broken file changes nothing and makes
  `seqwall reload` exit 1 with file:line:column.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OPEN_PORT = 8080
SECOND_PORT = 8081
REJECT_PORT = 8082

# The flood: 40,000 SYNs at a nominal 10,000 a second (hping3 -i u100), so about 4 s at full
# speed and never more than FLOOD_SECONDS. `limit half-open 2048` with seqwall's 100 ms
# minimum eviction age rotates up to 20,480 unreplied SYNs a second, above the flood's rate.
FLOOD_COUNT = 40000
FLOOD_INTERVAL = "u100"
FLOOD_SECONDS = 40
HALF_OPEN_LIMIT = 2048
LEGIT_CONNECTIONS = 200
# seqwall's peak resident memory during the flood must stay under this. A debug build idles
# at about 15-25 MiB; the flood's rules size the table at 65,536 connections and the source
# table at 16,384 entries (512 KiB); 128 MiB leaves room for the runtime, not for growth.
MEMORY_CEILING_KIB = 128 * 1024


def proc_status(pid, field):
    """A /proc/PID/status field in KiB (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/status has no {field}")


def netstat_counter(ns, group, name):
    """A counter of /proc/net/netstat (e.g. IpExt InNoRoutes) in namespace ns."""
    return lab.proc_net_counter(ns, "/proc/net/netstat", group, name)


# The legitimate client: opens connections one after the other, each must carry data both
# ways; prints one JSON object with the outcome of each.
LEGIT_CLIENT = r"""
import json, socket, sys, time
addr, port, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
source = sys.argv[5] if len(sys.argv) > 5 else None
results = []
for i in range(count):
    t0 = time.monotonic()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if source:
            s.bind((source, 0))
        s.connect((addr, port))
        connected = time.monotonic() - t0
        s.sendall(b"legit %d" % i)
        want = b"echo:legit %d" % i
        got = b""
        while len(got) < len(want):
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        ok = got == want
        results.append({"ok": ok, "connect": connected, "error": None if ok else repr(got)})
    except OSError as e:
        results.append({"ok": False, "connect": time.monotonic() - t0, "error": type(e).__name__})
    finally:
        s.close()
print(json.dumps(results), flush=True)
"""


def run_legit_client(ns, addr, port, count, timeout=8.0, source=None, wait=600):
    argv = [lab.PY, "-c", LEGIT_CLIENT, addr, str(port), str(count), str(timeout)]
    if source:
        argv.append(source)
    cp = lab.ns_run(ns, argv, timeout=wait)
    return json.loads(cp.stdout.strip().splitlines()[-1])


def hping3_problem():
    return None if shutil.which("hping3") else "hping3 is not installed (make deps)"


class RulesInWorkdir:
    """Writes the class's rule text to a file of its own before the lab starts (ReloadTest
    rewrites it), removed with the lab's other files."""

    RULE_TEXT = None

    @classmethod
    def setUpClass(cls):
        directory = tempfile.mkdtemp(prefix="seqwall-limits-rules-")
        lab.REGISTRY.install()
        lab.REGISTRY.add_tmp(directory)
        cls.RULES = os.path.join(directory, "limits.rules")
        with open(cls.RULES, "w") as f:
            # Strict from the start: no grace period picks up segments of unknown connections.
            f.write(cls.RULE_TEXT + "set pickup grace 0\n")
        super().setUpClass()


# ---------------------------------------------------------------------------------------------

class SynFloodTest(RulesInWorkdir, lab.LabTestCase):
    MODE = lab.GATEWAY
    SERVER_PORTS = (OPEN_PORT,)
    CLIENT_PORTS = ()
    RULE_TEXT = f"""# test_limits.py, SynFloodTest: port {OPEN_PORT} open inbound, under a spoofed flood.
inside 203.0.113.0/24, 2001:db8:2::/64
default in block
default out pass
pass in tcp to port {OPEN_PORT}
limit states 65536
limit half-open {HALF_OPEN_LIMIT}
limit half-open 64 per-source
"""

    def test_1_legitimate_client_gets_through_a_spoofed_flood(self):
        problem = hping3_problem()
        if problem:
            self.skipTest(problem)
        lb, d = self.lab, self.lab.daemon
        fw, client = lb.ns["fw"], lb.ns["client"]
        # Spoofed sources arrive on out0, where no route leads back to them: reverse-path
        # filtering would drop them before seqwall saw them. Off, so the flood reaches it.
        for conf in ("all", "default", "out0"):
            lab.ns_run(fw, ["sysctl", "-qw", f"net.ipv4.conf.{conf}.rp_filter=0"])
        routes = lab.ns_run(fw, ["ip", "-4", "route", "show"]).stdout
        self.assertNotIn("default", routes, f"the firewall namespace has a default route: {routes}")
        self.assertEqual(sorted(line.split()[0] for line in routes.splitlines()),
                         ["198.51.100.0/24", "203.0.113.0/24"], routes)
        links = lab.ns_run(fw, ["ip", "-o", "link", "show"]).stdout
        self.assertEqual(sorted(line.split(":")[1].strip().split("@")[0] for line in links.splitlines()),
                         ["in0", "lo", "out0"], links)

        before = d.stats()
        no_routes_before = netstat_counter(fw, "IpExt", "InNoRoutes")
        pid = d.proc.pid
        rss_before = proc_status(pid, "VmRSS")

        samples = []
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                try:
                    stats = d.stats()
                    samples.append((stats["connections"]["half_open"], stats["connections"]["current"],
                                    proc_status(pid, "VmRSS")))
                except Exception as e:  # noqa: BLE001 - a failed poll is recorded, not fatal
                    samples.append(("error", repr(e), 0))
                stop.wait(0.1)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        flood_log = os.path.join(lb.workdir, "hping3.log")
        flood = lab.spawn(client, ["timeout", str(FLOOD_SECONDS), "hping3", "-S", "--rand-source",
                                   "-p", str(OPEN_PORT), "-i", FLOOD_INTERVAL, "-c", str(FLOOD_COUNT),
                                   "-q", lb.server4], flood_log, stdout=False)
        started = time.monotonic()
        try:
            # Let the flood fill the half-open limit first.
            full = lab.wait_for(lambda: d.stats()["connections"]["half_open"] >= HALF_OPEN_LIMIT, 15, 0.1)
            self.assertTrue(full, f"the flood never filled the half-open limit: {samples[-5:]}")
            legit_started = time.monotonic() - started
            results = run_legit_client(client, lb.server4, OPEN_PORT, LEGIT_CONNECTIONS)
            legit_done = time.monotonic() - started
            flood_running = flood.poll() is None
            flood.wait(timeout=FLOOD_SECONDS + 10)
            flood_seconds = time.monotonic() - started
        finally:
            lab.REGISTRY.kill_proc(flood)
            time.sleep(0.3)
            stop.set()
            poller.join(5)
        after = d.stats()
        hwm = proc_status(pid, "VmHWM")
        no_routes = netstat_counter(fw, "IpExt", "InNoRoutes") - no_routes_before

        succeeded = sum(1 for r in results if r["ok"])
        slow = sum(1 for r in results if r["ok"] and r["connect"] > 0.9)
        half_open = [s[0] for s in samples if s[0] != "error"]
        errors = [s for s in samples if s[0] == "error"]
        seen = after["packets"]["seen"] - before["packets"]["seen"]
        evicted = after["connections"]["half_open_evictions"] - before["connections"]["half_open_evictions"]
        figures = {
            "legit_succeeded": succeeded, "legit_total": len(results),
            "legit_needing_a_retransmitted_syn": slow,
            "legit_window_s": [round(legit_started, 2), round(legit_done, 2)],
            "peak_half_open": max(half_open, default=None), "half_open_limit": HALF_OPEN_LIMIT,
            "peak_rss_kib_polled": max((s[2] for s in samples), default=None),
            "vm_hwm_kib": hwm, "rss_before_kib": rss_before,
            "packets_seen": seen, "flood_seconds": round(flood_seconds, 2),
            "syn_rate_pps": round(seen / flood_seconds), "half_open_evictions": evicted,
            "drops": {k: v - before["drops"].get(k, 0) for k, v in after["drops"].items()
                      if v != before["drops"].get(k, 0)},
            "fw_in_no_routes": no_routes, "poll_errors": len(errors),
        }
        sys.stderr.write(f"\nflood figures: {json.dumps(figures)}\n")

        self.assertTrue(flood_running, f"the flood ended before the legitimate client did: {figures}")
        self.assertEqual(errors, [], f"`seqwall stats` failed during the flood: {errors[:3]}")
        self.assertGreaterEqual(succeeded, 0.99 * LEGIT_CONNECTIONS,
                                f"legitimate connections failed: "
                                f"{[r for r in results if not r['ok']][:5]}; {figures}")
        self.assertGreater(len(half_open), 10, f"too few samples: {figures}")
        self.assertLessEqual(max(half_open), HALF_OPEN_LIMIT, figures)
        self.assertEqual(after["connections"]["half_open_limit"], HALF_OPEN_LIMIT)
        self.assertGreater(evicted, 0, f"the flood never made seqwall evict: {figures}")
        self.assertGreater(seen, FLOOD_COUNT // 2, f"seqwall saw too little of the flood: {figures}")
        self.assertLess(hwm, MEMORY_CEILING_KIB, f"seqwall's peak memory: {figures}")
        self.assertGreater(no_routes, 0, f"no reply to a spoofed source was dropped for lack of a "
                                         f"route in the firewall namespace: {figures}")
        self.assertTrue(d.running())


# ---------------------------------------------------------------------------------------------

class SynRateTest(RulesInWorkdir, lab.LabTestCase):
    MODE = lab.GATEWAY
    SERVER_PORTS = (OPEN_PORT, SECOND_PORT, REJECT_PORT)
    CLIENT_PORTS = ()
    RULE_TEXT = f"""# test_limits.py, SynRateTest: at most 5 new connections a second per source.
inside 203.0.113.0/24, 2001:db8:2::/64
default in block
default out pass
pass in tcp to port {OPEN_PORT}
reject in tcp to port {REJECT_PORT}
limit syn-rate 5/s burst 10 per-source
"""
    SECOND_SOURCE = "198.51.100.11"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        lab.run(["ip", "-n", cls.lab.ns["client"], "addr", "add", f"{cls.SECOND_SOURCE}/24", "dev", "eth0"])

    def test_1_one_source_over_its_rate_is_limited_another_is_not(self):
        problem = hping3_problem()
        if problem:
            self.skipTest(problem)
        lb, d = self.lab, self.lab.daemon
        client = lb.ns["client"]
        before = d.stats()
        log_start = d.log_size()
        # 300 SYNs from 198.51.100.10 at 100 a second (3 s), new source ports each.
        flood = lab.spawn(client, ["timeout", "20", "hping3", "-S", "-p", str(OPEN_PORT), "-i", "u10000",
                                   "-c", "300", "-q", lb.server4],
                          os.path.join(lb.workdir, "hping3-rate.log"), stdout=False)
        try:
            time.sleep(0.5)
            # Meanwhile 198.51.100.11 opens 8 connections at 2.5 a second: under its rate.
            results = []
            for _ in range(8):
                results += run_legit_client(client, lb.server4, OPEN_PORT, 1, timeout=5.0,
                                            source=self.SECOND_SOURCE)
                time.sleep(0.4)
            flood.wait(timeout=25)
        finally:
            lab.REGISTRY.kill_proc(flood)
        time.sleep(0.5)
        after = d.stats()
        limited = lab.drops(after, "syn-rate") - lab.drops(before, "syn-rate")
        self.assertEqual([r["ok"] for r in results], [True] * 8,
                         f"the second source was limited: {results}")
        # 300 SYNs in about 3 s: at most 10 (burst) + 5/s * 3.5 s pass.
        self.assertGreaterEqual(limited, 300 - 10 - 18, f"{before['drops']} -> {after['drops']}")
        log = d.log_text(since=log_start)
        logged = re.findall(r"drop reason=syn-rate proto=tcp src=(\S+) ", log)
        self.assertTrue(logged, f"no syn-rate drop logged:\n{log[-2000:]}")
        self.assertEqual(set(logged), {"198.51.100.10"}, "syn-rate drops of the wrong source")
        accepted_from_second = [e for e in d.conntrack()
                                if lab.addr_eq(e["orig"]["src"], self.SECOND_SOURCE)]
        self.assertEqual(len(accepted_from_second), 8, accepted_from_second)

    def test_2_reject_answers_at_once_block_times_out(self):
        lb = self.lab
        time.sleep(2.5)  # the first test's source has its burst back
        t0 = time.monotonic()
        with lb.connect("client", lb.server4, REJECT_PORT, timeout=3.0) as c:
            rejected_after = time.monotonic() - t0
        self.assertFalse(c.connected)
        self.assertIn("ConnectionRefused", str(c.error))
        # An answer from seqwall, not a timeout: well under the 1 s after which
        # the client would retransmit its SYN.
        self.assertLess(rejected_after, 1.0, f"refused only after {rejected_after:.2f}s")
        t0 = time.monotonic()
        with lb.connect("client", lb.server4, SECOND_PORT, timeout=2.0) as c:
            blocked_after = time.monotonic() - t0
        self.assertFalse(c.connected)
        self.assertEqual(c.error, "timeout", f"a blocked SYN was answered: {c.error}")
        self.assertGreaterEqual(blocked_after, 2.0)


# ---------------------------------------------------------------------------------------------

RELOAD_RULES = f"""# test_limits.py, ReloadTest.
inside 203.0.113.0/24, 2001:db8:2::/64
default in block
default out pass
pass in tcp to port {OPEN_PORT}
"""


class ReloadTest(RulesInWorkdir, lab.LabTestCase):
    MODE = lab.GATEWAY
    SERVER_PORTS = (OPEN_PORT, SECOND_PORT)
    CLIENT_PORTS = ()
    RULE_TEXT = RELOAD_RULES

    def write_rules(self, text):
        with open(self.RULES, "w") as f:
            f.write(text)

    def tearDown(self):
        self.write_rules(RELOAD_RULES)
        self.lab.daemon.cli(["reload"], check=False)

    def assert_port(self, port, open_, family=4):
        with self.lab.connect("client", self.lab.server_addr(family), port, timeout=2.0) as c:
            if open_:
                self.assertTrue(c.connected, f"port {port} is closed: {c.error}")
                self.assertEqual(c.send(b"probe"), b"echo:probe")
                c.close()
            else:
                self.assertFalse(c.connected, f"port {port} is open")
                self.assertEqual(c.error, "timeout")

    def test_1_reload_opens_a_port_and_keeps_live_connections(self):
        d = self.lab.daemon
        with self.lab.connect("client", self.lab.server4, OPEN_PORT) as live, \
                self.lab.connect("client", self.lab.server6, OPEN_PORT) as live6:
            self.assertTrue(live.connected and live6.connected)
            self.assertEqual(live.send(b"before"), b"echo:before")
            self.assertEqual(live6.send(b"before"), b"echo:before")
            self.assert_port(SECOND_PORT, False)
            count = d.stats()["connections"]["current"]

            self.write_rules(RELOAD_RULES + f"pass in tcp to port {SECOND_PORT}\n")
            cp = d.cli(["reload"], check=False)
            self.assertEqual(cp.returncode, 0, cp.stderr)

            self.assertEqual(live.send(b"after"), b"echo:after")
            self.assertEqual(live6.send(b"after"), b"echo:after")
            self.assertGreaterEqual(d.stats()["connections"]["current"], count)
            self.assert_port(SECOND_PORT, True)
            self.assert_port(SECOND_PORT, True, family=6)
            self.assertEqual(live.close(), b"")
            self.assertEqual(live6.close(), b"")

    def test_2_broken_reload_changes_nothing(self):
        d = self.lab.daemon
        self.write_rules(RELOAD_RULES + f"pass in tcp to port {SECOND_PORT}\n")
        self.assertEqual(d.cli(["reload"], check=False).returncode, 0)
        with self.lab.connect("client", self.lab.server4, OPEN_PORT) as live:
            self.assertTrue(live.connected)
            self.assertEqual(live.send(b"before"), b"echo:before")
            stats_before = d.stats()
            # Without the rule for SECOND_PORT, and with an error on line 7: nothing may change.
            self.write_rules(RELOAD_RULES + "# closes 8081 again, then a mistake:\n"
                             "pass in tcp to port 70000\n")
            cp = d.cli(["reload"], check=False)
            self.assertEqual(cp.returncode, 1, f"reload of a broken file: {cp}")
            self.assertRegex(cp.stderr, re.escape(self.RULES) + r":7:\d+: .*70000",
                             f"no file:line:column in {cp.stderr!r}")
            self.assertEqual(len(cp.stderr.strip().splitlines()), 1, cp.stderr)
            self.assertEqual(live.send(b"after"), b"echo:after")
            self.assert_port(SECOND_PORT, True)
            self.assertGreaterEqual(d.stats()["connections"]["created"],
                                    stats_before["connections"]["created"])
            self.assertEqual(live.close(), b"")
        self.assertTrue(d.running())


if __name__ == "__main__":
    unittest.main()
