"""The metrics endpoint (`seqwall run --metrics`) and the drop log (`set drop-log`), with real
packets through a real NFQUEUE (gateway mode).

seqwall serves /metrics on a loopback address inside the firewall's namespace, and the scrapes
come from inside that namespace. Known traffic goes through: connections the rules pass,
segments crafted to be dropped for a known reason; the scrape must show exactly those counts,
agree with `seqwall stats`, and have a processing-time histogram whose count is the packets
seen. Reloads (good, broken, good) move the reload counters. The drop log is tried in each
mode: off writes no line, full exactly one per dropped packet, sampled its rate limit plus a
summary of what it left out, so that lines plus suppressed equal the drops.

The HTTP side is tried as a scraper and as a hostile client: oversized, garbage and half-sent
requests, other paths and methods, and more clients than it serves at once; meanwhile packets
keep flowing through the firewall.

This file is also the small HTTP client agent the tests run inside the namespace:
  /usr/bin/python3 test_metrics.py http ADDR PORT HEX [HOLD]   send HEX, read the answer
  /usr/bin/python3 test_metrics.py hold ADDR PORT N            N half-sent requests at once
"""

import json
import os
import re
import signal
import socket
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

AGENT = os.path.abspath(__file__)
METRICS_PORT = 9464
OPEN_PORT = 8080      # `pass in tcp to port 8080`
CLOSED_PORT = 8081    # nothing passes: `default in block`

BASE_RULES = """\
# test_metrics.py: the outside may reach port 8080 on the inside, nothing else.
inside 203.0.113.0/24, 2001:db8:2::/64
default in block
default out pass
pass in tcp to port 8080
set pickup grace 0
"""


# ---------------------------------------------------------------------------------------------
# Agent: a raw HTTP client, run inside the firewall's namespace
# ---------------------------------------------------------------------------------------------

def _read_answer(sock, timeout):
    """Everything the server sends until it closes (or timeout); and how long that took."""
    sock.settimeout(timeout)
    started = time.monotonic()
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data, time.monotonic() - started


def _describe(data, elapsed):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/1.1 ") else None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return {"status": status, "headers": headers, "body": body.decode(errors="replace"),
            "elapsed": elapsed, "raw": data[:200].decode(errors="replace")}


def _connect(addr, port):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect((addr, port))
    return sock


def _agent_http(addr, port, payload_hex):
    sock = _connect(addr, int(port))
    sock.sendall(bytes.fromhex(payload_hex))
    data, elapsed = _read_answer(sock, 20)
    sock.close()
    print(json.dumps(_describe(data, elapsed)), flush=True)


def _agent_hold(addr, port, count):
    """Opens `count` connections with half a request each, says so, then reads their answers."""
    socks = []
    for _ in range(int(count)):
        sock = _connect(addr, int(port))
        sock.sendall(b"GET /metr")
        socks.append(sock)
    print("held", flush=True)
    answers = []
    for sock in socks:
        data, elapsed = _read_answer(sock, 20)
        answers.append(_describe(data, elapsed))
        sock.close()
    print(json.dumps(answers), flush=True)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] in ("http", "hold"):
    {"http": _agent_http, "hold": _agent_hold}[sys.argv[1]](*sys.argv[2:])
    sys.exit(0)


import lab  # noqa: E402


def parse_metrics(text):
    """`name{labels}` -> float for every sample line."""
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        values[key] = float(value)
    return values


class MetricsLabTest(lab.LabTestCase):
    MODE = lab.GATEWAY

    @classmethod
    def setUpClass(cls):
        problem = lab.environment_problem()
        if problem:
            raise unittest.SkipTest(problem)
        # A rule file of the test's own, rewritten to try the drop-log modes and a broken reload.
        lab.REGISTRY.install()
        cls.rules_dir = tempfile.mkdtemp(prefix="seqwall-metrics-rules-")
        lab.REGISTRY.add_tmp(cls.rules_dir)
        cls.rules_path = os.path.join(cls.rules_dir, "metrics.rules")
        with open(cls.rules_path, "w") as f:
            f.write(BASE_RULES)
        cls.lab = lab.Lab(cls.MODE, cls.rules_path, server_ports=(OPEN_PORT, CLOSED_PORT), client_ports=())
        cls.lab.build()
        cls.lab.daemon.extra = ["--metrics", f"127.0.0.1:{METRICS_PORT}"]
        try:
            cls.lab.start_daemon()
        except BaseException:
            cls.lab.destroy()
            raise

    # -- helpers --

    def write_rules(self, extra=""):
        with open(self.rules_path, "w") as f:
            f.write(BASE_RULES + extra)

    def restart(self):
        """A fresh daemon: counters from zero, the rules as they are now."""
        d = self.lab.daemon
        self.assertEqual(d.stop(), 0, f"seqwall did not stop cleanly:\n{d.log_tail()}")
        d.start()

    def http(self, payload, addr="127.0.0.1", port=METRICS_PORT):
        if isinstance(payload, str):
            payload = payload.encode()
        cp = lab.ns_run(self.lab.fw_ns, [lab.PY, AGENT, "http", addr, str(port), payload.hex()],
                        timeout=40)
        return json.loads(cp.stdout)

    def scrape(self, addr="127.0.0.1", port=METRICS_PORT):
        answer = self.http("GET /metrics HTTP/1.1\r\nHost: seqwall\r\n\r\n", addr, port)
        self.assertEqual(answer["status"], 200, answer)
        self.assertEqual(answer["headers"].get("content-type"), "text/plain; version=0.0.4; charset=utf-8")
        self.assertEqual(int(answer["headers"]["content-length"]), len(answer["body"].encode()))
        return parse_metrics(answer["body"])

    def connect_and_echo(self, count):
        for i in range(count):
            with self.lab.connect("client", self.lab.server4, OPEN_PORT) as c:
                self.assertTrue(c.connected, f"connection {i} failed: {c.error}")
                self.assertEqual(c.send(b"metrics %d" % i), b"echo:metrics %d" % i)
                self.assertEqual(c.close(), b"")

    def craft_drops(self, count, flags, first_sport, dport=OPEN_PORT):
        """`count` segments from the client, one per source port; all dropped (bad-flags for
        flag combinations no segment has, rule for SYNs to a closed port)."""
        packets = [{"family": 4, "dst": self.lab.server4, "sport": first_sport + i, "dport": dport,
                    "flags": flags, "seq": 1000 + i} for i in range(count)]
        self.assertEqual(self.lab.craft(packets), count)

    def wait_drops(self, reason, count, timeout=20.0):
        """Waits until the stats show `count` drops for `reason`; returns the stats."""
        d = self.lab.daemon
        ok = lab.wait_for(lambda: lab.drops(d.stats(), reason) >= count, timeout, 0.2)
        stats = d.stats()
        self.assertTrue(ok, f"expected {count} {reason} drops: {stats['drops']}")
        return stats

    def drop_lines(self, since):
        return [line for line in self.lab.daemon.log_text(since=since).splitlines()
                if re.search(r"\b(drop|reject) reason=", line)]

    def suppressed_summaries(self, since):
        return [int(m.group(1)) for m in re.finditer(r"(\d+) drop lines? suppressed on queue 0 ",
                                                     self.lab.daemon.log_text(since=since))]

    # -- tests --

    def test_1_counts_after_known_traffic(self):
        """N connections the rules pass, M segments with impossible flags and M SYNs to a
        closed port: the scrape shows exactly those drops and connections, agrees with
        `seqwall stats` on every counter, and the histogram counts every packet seen."""
        problem = lab.scapy_problem()
        if problem:
            self.skipTest(problem)
        self.write_rules()
        self.restart()
        connections, bad, blocked = 5, 7, 4
        self.connect_and_echo(connections)
        self.craft_drops(bad, "FPU", 41000)                  # Xmas: bad-flags
        self.craft_drops(blocked, "S", 42000, CLOSED_PORT)   # rule
        self.wait_drops("rule", blocked)
        # The last ACKs of the closes may still be on their way: wait until the figures settle.
        d = self.lab.daemon
        previous = None
        for _ in range(50):
            stats = d.stats()
            if stats == previous:
                break
            previous = stats
            time.sleep(0.3)
        m = self.scrape()
        stats = d.stats()
        q = '{queue="0"}'

        self.assertEqual(m[f'seqwall_drops_total{{queue="0",reason="bad-flags"}}'], bad, stats["drops"])
        self.assertEqual(m[f'seqwall_drops_total{{queue="0",reason="rule"}}'], blocked, stats["drops"])
        self.assertEqual(m["seqwall_packets_dropped_total" + q], bad + blocked, stats["drops"])
        for reason, count in stats["drops"].items():
            self.assertEqual(m[f'seqwall_drops_total{{queue="0",reason="{reason}"}}'], count, reason)
        self.assertEqual(sum(v for k, v in m.items() if k.startswith("seqwall_drops_total{")), bad + blocked)
        self.assertEqual(m["seqwall_connections_created_total" + q], connections)
        self.assertEqual(m["seqwall_packets_seen_total" + q], stats["packets"]["seen"])
        self.assertEqual(m["seqwall_packets_accepted_total" + q], stats["packets"]["accepted"])
        self.assertEqual(m["seqwall_packets_seen_total" + q],
                         m["seqwall_packets_accepted_total" + q] + m["seqwall_packets_dropped_total" + q])
        # A handshake, a request and its echo, and a close each way: at least 8 a connection.
        self.assertGreaterEqual(m["seqwall_packets_accepted_total" + q], 8 * connections)
        self.assertEqual(m["seqwall_connections" + q], stats["connections"]["current"])
        self.assertEqual(m["seqwall_connections" + q], connections)   # all in TIME_WAIT
        self.assertEqual(m["seqwall_connections_limit" + q], 262144)
        self.assertEqual(m["seqwall_half_open_connections" + q], 0)
        self.assertEqual(m["seqwall_early_drops_total" + q], 0)
        self.assertEqual(m["seqwall_half_open_evictions_total" + q], 0)
        self.assertEqual(m["seqwall_queue_enobufs_total" + q], 0)
        self.assertEqual(m["seqwall_queue_fail_open" + q], 0)
        self.assertEqual(m["seqwall_kernel_queue_dropped_total" + q], 0)
        self.assertEqual(m["seqwall_kernel_queue_user_dropped_total" + q], 0)
        self.assertIn("seqwall_kernel_queue_waiting" + q, m)
        # The histogram: one observation per packet seen, buckets cumulative up to +Inf.
        seen = m["seqwall_packets_seen_total" + q]
        self.assertEqual(m["seqwall_packet_processing_seconds_count"], seen)
        self.assertEqual(m['seqwall_packet_processing_seconds_bucket{le="+Inf"}'], seen)
        buckets = sorted((float(k.split('le="')[1].rstrip('"}')), v) for k, v in m.items()
                         if k.startswith("seqwall_packet_processing_seconds_bucket{") and "+Inf" not in k)
        self.assertEqual(len(buckets), 14)
        self.assertTrue(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), buckets)
        self.assertGreater(m["seqwall_packet_processing_seconds_sum"], 0)
        median = next(bound for bound, count in buckets + [(float("inf"), seen)] if count >= seen / 2)
        sys.stderr.write(f"\nprocessing time: {seen:.0f} packets, mean "
                         f"{m['seqwall_packet_processing_seconds_sum'] / seen * 1e6:.1f} us a packet, "
                         f"median at most {median * 1e6:g} us\n")
        # Every reason seqwall has is a series, zeros included.
        reasons = [k for k in m if k.startswith('seqwall_drops_total{queue="0",')]
        self.assertEqual(len(reasons), len(stats["drops"]), reasons)
        # The build: one version, from VERSION, in the scrape, in stats, in the log line at
        # start and in --version.
        with open(os.path.join(lab.REPO, "VERSION")) as f:
            version = f.read().strip()
        self.assertEqual(stats["version"], version)
        build = f'seqwall_build_info{{version="{version}",commit="{stats.get("commit", "")}"}}'
        self.assertEqual(m.get(build), 1, [k for k in m if k.startswith("seqwall_build_info")])
        self.assertIn(f"seqwall {version}", d.log_text())
        self.assertTrue(lab.run([lab.SEQWALL_BIN, "--version"]).stdout.startswith(f"seqwall {version}"))

    def test_2_reload_counters(self):
        """A good reload, a broken one (refused, the old rules stay), a good one by SIGHUP."""
        self.write_rules()
        self.restart()
        d = self.lab.daemon
        m = self.scrape()
        self.assertEqual((m['seqwall_reloads_total{result="success"}'], m['seqwall_reloads_total{result="failure"}'],
                          m["seqwall_last_reload_success"]), (0, 0, 1))

        d.cli(["reload"])
        m = self.scrape()
        self.assertEqual((m['seqwall_reloads_total{result="success"}'], m['seqwall_reloads_total{result="failure"}'],
                          m["seqwall_last_reload_success"]), (1, 0, 1))

        self.write_rules("pass in tcp to port 99999\n")
        cp = d.cli(["reload"], check=False)
        self.assertEqual(cp.returncode, 1, cp)
        m = self.scrape()
        self.assertEqual((m['seqwall_reloads_total{result="success"}'], m['seqwall_reloads_total{result="failure"}'],
                          m["seqwall_last_reload_success"]), (1, 1, 0))
        # The old rules still pass port 8080.
        self.connect_and_echo(1)

        self.write_rules()
        start = d.log_size()
        d.send_signal(signal.SIGHUP)
        self.assertTrue(lab.wait_for(lambda: "reloaded " in d.log_text(since=start), 10.0), d.log_tail())
        m = self.scrape()
        self.assertEqual((m['seqwall_reloads_total{result="success"}'], m['seqwall_reloads_total{result="failure"}'],
                          m["seqwall_last_reload_success"]), (2, 1, 1))

    def test_3_drop_log_modes(self):
        """off: no line; full: exactly one line per dropped packet, in the stable key=value
        form; sampled: the burst and rate, and a summary of the rest (lines + suppressed =
        drops). Each mode is switched to by a reload."""
        problem = lab.scapy_problem()
        if problem:
            self.skipTest(problem)
        self.write_rules()
        self.restart()
        d = self.lab.daemon
        count = 30   # above the sampled burst (20), so full shows it has no limit

        # full
        self.write_rules("set drop-log full\n")
        d.cli(["reload"])
        start = d.log_size()
        self.craft_drops(count, "FPU", 43000)
        self.wait_drops("bad-flags", count)
        self.assertTrue(lab.wait_for(lambda: len(self.drop_lines(start)) >= count, 10.0),
                        f"full: {len(self.drop_lines(start))} lines for {count} drops")
        time.sleep(1.0)   # anything more would show by now (the writer drains every 50 ms)
        lines = self.drop_lines(start)
        self.assertEqual(len(lines), count, "\n".join(lines))
        server = self.lab.server4
        for i in range(count):
            want = (f"drop reason=bad-flags proto=tcp src=198.51.100.10 dst={server} sport={43000 + i} "
                    f"dport={OPEN_PORT} flags=FIN,PSH,URG seq={1000 + i} ack=0 win=8192 len=0 state=NONE queue=0")
            matching = [line for line in lines if line.endswith(want)]
            self.assertEqual(len(matching), 1, f"{want!r} in:\n" + "\n".join(lines))
        self.assertEqual(self.suppressed_summaries(start), [])

        # off
        self.write_rules("set drop-log off\n")
        d.cli(["reload"])
        start = d.log_size()
        before = lab.drops(d.stats(), "bad-flags")
        self.craft_drops(count, "FPU", 44000)
        self.wait_drops("bad-flags", before + count)
        time.sleep(1.0)
        self.assertEqual(self.drop_lines(start), [])
        self.assertEqual(self.suppressed_summaries(start), [])

        # sampled: the bucket is full after the quiet seconds above.
        self.write_rules("set drop-log sampled\n")
        d.cli(["reload"])
        time.sleep(2.5)
        start = d.log_size()
        before = lab.drops(d.stats(), "bad-flags")
        suppressed_before = self.scrape()['seqwall_drop_log_suppressed_total{queue="0"}']
        many = 80
        t0 = time.monotonic()
        self.craft_drops(many, "FPU", 45000)
        sending = time.monotonic() - t0
        self.wait_drops("bad-flags", before + many)
        # The summary comes within its 5 s period.
        self.assertTrue(lab.wait_for(lambda: sum(self.suppressed_summaries(start)) + len(self.drop_lines(start)) >= many,
                                     15.0, 0.5),
                        f"sampled: {len(self.drop_lines(start))} lines and summaries "
                        f"{self.suppressed_summaries(start)} for {many} drops")
        lines, summaries = self.drop_lines(start), self.suppressed_summaries(start)
        self.assertEqual(len(lines) + sum(summaries), many, f"{len(lines)} lines, summaries {summaries}")
        # The burst at least, and no more than the burst plus 10/s while the packets came.
        self.assertGreaterEqual(len(lines), 20)
        self.assertLessEqual(len(lines), 20 + 10 * (sending + 1), f"sent in {sending:.1f} s")
        self.assertGreater(sum(summaries), 0)
        m = self.scrape()
        self.assertEqual(m['seqwall_drop_log_suppressed_total{queue="0"}'] - suppressed_before, sum(summaries))
        self.assertEqual(m['seqwall_drop_log_lost_total{queue="0"}'], 0)

    def test_4_http_robustness(self):
        """Refusals with the right status, a stalled client cut off at the timeout, a fifth
        client refused while four stall, and packets flowing through the firewall meanwhile."""
        ok = self.http("GET /metrics HTTP/1.1\r\nHost: seqwall\r\n\r\n")
        self.assertEqual(ok["status"], 200, ok)
        head = self.http("HEAD /metrics HTTP/1.1\r\n\r\n")
        self.assertEqual(head["status"], 200, head)
        self.assertEqual(head["body"], "")
        self.assertGreater(int(head["headers"]["content-length"]), 1000)
        self.assertEqual(self.http("GET / HTTP/1.1\r\n\r\n")["status"], 404)
        self.assertEqual(self.http("GET /metrics/x HTTP/1.0\r\n\r\n")["status"], 404)
        post = self.http("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        self.assertEqual(post["status"], 405, post)
        self.assertEqual(post["headers"].get("allow"), "GET, HEAD")
        self.assertEqual(self.http(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")["status"], 400)
        self.assertEqual(self.http("GET /metrics HTTP/2.0\r\n\r\n")["status"], 505)
        huge = self.http("GET /metrics HTTP/1.1\r\nX-Filler: " + "a" * 20000 + "\r\n\r\n")
        self.assertEqual(huge["status"], 431, huge)
        # Half a request, then nothing: cut off with 408 after the 5 s timeout.
        half = self.http("GET /metrics HTTP/1.1\r\nHost: x\r\n")
        self.assertEqual(half["status"], 408, half)
        self.assertGreaterEqual(half["elapsed"], 4.0, half)

        # Four stalled clients take every place; a fifth is refused at once; packets pass.
        holder = lab.spawn(self.lab.fw_ns, [lab.PY, AGENT, "hold", "127.0.0.1", str(METRICS_PORT), "4"],
                           os.path.join(self.lab.workdir, "hold.stderr"))
        try:
            reader = lab.LineReader(holder.stdout)
            self.assertEqual(reader.readline(15), "held")
            time.sleep(0.3)
            fifth = self.http("GET /metrics HTTP/1.1\r\n\r\n")
            self.assertEqual(fifth["status"], 503, fifth)
            self.assertLess(fifth["elapsed"], 3.0, fifth)
            self.connect_and_echo(2)
            answers = json.loads(reader.readline(30) or "null")
            self.assertEqual([a["status"] for a in answers], [408] * 4, answers)
        finally:
            lab.REGISTRY.kill_proc(holder)
        # Served again once they are gone.
        self.assertEqual(self.http("GET /metrics HTTP/1.1\r\n\r\n")["status"], 200)
        self.assertTrue(self.lab.daemon.running())

    def test_5_bad_metrics_values_and_ipv6(self):
        """A bad --metrics value or a port in use: exit 1 with one error line. [::1] works."""
        d = self.lab.daemon
        cp = lab.ns_run(self.lab.fw_ns, [lab.SEQWALL_BIN, "run", "--rules", self.rules_path, "--queue", "7",
                                         "--control", os.path.join(self.lab.workdir, "bad.sock"),
                                         "--metrics", "localhost:9100"], check=False, timeout=20)
        self.assertEqual(cp.returncode, 1, cp)
        self.assertEqual(cp.stderr.strip().count("\n"), 0, cp.stderr)
        self.assertIn("--metrics: 'localhost' in 'localhost:9100' is not an IPv4 address", cp.stderr)

        self.write_rules()
        cp = lab.ns_run(self.lab.fw_ns, [lab.SEQWALL_BIN, "run", "--rules", self.rules_path, "--queue", "7",
                                         "--control", os.path.join(self.lab.workdir, "busy.sock"),
                                         "--metrics", f"127.0.0.1:{METRICS_PORT}"], check=False, timeout=20)
        self.assertEqual(cp.returncode, 1, cp)
        errors = [line for line in cp.stderr.splitlines() if " error " in line]
        self.assertEqual(len(errors), 1, cp.stderr)
        self.assertIn(f"cannot serve metrics: binding the metrics address 127.0.0.1:{METRICS_PORT}: "
                      "Address already in use", errors[0])
        self.assertTrue(d.running())

        # A second daemon on another queue, scraped over IPv6 loopback.
        second = lab.Daemon(self.lab.fw_ns, self.rules_path, os.path.join(self.lab.workdir, "v6.sock"),
                            os.path.join(self.lab.workdir, "seqwall-v6.log"), queues=(7,),
                            extra=["--metrics", f"[::1]:{METRICS_PORT + 1}"])
        second.start()
        try:
            m = self.scrape("::1", METRICS_PORT + 1)
            self.assertEqual(m['seqwall_packets_seen_total{queue="7"}'], 0)
            self.assertNotIn('seqwall_packets_seen_total{queue="0"}', m)
        finally:
            self.assertEqual(second.stop(), 0)


if __name__ == "__main__":
    unittest.main()
