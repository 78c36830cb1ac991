"""Automatic blocking (pf's overload) with real packets through NFQUEUE (gateway mode):
seqwall.rules(5), limit conn and limit conn-rate.

The attacker is a second documentation address on the client, 198.51.100.11; the client's own
address, 198.51.100.10, is the innocent source. Port 22 is the lab server's echo listener.

- ConnRateOverloadTest: `limit conn-rate 5/10s per-source overload <bruteforce> expire 10m
  flush`. The attacker opens 8 connections back to back and holds them: 5 are established,
  the sixth's handshake is cut (`conn-rate`) and the attacker goes into <bruteforce>, after
  which its SYNs are dropped (`rule`) and its 5 established connections are flushed (their
  data gets no answer). The daemon adds the source within 50 ms; a connection whose SYN came
  in between is cut at its handshake like the sixth. The innocent source's connection,
  opened before, carries data after, and it opens new connections meanwhile.
- ConnLimitOverloadTest: `limit conn 3 per-source overload <crowded>`: a fourth concurrent
  connection is cut and blocks the source; without `flush` its first three carry on.

Every connection the client saw complete but seqwall cut has an ACK counted under the limit's
drop reason; the client sees its handshake done, and nothing after.
"""

import json
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402
from test_limits import RulesInWorkdir  # noqa: E402

PORT = 22
ATTACKER = "198.51.100.11"

# Opens COUNT connections from SOURCE one after the other and holds them all, waits PAUSE
# seconds, then tries one echo over each that connected; prints one JSON list.
HOLD_CLIENT = r"""
import json, socket, sys, time
addr, port, count, timeout, source, pause = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                             float(sys.argv[4]), sys.argv[5], float(sys.argv[6]))
held, results = [], []
for i in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    try:
        s.connect((addr, port))
        results.append({"connected": True, "error": None, "echo": None})
        held.append((i, s))
    except OSError as e:
        results.append({"connected": False, "error": type(e).__name__, "echo": None})
        s.close()
time.sleep(pause)
for i, s in held:
    try:
        s.sendall(b"held %d" % i)
        want = b"echo:held %d" % i
        got = b""
        while len(got) < len(want):
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        results[i]["echo"] = got == want
    except OSError as e:
        results[i]["echo"] = False
        results[i]["error"] = type(e).__name__
    finally:
        s.close()
print(json.dumps(results), flush=True)
"""


def hold_connections(ns, addr, count, timeout, pause):
    argv = [lab.PY, "-c", HOLD_CLIENT, addr, str(PORT), str(count), str(timeout), ATTACKER, str(pause)]
    cp = lab.ns_run(ns, argv, timeout=count * timeout * 2 + pause + 30)
    return json.loads(cp.stdout.strip().splitlines()[-1])


def table_lines(daemon, name):
    return daemon.cli(["table", name, "show"]).stdout.splitlines()


class OverloadLab(RulesInWorkdir, lab.LabTestCase):
    """A gateway lab with the class's RULE_TEXT and the attacker's address on the client."""

    MODE = lab.GATEWAY
    SERVER_PORTS = (PORT,)
    CLIENT_PORTS = ()
    HEADER = "inside 203.0.113.0/24, 2001:db8:2::/64\ndefault in block\ndefault out pass\n"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        lab.run(["ip", "-n", cls.lab.ns["client"], "addr", "add", f"{ATTACKER}/24", "dev", "eth0"])

    def attacker_entries(self):
        return [e for e in self.lab.daemon.conntrack()
                if lab.addr_eq(e["orig"]["src"], ATTACKER) and e["orig"].get("dport") == PORT]


class ConnRateOverloadTest(OverloadLab):
    RULE_TEXT = (OverloadLab.HEADER + "table <bruteforce> persist\n"
                 "block in tcp from <bruteforce>\n"
                 f"pass in tcp to port {PORT} limit conn-rate 5/10s per-source overload <bruteforce> expire 10m flush\n")

    def test_1_fast_source_is_blocked_and_cut_another_is_untouched(self):
        lb, d = self.lab, self.lab.daemon
        before = d.stats()
        log_start = d.log_size()
        with lb.connect("client", lb.server4, PORT) as innocent:
            self.assertTrue(innocent.connected, f"the innocent source could not connect: {innocent.error}")
            self.assertEqual(innocent.send(b"before"), b"echo:before")

            attacked = time.monotonic()
            results = hold_connections(lb.ns["client"], lb.server4, count=8, timeout=2.0, pause=1.0)
            connected = [r["connected"] for r in results]
            # Five within the rate; the sixth completes its handshake on the client's side
            # only (its ACK is dropped); then the source is in the table.
            self.assertEqual(connected[:6], [True] * 6, results)
            cut = sum(connected) - 5
            # Flushed, or cut at the handshake: no echo over any of them.
            self.assertEqual([r["echo"] for r in results if r["connected"]], [False] * sum(connected), results)
            # Blocked now.
            late = hold_connections(lb.ns["client"], lb.server4, count=1, timeout=2.0, pause=0)
            self.assertEqual(late, [{"connected": False, "error": "TimeoutError", "echo": None}])

            # The innocent source: its connection carries data, and it connects anew.
            self.assertEqual(innocent.send(b"after"), b"echo:after")
            for n in range(3):
                with lb.connect("client", lb.server4, PORT) as again:
                    self.assertTrue(again.connected, f"innocent connection {n}: {again.error}")
                    self.assertEqual(again.send(b"again %d" % n), b"echo:again %d" % n)
                    self.assertEqual(again.close(), b"")
            self.assertEqual(innocent.close(), b"")

        after = d.stats()
        self.assertEqual(lab.drops(after, "conn-rate") - lab.drops(before, "conn-rate"), cut, after["drops"])
        self.assertGreaterEqual(lab.drops(after, "rule") - lab.drops(before, "rule"), 1, after["drops"])
        overload = after.get("overload") or {}
        self.assertEqual(overload.get("added"), 1, after)
        self.assertEqual(overload.get("flushed"), 5, after)
        self.assertEqual(overload.get("pending_expiries"), 1, after)
        lines = table_lines(d, "bruteforce")
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith(f"{ATTACKER}  # overload, expires "), lines)
        left = int(re.search(r"\(in (\d+)s\)", lines[0]).group(1))
        # Added during the attack: 10 minutes from then, less what has passed since (rounded up).
        self.assertTrue(600 - (time.monotonic() - attacked) - 1 <= left <= 600, lines)
        self.assertEqual([e for e in self.attacker_entries() if e["state"] == "ESTABLISHED"], [])
        log = d.log_text(since=log_start)
        self.assertRegex(log, rf"drop reason=conn-rate proto=tcp src={re.escape(ATTACKER)} ")
        self.assertIn(f"overload: {ATTACKER} in <bruteforce> (conn-rate); 5 connections flushed", log)
        text = d.cli(["stats"]).stdout
        self.assertRegex(text, rf"overload +sources {cut}  added 1  expired 0  flushed 5  pending expiries 1  lost 0")

    def test_2_delete_by_hand_unblocks(self):
        d = self.lab.daemon
        d.cli(["table", "bruteforce", "delete", ATTACKER])
        self.assertEqual(table_lines(d, "bruteforce"), [])
        self.assertEqual((d.stats().get("overload") or {}).get("pending_expiries"), 0)
        results = hold_connections(self.lab.ns["client"], self.lab.server4, count=1, timeout=3.0, pause=0.2)
        self.assertEqual(results, [{"connected": True, "error": None, "echo": True}])


class ConnLimitOverloadTest(OverloadLab):
    RULE_TEXT = (OverloadLab.HEADER + "table <crowded> persist\n"
                 "block in tcp from <crowded>\n"
                 f"pass in tcp to port {PORT} limit conn 3 per-source overload <crowded>\n")

    def test_1_fourth_concurrent_connection_blocks_the_source(self):
        lb, d = self.lab, self.lab.daemon
        before = d.stats()
        results = hold_connections(lb.ns["client"], lb.server4, count=5, timeout=2.0, pause=1.0)
        connected = [r["connected"] for r in results]
        self.assertEqual(connected[:4], [True] * 4, results)
        # No flush: the three counted ones carry on; the fourth (and a fifth whose SYN came
        # before the table had the source) was cut at its handshake.
        self.assertEqual([r["echo"] for r in results if r["connected"]], [True] * 3 + [False] * (sum(connected) - 3),
                         results)
        late = hold_connections(lb.ns["client"], lb.server4, count=1, timeout=2.0, pause=0)
        self.assertEqual(late, [{"connected": False, "error": "TimeoutError", "echo": None}])
        after = d.stats()
        self.assertEqual(lab.drops(after, "conn-limit") - lab.drops(before, "conn-limit"), sum(connected) - 3,
                         after["drops"])
        self.assertEqual(table_lines(d, "crowded"), [ATTACKER])
        overload = after.get("overload") or {}
        self.assertEqual([overload.get("added"), overload.get("flushed"), overload.get("pending_expiries")],
                         [1, 0, 0], after)
        # The innocent source is not counted with the attacker.
        with lb.connect("client", lb.server4, PORT) as c:
            self.assertTrue(c.connected, c.error)
            self.assertEqual(c.send(b"mine"), b"echo:mine")
            self.assertEqual(c.close(), b"")


if __name__ == "__main__":
    unittest.main()
