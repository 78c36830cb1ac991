"""Floods and pressure in gateway mode, bounded in packets and in seconds.

The spoofed SYN flood is test_limits.py's SynFloodTest; this file adds:

- AckFloodTest: ACKs from random spoofed sources for connections that do not exist (hping3 -A
  --rand-source, at most ACK_FLOOD_COUNT packets and ACK_FLOOD_SECONDS). Every one must be
  dropped as `no-connection` (none reaches the server), the table must not grow, seqwall's peak
  memory (VmHWM) must stay under ACK_FLOOD_MEMORY_CEILING_KIB, a legitimate client must open
  and use connections through it all, and the kernel queue's own counters (queue_dropped,
  user_dropped from /proc/net/netfilter/nfnetlink_queue, shown per queue by `seqwall stats`)
  are reported.

- ConnectionFloodTest: real connections (full handshakes) opened as fast as the client can,
  CONNECTION_FLOOD_CONCURRENCY at a time, into a table of `limit states 256`, while
  KEEPERS established connections already hold part of it. The table never holds more than
  256, the newcomers that do not fit are dropped (`table-full`, or an early drop of a
  not-yet-assured entry), memory stays under CONNECTION_FLOOD_MEMORY_CEILING_KIB, and every
  keeper stays ESTABLISHED and carries data before and after (assured connections are never
  evicted for a newcomer, as in the kernel's early_drop).

Figures (rates, memory, drops, kernel queue counters) are printed on stderr as JSON lines.
"""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402
from test_limits import RulesInWorkdir, hping3_problem, proc_status, run_legit_client  # noqa: E402

OPEN_PORT = 8080

# 40,000 ACKs at a nominal 20,000 a second (hping3 -i u50): 2 s at full speed (hping3 reaches
# 1,500-4,000 a second on a loaded 2-core machine: 10-30 s), never more
# than ACK_FLOOD_SECONDS.
ACK_FLOOD_COUNT = 40000
ACK_FLOOD_INTERVAL = "u50"
ACK_FLOOD_SECONDS = 60
ACK_FLOOD_LEGIT = 100
# A debug build idles at 15-25 MiB; `limit states 65536` reserves a table whose untouched pages
# cost nothing, and a packet of no connection allocates nothing. 96 MiB is room for the Swift
# runtime and the control plane, not for growth per packet.
ACK_FLOOD_MEMORY_CEILING_KIB = 96 * 1024

TABLE_LIMIT = 256
KEEPERS = 10
CONNECTION_FLOOD_ATTEMPTS = 1500
CONNECTION_FLOOD_CONCURRENCY = 200
CONNECTION_FLOOD_SECONDS = 30
# A 256-entry table is a few hundred KiB: the ceiling is the idle daemon plus the runtime.
CONNECTION_FLOOD_MEMORY_CEILING_KIB = 64 * 1024

# Opens up to ATTEMPTS connections, CONCURRENCY in flight, each with a 2 s connect timeout,
# within SECONDS; holds the ones that connect until the end, then HOLD seconds more; prints
# {"connected", "failed", "attempts", "seconds"}.
FLOOD_CLIENT = r"""
import json, selectors, socket, sys, time, errno
addr, port, attempts, concurrency, seconds, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
sel = selectors.DefaultSelector()
started = time.monotonic()
made = connected = failed = 0
pending = {}
held = []
while time.monotonic() - started < seconds and (made < attempts or pending):
    while made < attempts and len(pending) < concurrency:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((addr, port))
        pending[s] = time.monotonic()
        sel.register(s, selectors.EVENT_WRITE)
        made += 1
    for key, _ in sel.select(0.05):
        s = key.fileobj
        sel.unregister(s)
        del pending[s]
        if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            connected += 1
            held.append(s)
        else:
            failed += 1
            s.close()
    now = time.monotonic()
    for s, t in list(pending.items()):
        if now - t > 2.0:
            sel.unregister(s)
            del pending[s]
            failed += 1
            s.close()
elapsed = time.monotonic() - started
for s in pending:
    s.close()
print(json.dumps({"connected": connected, "failed": failed + len(pending), "attempts": made,
                  "seconds": round(elapsed, 2)}), flush=True)
time.sleep(hold)
for s in held:
    s.close()
"""


class StatsPoller:
    """Samples `seqwall stats` and the daemon's RSS every 0.1 s in a thread."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.samples = []
        self.errors = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()

    def poll(self):
        while not self.stop_event.is_set():
            try:
                stats = self.daemon.stats()
                self.samples.append({"current": stats["connections"]["current"],
                                     "half_open": stats["connections"]["half_open"],
                                     "rss": proc_status(self.daemon.proc.pid, "VmRSS")})
            except Exception as e:  # noqa: BLE001 - recorded; the test asserts there were none
                self.errors.append(repr(e))
            self.stop_event.wait(0.1)

    def stop(self):
        self.stop_event.set()
        self.thread.join(10)


def deltas(before, after):
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def queue_figures(before, after):
    """The kernel queue's drop counters over the test (all shown, zeros too), and its length."""
    return {"queue_dropped": after["queue_dropped"] - before["queue_dropped"],
            "user_dropped": after["user_dropped"] - before["user_dropped"],
            "enobufs": after["enobufs"] - before["enobufs"], "queue_total_after": after["queue_total"]}


def kernel_queue(stats):
    """Queue 0's kernel counters as `seqwall stats -o json` shows them."""
    queue = next(q for q in stats["queues"] if q["queue"] == 0)
    kernel = queue.get("kernel")
    if kernel is None:
        raise AssertionError(f"seqwall stats shows no kernel counters for queue 0: {queue}")
    return dict(kernel, enobufs=queue["enobufs"])


def flood_rules(test, states):
    return f"""# test_floods.py, {test}: one open port inbound, a table of {states}.
inside 203.0.113.0/24, 2001:db8:2::/64
default in block
default out pass
pass in tcp to port {OPEN_PORT}
limit states {states}
"""


class AckFloodTest(RulesInWorkdir, lab.LabTestCase):
    MODE = lab.GATEWAY
    SERVER_PORTS = (OPEN_PORT,)
    RULE_TEXT = flood_rules("AckFloodTest", 65536)

    def test_ack_flood_without_connections(self):
        problem = hping3_problem()
        if problem:
            self.skipTest(problem)
        lb, d = self.lab, self.lab.daemon
        fw, client = lb.ns["fw"], lb.ns["client"]
        # Spoofed sources would fail reverse-path filtering on out0 before seqwall saw them.
        lab.allow_spoofed_sources(fw, "out0")
        before = d.stats()
        kernel_before = kernel_queue(before)
        pid = d.proc.pid
        rss_before = proc_status(pid, "VmRSS")
        probe_before = len(lb.probe.segments())

        poller = StatsPoller(d)
        flood = lab.spawn(client, ["timeout", str(ACK_FLOOD_SECONDS), "hping3", "-A", "--rand-source",
                                   "-p", str(OPEN_PORT), "-i", ACK_FLOOD_INTERVAL, "-c", str(ACK_FLOOD_COUNT),
                                   "-q", lb.server4], os.path.join(lb.workdir, "hping3-ack.log"), stdout=False)
        started = time.monotonic()
        try:
            # The legitimate client starts once the flood is under way.
            lab.wait_for(lambda: d.stats()["drops"].get("no-connection", 0)
                         - before["drops"].get("no-connection", 0) > 1000, 15, 0.1)
            results = run_legit_client(client, lb.server4, OPEN_PORT, ACK_FLOOD_LEGIT)
            flood_running = flood.poll() is None
            flood.wait(timeout=ACK_FLOOD_SECONDS + 10)
            flood_seconds = time.monotonic() - started
        finally:
            lab.REGISTRY.kill_proc(flood)
            time.sleep(0.3)
            poller.stop()
        after = d.stats()
        kernel_after = kernel_queue(after)
        hwm = proc_status(pid, "VmHWM")
        drops = deltas(before["drops"], after["drops"])
        no_connection = drops.get("no-connection", 0)
        seen = after["packets"]["seen"] - before["packets"]["seen"]
        accepted = after["packets"]["accepted"] - before["packets"]["accepted"]
        succeeded = sum(1 for r in results if r["ok"])
        # Flood packets that reached the server (spoofed sources, ACK only, the open port).
        leaked = [s for s in lb.probe.segments()[probe_before:]
                  if s["dport"] == OPEN_PORT and s["src"] != lb.client4]
        figures = {
            "flood_packets_nominal": ACK_FLOOD_COUNT, "flood_seconds": round(flood_seconds, 2),
            "packets_seen": seen, "rate_seen_pps": round(seen / flood_seconds),
            "no_connection_drops": no_connection, "drops": drops, "accepted": accepted,
            "legit_succeeded": succeeded, "legit_total": len(results),
            "peak_connections": max((s["current"] for s in poller.samples), default=None),
            "rss_before_kib": rss_before, "vm_hwm_kib": hwm,
            "peak_rss_kib_polled": max((s["rss"] for s in poller.samples), default=None),
            "kernel_queue": queue_figures(kernel_before, kernel_after), "leaked_to_server": len(leaked),
        }
        sys.stderr.write(f"\nack flood figures: {json.dumps(figures)}\n")

        self.assertTrue(flood_running, f"the flood ended before the legitimate client did: {figures}")
        self.assertEqual(poller.errors, [], f"`seqwall stats` failed during the flood: {poller.errors[:3]}")
        self.assertGreaterEqual(succeeded, 0.99 * len(results),
                                f"legitimate connections failed: {[r for r in results if not r['ok']][:5]}")
        # Every flood packet seqwall saw was dropped for having no connection; nothing else was.
        self.assertEqual(set(drops), {"no-connection"}, figures)
        self.assertGreater(no_connection, ACK_FLOOD_COUNT // 2, f"seqwall saw too little of the flood: {figures}")
        self.assertEqual(seen, no_connection + accepted, figures)
        self.assertEqual(leaked, [], f"flood packets reached the server: {leaked[:3]}")
        # No entry was made for them: at most the legitimate client's connections (TIME_WAIT).
        self.assertLessEqual(figures["peak_connections"], ACK_FLOOD_LEGIT + 5, figures)
        self.assertLess(hwm, ACK_FLOOD_MEMORY_CEILING_KIB, f"seqwall's peak memory: {figures}")
        self.assertTrue(d.running())


class ConnectionFloodTest(RulesInWorkdir, lab.LabTestCase):
    MODE = lab.GATEWAY
    SERVER_PORTS = (OPEN_PORT,)
    RULE_TEXT = flood_rules("ConnectionFloodTest", TABLE_LIMIT)

    def test_connection_flood_at_the_table_limit(self):
        lb, d = self.lab, self.lab.daemon
        client = lb.ns["client"]
        keepers = [lb.connect("client", lb.server_addr(4 if i % 2 == 0 else 6), OPEN_PORT, timeout=10)
                   for i in range(KEEPERS)]
        try:
            for i, conn in enumerate(keepers):
                self.assertTrue(conn.connected, f"keeper {i} did not connect: {conn.error}")
                self.assertEqual(conn.send(b"before %d" % i), b"echo:before %d" % i)
            keeper_ports = {conn.sport for conn in keepers}
            before = d.stats()
            kernel_before = kernel_queue(before)
            pid = d.proc.pid

            poller = StatsPoller(d)
            try:
                cp = lab.ns_run(client, [lab.PY, "-c", FLOOD_CLIENT, lb.server4, str(OPEN_PORT),
                                         str(CONNECTION_FLOOD_ATTEMPTS), str(CONNECTION_FLOOD_CONCURRENCY),
                                         str(CONNECTION_FLOOD_SECONDS), "2"],
                                timeout=CONNECTION_FLOOD_SECONDS + 30)
                flood = json.loads(cp.stdout.strip().splitlines()[-1])
            finally:
                poller.stop()
            after = d.stats()
            kernel_after = kernel_queue(after)
            hwm = proc_status(pid, "VmHWM")

            # The keepers are still ESTABLISHED in seqwall's table and carry data.
            table = d.conntrack()
            kept = {e["orig"]["sport"] for e in table
                    if e["state"] == "ESTABLISHED" and e["orig"]["sport"] in keeper_ports}
            for i, conn in enumerate(keepers):
                self.assertEqual(conn.send(b"after %d" % i), b"echo:after %d" % i, f"keeper {i}")
        finally:
            for conn in keepers:
                conn.abort()

        drops = deltas(before["drops"], after["drops"])
        connections = deltas(before["connections"], after["connections"])
        peak = max((s["current"] for s in poller.samples), default=0)
        figures = {
            "flood": flood, "rate_attempts_per_s": round(flood["attempts"] / max(flood["seconds"], 0.01)),
            "table_limit": TABLE_LIMIT, "peak_connections": peak, "drops": drops,
            "created": connections.get("created", 0), "early_drops": connections.get("early_drops", 0),
            "vm_hwm_kib": hwm, "peak_rss_kib_polled": max((s["rss"] for s in poller.samples), default=None),
            "kernel_queue": queue_figures(kernel_before, kernel_after), "keepers_kept": len(kept),
        }
        sys.stderr.write(f"\nconnection flood figures: {json.dumps(figures)}\n")

        self.assertEqual(poller.errors, [], f"`seqwall stats` failed during the flood: {poller.errors[:3]}")
        self.assertEqual(after["connections"]["limit"], TABLE_LIMIT, figures)
        self.assertLessEqual(peak, TABLE_LIMIT, figures)
        self.assertGreaterEqual(peak, TABLE_LIMIT - 2, f"the flood never filled the table: {figures}")
        # Newcomers that did not fit were refused: dropped as table-full, or let in by evicting
        # a connection that was not assured (early drop).
        self.assertGreater(drops.get("table-full", 0) + figures["early_drops"], 0, figures)
        self.assertGreater(flood["failed"], 0, f"every connection of the flood fitted: {figures}")
        self.assertEqual(kept, keeper_ports, f"keepers lost from the table: {figures}")
        self.assertLess(hwm, CONNECTION_FLOOD_MEMORY_CEILING_KIB, f"seqwall's peak memory: {figures}")
        self.assertTrue(d.running())
