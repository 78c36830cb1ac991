"""seqwall's conntrack CLI against real connections: list/count and their filters, watch,
delete, flush, stats counters, the control socket's permissions and robustness, and the
errors an operator sees.

Gateway mode (the lab of lab.py): client 198.51.100.10 / 2001:db8:1::10, server
203.0.113.10 / 2001:db8:2::10, seqwall in the fw namespace. Rules:
Tests/Integration/rules/conntrack.rules (ports 8080 and 8081 open inbound, UDP to 8082
rejected, TIME_WAIT 2 s so closed connections leave the table quickly).

Two classes, one lab each:

  ConntrackCLITest        connections that always end cleanly: list/count/filters (IPv4 and
                          IPv6), watch (and its -e and -p filters), list -o extended, get,
                          a rejected UDP flow, exact stats counters, socket permissions,
                          garbage on the socket, error messages.
  ConntrackDeleteFlushTest  delete and flush, which leave the endpoints with sockets the
                          firewall no longer knows (their retransmissions are dropped for
                          minutes): kept apart so that they cannot disturb the exact counts
                          of the first class.
"""

import ipaddress
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RULES = os.path.join(HERE, "rules", "conntrack.rules")

PORT_A = 8080
PORT_B = 8081
PORT_REJECTED_UDP = 8082
CLIENT4, SERVER4 = "198.51.100.10", "203.0.113.10"
CLIENT6, SERVER6 = "2001:db8:1::10", "2001:db8:2::10"

# conntrack -L layout: tcp      6 TIMEOUT STATE src= dst= sport= dport= [UNREPLIED] src= dst=
# sport= dport= [ASSURED] use=1
LINE_RE = re.compile(
    r"^tcp {6}6 (?P<timeout>\d+) (?P<state>[A-Z_0-9]+) "
    r"src=(?P<osrc>\S+) dst=(?P<odst>\S+) sport=(?P<osport>\d+) dport=(?P<odport>\d+) "
    r"(?P<unreplied>\[UNREPLIED\] )?"
    r"src=(?P<rsrc>\S+) dst=(?P<rdst>\S+) sport=(?P<rsport>\d+) dport=(?P<rdport>\d+) "
    r"(?P<assured>\[ASSURED\] )?use=1$")

# conntrack -E layout: "    [NEW] tcp      6 120 SYN_SENT src=... [UNREPLIED] src=...";
# a DESTROY line may leave out the timeout and the state, as conntrack -E does.
EVENT_RE = re.compile(
    r"^\s*\[(?P<event>NEW|UPDATE|DESTROY)\] tcp {6}6 (?:(?P<timeout>\d+) )?"
    r"(?:(?P<state>[A-Z][A-Z_0-9]+) )?"
    r"src=(?P<osrc>\S+) dst=(?P<odst>\S+) sport=(?P<osport>\d+) dport=(?P<odport>\d+) "
    r"(?P<rest>.*)$")

LIST_SUMMARY_RE = re.compile(r"seqwall: (\d+) flow entr(?:y has|ies have) been shown\.")
DELETE_SUMMARY_RE = re.compile(r"seqwall: (\d+) flow entr(?:y has|ies have) been deleted\.")
FLUSH_RE = re.compile(r"seqwall: connection tracking table has been emptied \((\d+) entr(?:y|ies)\)\.")

# conntrack -L -o extended with accounting: the family's columns, then packets and bytes after
# each direction's tuple.
EXTENDED_RE = re.compile(
    r"^(?P<family>ipv4 {5}2|ipv6 {5}10) tcp {6}6 (?P<timeout>\d+) (?P<state>[A-Z_0-9]+) "
    r"src=(?P<osrc>\S+) dst=(?P<odst>\S+) sport=(?P<osport>\d+) dport=(?P<odport>\d+) "
    r"packets=(?P<opackets>\d+) bytes=(?P<obytes>\d+) (?P<unreplied>\[UNREPLIED\] )?"
    r"src=(?P<rsrc>\S+) dst=(?P<rdst>\S+) sport=(?P<rsport>\d+) dport=(?P<rdport>\d+) "
    r"packets=(?P<rpackets>\d+) bytes=(?P<rbytes>\d+) (?P<assured>\[ASSURED\] )?use=1$")

_SCAPY = {"checked": False, "problem": None}


def scapy_problem():
    if not _SCAPY["checked"]:
        _SCAPY["problem"] = lab.scapy_problem()
        _SCAPY["checked"] = True
    return _SCAPY["problem"]


def compressed(addr):
    return ipaddress.ip_address(addr).compressed


def conn_key(c):
    """A connection of ours: (family, source port, destination port)."""
    return (c.family, c.sport, c.port)


def entry_key(e):
    """The same key for a JSON entry or event."""
    o = e.get("orig", {})
    return ({"ipv4": 4, "ipv6": 6}.get(e.get("family")), o.get("sport"), o.get("dport"))


def line_key(m):
    """The same key for a LINE_RE / EVENT_RE match."""
    return (6 if ":" in m.group("osrc") else 4, int(m.group("osport")), int(m.group("odport")))


def one_line(text):
    """The text is exactly one non-empty line (trailing newline allowed)."""
    lines = text.rstrip("\n").split("\n")
    return len(lines) == 1 and lines[0].strip() != ""


class ConntrackLabMixin:
    """One gateway lab per class; CLI helpers."""

    SPORT_BASE = 45000
    MODE = lab.GATEWAY
    RULES = RULES
    SERVER_PORTS = (PORT_A, PORT_B)

    # -- CLI --

    def cli(self, args, timeout=10):
        return self.lab.daemon.cli(list(args), check=False, timeout=timeout)

    def ct(self, args, timeout=10):
        return self.cli(["conntrack"] + list(args), timeout=timeout)

    def ct_json(self, filters=()):
        cp = self.ct(["list"] + list(filters) + ["-o", "json"])
        self.assertEqual(cp.returncode, 0, f"conntrack list {filters} -o json failed: "
                                           f"{cp.stderr.strip()}")
        try:
            data = json.loads(cp.stdout)
        except ValueError:
            self.fail(f"conntrack list {filters} -o json printed no JSON: {cp.stdout!r}")
        self.assertIsInstance(data, list, cp.stdout)
        m = LIST_SUMMARY_RE.search(cp.stderr)
        self.assertIsNotNone(m, f"no summary on stderr of conntrack list {filters} -o json: "
                                f"{cp.stderr!r}")
        self.assertEqual(int(m.group(1)), len(data),
                         f"summary {m.group(0)!r} but {len(data)} entries printed")
        return data

    def ct_count(self, filters=()):
        cp = self.ct(["count"] + list(filters))
        self.assertEqual(cp.returncode, 0, f"conntrack count {filters} failed: "
                                           f"{cp.stderr.strip()}")
        self.assertRegex(cp.stdout.strip(), r"^\d+$",
                         f"conntrack count {filters} printed {cp.stdout!r}")
        return int(cp.stdout.strip())

    def ct_lines(self, filters=()):
        """(lines, summary count) of `conntrack list` in the default line layout."""
        cp = self.ct(["list"] + list(filters))
        self.assertEqual(cp.returncode, 0, f"conntrack list {filters} failed: "
                                           f"{cp.stderr.strip()}")
        m = LIST_SUMMARY_RE.search(cp.stderr)
        self.assertIsNotNone(m, f"no summary on stderr of conntrack list {filters}: "
                                f"{cp.stderr!r}")
        self.assertNotIn("flow entr", cp.stdout, "the summary belongs on stderr")
        lines = [ln for ln in cp.stdout.splitlines() if ln.strip()]
        return lines, int(m.group(1))

    def wait_count(self, want, filters=(), timeout=5.0):
        return lab.wait_for(lambda: self.ct_count(filters) == want, timeout, 0.2)

    def wait_empty(self, timeout=12.0):
        """Wait for the table to empty (TIME_WAIT is 2 s in conntrack.rules)."""
        if not self.wait_count(0, timeout=timeout):
            self.fail(f"precondition: the table did not empty within {timeout} s: "
                      f"{self.ct_json()}")

    def stats(self):
        return self.lab.daemon.stats()

    # -- connections --

    def open_conn(self, family, port, timeout=3.0):
        """A connection from the client to the server that carries data (so it is
        ESTABLISHED); aborted at cleanup if the test did not close it."""
        c = self.lab.connect("client", self.lab.server_addr(family), port, timeout=timeout)
        self.addCleanup(lambda: c.proc.poll() is None and c.abort())
        self.assertTrue(c.connected, f"connect to [{self.lab.server_addr(family)}]:{port} "
                                     f"failed: {c.error}")
        payload = f"hello {c.sport}".encode()
        self.assertEqual(c.send(payload), b"echo:" + payload)
        c.family, c.port = family, port
        return c

    def wait_established(self, conns, timeout=5.0):
        want = {conn_key(c) for c in conns}

        def ok():
            ents = self.ct_json()
            got = {entry_key(e) for e in ents if e.get("state") == "ESTABLISHED"}
            return want <= got
        if not lab.wait_for(ok, timeout, 0.2):
            self.fail(f"connections {sorted(want)} not ESTABLISHED in the table: "
                      f"{self.ct_json()}")

    # -- checks --

    def assert_entry(self, e, c):
        """A JSON entry is connection c, client -> server, ESTABLISHED."""
        cli, srv = self.lab.client_addr(c.family), self.lab.server_addr(c.family)
        o, r = e.get("orig", {}), e.get("reply", {})
        self.assertEqual(e.get("proto"), "tcp", e)
        self.assertEqual(e.get("family"), "ipv4" if c.family == 4 else "ipv6", e)
        self.assertEqual(e.get("state"), "ESTABLISHED", e)
        self.assertTrue(lab.addr_eq(o.get("src"), cli), f"orig src: {e}")
        self.assertTrue(lab.addr_eq(o.get("dst"), srv), f"orig dst: {e}")
        self.assertEqual((o.get("sport"), o.get("dport")), (c.sport, c.port), e)
        self.assertTrue(lab.addr_eq(r.get("src"), srv), f"reply src: {e}")
        self.assertTrue(lab.addr_eq(r.get("dst"), cli), f"reply dst: {e}")
        self.assertEqual((r.get("sport"), r.get("dport")), (c.port, c.sport), e)
        self.assertIs(e.get("assured"), True, e)
        self.assertIs(e.get("unreplied"), False, e)
        self.assertEqual(e.get("direction"), "in", e)
        self.assertGreater(e.get("timeout", 0), 300, e)
        self.assertLessEqual(e.get("timeout", 10 ** 9), 5 * 86400, e)
        for key in ("packets", "bytes"):
            self.assertGreater(e.get(key, {}).get("orig", 0), 0, e)
            self.assertGreater(e.get(key, {}).get("reply", 0), 0, e)
        for side in ("orig", "reply"):
            w = e.get("window", {}).get(side)
            self.assertIsInstance(w, dict, f"window.{side} missing: {e}")
            for field in ("end", "maxend", "maxwin", "scale", "sack_permitted"):
                self.assertIn(field, w, f"window.{side}.{field} missing: {e}")

    def assert_line(self, line, c):
        """A list line is connection c in the conntrack -L layout."""
        m = LINE_RE.match(line)
        self.assertIsNotNone(m, f"not the conntrack -L layout: {line!r}")
        cli = compressed(self.lab.client_addr(c.family))
        srv = compressed(self.lab.server_addr(c.family))
        self.assertEqual(m.group("state"), "ESTABLISHED", line)
        self.assertEqual((m.group("osrc"), m.group("odst"), int(m.group("osport")),
                          int(m.group("odport"))), (cli, srv, c.sport, c.port), line)
        self.assertEqual((m.group("rsrc"), m.group("rdst"), int(m.group("rsport")),
                          int(m.group("rdport"))), (srv, cli, c.port, c.sport), line)
        self.assertIsNone(m.group("unreplied"), line)
        self.assertIsNotNone(m.group("assured"), line)
        self.assertGreater(int(m.group("timeout")), 300, line)

    def check_filter(self, filters, expected, conns):
        """list -o json, list (line) and count with these filters select exactly `expected`
        (a list of connections) out of `conns`."""
        by_key = {conn_key(c): c for c in conns}
        want = sorted(conn_key(c) for c in expected)
        with self.subTest(filters=" ".join(filters)):
            ents = self.ct_json(filters)
            got = sorted(entry_key(e) for e in ents)
            self.assertEqual(got, want, f"list {filters} -o json: {ents}")
            for e in ents:
                self.assert_entry(e, by_key[entry_key(e)])
            lines, summary = self.ct_lines(filters)
            self.assertEqual(summary, len(want), f"list {filters}: summary says {summary}")
            self.assertEqual(len(lines), len(want), f"list {filters}:\n" + "\n".join(lines))
            for ln in lines:
                m = LINE_RE.match(ln)
                self.assertIsNotNone(m, f"list {filters}: not the conntrack -L layout: {ln!r}")
                self.assertIn(line_key(m), want, f"list {filters}: unexpected line {ln!r}")
                self.assert_line(ln, by_key[line_key(m)])
            self.assertEqual(sorted(line_key(LINE_RE.match(ln)) for ln in lines), want, f"list {filters}:\n" + "\n".join(lines))
            self.assertEqual(self.ct_count(filters), len(want), f"count {filters}")


# ---------------------------------------------------------------------------------------------

class ConntrackCLITest(ConntrackLabMixin, lab.LabTestCase):
    SPORT_BASE = 45000

    # -- 1 --

    def test_1_list_count_and_filters_ipv4(self):
        """Three held-open IPv4 connections (two to 8080, one to 8081): count, list -o json,
        the line layout and every filter select exactly the expected ones."""
        self.wait_empty()
        a1 = self.open_conn(4, PORT_A)
        a2 = self.open_conn(4, PORT_A)
        b = self.open_conn(4, PORT_B)
        conns = [a1, a2, b]
        self.wait_established(conns)
        self.assertEqual(self.ct_count(), 3, self.ct_json())

        cases = [
            ((), conns),
            (("-p", "tcp"), conns),
            (("--dport", str(PORT_A)), [a1, a2]),
            (("--dport", str(PORT_B)), [b]),
            (("--sport", str(a1.sport)), [c for c in conns if c.sport == a1.sport]),
            (("--sport", str(b.sport), "--dport", str(PORT_A)),
             [c for c in conns if c.sport == b.sport and c.port == PORT_A]),
            (("--sport", str(a2.sport), "--dport", str(PORT_A)), [a2]),
            (("-s", CLIENT4), conns),
            (("-s", "198.51.100.0/24"), conns),
            (("-s", "198.51.100.128/25"), []),
            (("-s", SERVER4), []),
            (("-d", SERVER4), conns),
            (("-d", "203.0.113.0/24"), conns),
            (("-d", "203.0.113.0/29"), []),
            (("-d", SERVER4, "--dport", str(PORT_B)), [b]),
            (("--state", "ESTABLISHED"), conns),
            (("--state", "SYN_SENT"), []),
            (("--state", "TIME_WAIT"), []),
            (("-f", "ipv4"), conns),
            (("-f", "ipv6"), []),
        ]
        for filters, expected in cases:
            self.check_filter(list(filters), expected, conns)

        for c in conns:
            self.assertEqual(c.close(), b"")
        # Closed connections are no longer ESTABLISHED.
        self.assertTrue(self.wait_count(0, ("--state", "ESTABLISHED")),
                        f"still ESTABLISHED after close: {self.ct_json()}")

    def test_1b_list_and_filters_ipv6(self):
        """Two IPv6 connections and one IPv4: -f, -s/-d with IPv6 addresses and prefixes,
        IPv6 addresses in compressed form in the line layout."""
        self.wait_empty()
        v6a = self.open_conn(6, PORT_A)
        v6b = self.open_conn(6, PORT_B)
        v4 = self.open_conn(4, PORT_A)
        conns = [v6a, v6b, v4]
        self.wait_established(conns)
        self.assertEqual(self.ct_count(), 3, self.ct_json())

        cases = [
            (("-f", "ipv6"), [v6a, v6b]),
            (("-f", "ipv4"), [v4]),
            (("-s", CLIENT6), [v6a, v6b]),
            (("-s", "2001:db8:1::/64"), [v6a, v6b]),
            (("-s", "2001:db8:1::/48"), [v6a, v6b]),
            (("-s", "2001:db8:2::/64"), []),
            (("-d", SERVER6), [v6a, v6b]),
            (("-d", "2001:db8:2::/64", "--dport", str(PORT_B)), [v6b]),
            (("-d", "2001:db8:2::/64", "--sport", str(v6a.sport)),
             [c for c in conns if c.family == 6 and c.sport == v6a.sport]),
            (("-s", "198.51.100.0/24"), [v4]),
            (("-f", "ipv6", "--dport", str(PORT_A)), [v6a]),
            (("-f", "ipv6", "--state", "ESTABLISHED"), [v6a, v6b]),
        ]
        for filters, expected in cases:
            self.check_filter(list(filters), expected, conns)

        for c in conns:
            self.assertEqual(c.close(), b"")

    # -- 2 --

    def _start_watcher(self, fmt, extra=(), name=None):
        d = self.lab.daemon
        log = os.path.join(self.lab.workdir, f"watch-{name or fmt}.stderr")
        proc = lab.spawn(d.ns, [lab.SEQWALL_BIN, "conntrack", "watch", "-o", fmt,
                                "--control", d.control] + list(extra), log)
        self.addCleanup(lambda: lab.REGISTRY.kill_proc(proc, grace=1.0))
        lines = []

        def reader():
            for raw in iter(proc.stdout.readline, b""):
                lines.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))
        threading.Thread(target=reader, daemon=True).start()
        return proc, lines, log

    @staticmethod
    def _json_events(lines, sport, dport):
        out = []
        for _, ln in lines:
            try:
                ev = json.loads(ln)
            except ValueError:
                continue
            if isinstance(ev, dict) and entry_key(ev)[1:] == (sport, dport):
                out.append(ev)
        return out

    @staticmethod
    def _line_events(lines, sport, dport):
        out = []
        for _, ln in lines:
            m = EVENT_RE.match(ln)
            if m and line_key(m)[1:] == (sport, dport):
                out.append((m, ln))
        return out

    def _bad_json_lines(self, lines):
        bad = []
        for _, ln in lines:
            try:
                ev = json.loads(ln)
                if not isinstance(ev, dict) or ev.get("event") not in ("new", "update",
                                                                        "destroy"):
                    bad.append(ln)
            except ValueError:
                bad.append(ln)
        return bad

    def test_2_watch_shows_new_update_destroy(self):
        """Two watchers at once (json and line); one connection opened, used, closed, then
        expired from TIME_WAIT (2 s): both show NEW SYN_SENT, UPDATEs through SYN_RECV,
        ESTABLISHED and TIME_WAIT, then DESTROY, in order; watch runs until SIGINT/SIGTERM."""
        pj, jlines, jlog = self._start_watcher("json")
        pl, llines, llog = self._start_watcher("line")
        time.sleep(0.5)
        for proc, log in ((pj, jlog), (pl, llog)):
            if proc.poll() is not None:
                with open(log, errors="replace") as f:
                    err = f.read().strip()
                self.fail(f"`seqwall conntrack watch` exited at once with {proc.returncode}: "
                          f"{err}")

        # Sentinel connection: once both watchers report it, they are subscribed.
        s = self.open_conn(4, PORT_B)
        ready = lab.wait_for(lambda: self._json_events(jlines, s.sport, PORT_B)
                             and self._line_events(llines, s.sport, PORT_B), 5.0, 0.1)
        self.assertTrue(ready, f"watchers printed nothing for a new connection within 5 s; "
                               f"json: {[x for _, x in jlines]}; line: {[x for _, x in llines]}")
        self.assertEqual(s.close(), b"")

        cli, srv = CLIENT4, SERVER4
        c = self.open_conn(4, PORT_A)
        self.assertEqual(c.send(b"more data"), b"echo:more data")
        self.assertEqual(c.close(), b"")
        sp = c.sport

        def destroyed():
            return (any(e.get("event") == "destroy" for e in self._json_events(jlines, sp, PORT_A))
                    and any(m.group("event") == "DESTROY"
                            for m, _ in self._line_events(llines, sp, PORT_A)))
        lab.wait_for(destroyed, 10.0, 0.2)
        time.sleep(0.3)  # anything (wrongly) printed after DESTROY
        jev = self._json_events(jlines, sp, PORT_A)
        lev = self._line_events(llines, sp, PORT_A)
        jtext = "\n".join(x for _, x in jlines)
        ltext = "\n".join(x for _, x in llines)

        # -- JSON watcher --
        self.assertEqual(self._bad_json_lines(jlines), [],
                         "watch -o json printed lines that are not event objects")
        kinds = [e.get("event") for e in jev]
        self.assertTrue(kinds, f"json watcher: no events for sport {sp}:\n{jtext}")
        self.assertEqual(kinds[0], "new", f"first event is not new: {kinds}\n{jtext}")
        self.assertEqual(kinds.count("new"), 1, f"{kinds}\n{jtext}")
        self.assertEqual(kinds[-1], "destroy", f"last event is not destroy: {kinds}\n{jtext}")
        self.assertEqual(kinds.count("destroy"), 1, f"{kinds}\n{jtext}")
        self.assertTrue(all(k == "update" for k in kinds[1:-1]), f"{kinds}\n{jtext}")
        new = jev[0]
        self.assertEqual(new.get("proto"), "tcp", new)
        self.assertEqual(new.get("state"), "SYN_SENT", new)
        self.assertIs(new.get("unreplied"), True, new)
        self.assertTrue(0 < new.get("timeout", 0) <= 120, new)
        for e in jev:
            o, r = e.get("orig", {}), e.get("reply", {})
            self.assertTrue(lab.addr_eq(o.get("src"), cli) and lab.addr_eq(o.get("dst"), srv)
                            and o.get("dport") == PORT_A, f"orig tuple: {e}")
            self.assertTrue(lab.addr_eq(r.get("src"), srv) and lab.addr_eq(r.get("dst"), cli)
                            and (r.get("sport"), r.get("dport")) == (PORT_A, sp),
                            f"reply tuple: {e}")
        states = [e.get("state") for e in jev if e.get("event") == "update"]
        self.assert_subsequence(["SYN_RECV", "ESTABLISHED", "TIME_WAIT"], states,
                                f"json watcher update states {states}")
        est = [e for e in jev if e.get("event") == "update" and e.get("state") == "ESTABLISHED"]
        self.assertIs(est[0].get("assured"), True, f"ESTABLISHED update not assured: {est[0]}")
        self.assertIs(est[0].get("unreplied"), False, est[0])

        # -- line watcher --
        lkinds = [m.group("event") for m, _ in lev]
        self.assertTrue(lkinds, f"line watcher: no events for sport {sp}:\n{ltext}")
        self.assertEqual([k.upper() for k in kinds], lkinds,
                         f"the two watchers disagree:\njson: {kinds}\nline: {lkinds}")
        m0, l0 = lev[0]
        self.assertEqual(m0.group("state"), "SYN_SENT", l0)
        self.assertIsNotNone(m0.group("timeout"), l0)
        self.assertIn("[UNREPLIED]", l0)
        self.assertEqual((m0.group("osrc"), m0.group("odst"), m0.group("odport")),
                         (cli, srv, str(PORT_A)), l0)
        lstates = [m.group("state") for m, _ in lev if m.group("event") == "UPDATE"]
        self.assertEqual(lstates, states, f"the watchers disagree on states:\n{ltext}")
        for m, ln in lev:
            if m.group("event") == "UPDATE":
                self.assertIsNotNone(m.group("timeout"), f"UPDATE without timeout: {ln!r}")
                self.assertRegex(m.group("rest"), rf"src={srv} dst={cli} sport={PORT_A} "
                                                  rf"dport={sp}\b", ln)

        # -- runs until it is told to stop --
        for proc, sig in ((pj, signal.SIGINT), (pl, signal.SIGTERM)):
            self.assertIsNone(proc.poll(), "watch exited by itself")
            proc.send_signal(sig)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.fail(f"watch did not exit within 3 s of {signal.Signals(sig).name}")

    def assert_subsequence(self, want, got, msg):
        it = iter(got)
        missing = [w for w in want if not any(g == w for g in it)]
        self.assertEqual(missing, [], f"{msg}: expected {want} in this order")

    # -- 5 --

    def test_5_stats_counters_move_exactly(self):
        """3 NULL segments (bad-flags) and 2 stray ACKs (no-connection): seen +5, dropped +5,
        accepted +0, those two reasons exactly, the queue's counters too; then a real
        connection: accepted rises by every packet seen (>= the handshake's 3), none
        dropped, one connection created."""
        problem = scapy_problem()
        if problem:
            self.skipTest(problem)
        self.wait_empty()
        sp = self.SPORT_BASE + 50
        pkts = [{"family": 4, "dst": SERVER4, "sport": sp + i, "dport": PORT_A, "flags": "",
                 "seq": 5000 + i} for i in range(3)]
        pkts += [{"family": 4, "dst": SERVER4, "sport": sp + 3 + i, "dport": PORT_A,
                  "flags": "A", "seq": 7000 + i, "ack": 99999} for i in range(2)]
        before = self.stats()
        self.assertEqual(self.lab.craft(pkts), 5)
        lab.wait_for(lambda: self.stats()["packets"]["dropped"]
                     >= before["packets"]["dropped"] + 5, 5.0, 0.1)
        time.sleep(0.5)
        after = self.stats()

        def delta(*path):
            a, b = after, before
            for k in path:
                a, b = a[k], b[k]
            return a - b
        self.assertEqual(delta("packets", "seen"), 5, f"{before['packets']} -> "
                                                      f"{after['packets']}")
        self.assertEqual(delta("packets", "dropped"), 5, f"{before['packets']} -> "
                                                         f"{after['packets']}")
        self.assertEqual(delta("packets", "accepted"), 0, f"{before['packets']} -> "
                                                          f"{after['packets']}")
        changed = {k: v - before["drops"].get(k, 0) for k, v in after["drops"].items()
                   if v != before["drops"].get(k, 0)}
        self.assertEqual(changed, {"bad-flags": 3, "no-connection": 2},
                         f"drops by reason changed by {changed}")
        q0b = [q for q in before["queues"] if q.get("queue") == self.lab.queue]
        q0a = [q for q in after["queues"] if q.get("queue") == self.lab.queue]
        self.assertEqual((len(q0b), len(q0a)), (1, 1), f"queue {self.lab.queue} not in "
                                                       f"stats: {after['queues']}")
        self.assertEqual(q0a[0]["seen"] - q0b[0]["seen"], 5, f"{q0b} -> {q0a}")
        self.assertEqual(q0a[0]["dropped"] - q0b[0]["dropped"], 5, f"{q0b} -> {q0a}")
        self.assertEqual(delta("connections", "created"), 0, after["connections"])
        self.assertEqual(self.lab.probe.segments(dport=PORT_A,
                                                 sports=set(range(sp, sp + 5))), [],
                         "hand-made segments reached the server")

        # A real connection.
        before = self.stats()
        c = self.open_conn(4, PORT_A)
        sport = c.sport
        self.assertEqual(c.close(), b"")
        # The final ACK has been seen once the entry is in TIME_WAIT (or already gone).
        tup = ["--sport", str(sport), "--dport", str(PORT_A)]
        lab.wait_for(lambda: self.ct_count(tup + ["--state", "TIME_WAIT"]) == 1
                     or self.ct_count(tup) == 0, 5.0, 0.1)
        time.sleep(0.3)
        after = self.stats()
        self.assertGreaterEqual(delta("packets", "accepted"), 3, f"{before['packets']} -> "
                                                                 f"{after['packets']}")
        self.assertEqual(delta("packets", "dropped"), 0, f"{before['packets']} -> "
                                                         f"{after['packets']}")
        self.assertEqual(delta("packets", "seen"), delta("packets", "accepted"),
                         f"{before['packets']} -> {after['packets']}")
        self.assertEqual(delta("connections", "created"), 1, f"{before['connections']} -> "
                                                             f"{after['connections']}")

    # -- 6 --

    def test_6_unprivileged_user_cannot_use_the_socket(self):
        """The control socket is root's with mode 0600; `nobody` gets exit 1 and
        'permission denied' (the socket's own mode refuses it: its directory is opened to
        others for the duration of the test)."""
        d = self.lab.daemon
        st = os.lstat(d.control)
        self.assertTrue(stat.S_ISSOCK(st.st_mode), f"{d.control} is not a socket")
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, oct(stat.S_IMODE(st.st_mode)))
        self.assertEqual(st.st_uid, 0, "control socket not owned by root")
        workdir = self.lab.workdir
        old = stat.S_IMODE(os.stat(workdir).st_mode)
        os.chmod(workdir, 0o711)
        try:
            drop = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
            probe = lab.ns_run(d.ns, drop + [lab.SEQWALL_BIN, "--help"], check=False)
            if probe.returncode != 0:
                self.skipTest(f"cannot run seqwall as nobody: {probe.stderr.strip()}")
            for args in (["stats"], ["conntrack", "list"], ["conntrack", "flush"]):
                with self.subTest(command=" ".join(args)):
                    cp = lab.ns_run(d.ns, drop + [lab.SEQWALL_BIN] + args
                                    + ["--control", d.control], check=False)
                    self.assertEqual(cp.returncode, 1, f"{args} as nobody: {cp}")
                    self.assertTrue(one_line(cp.stderr), f"not one line: {cp.stderr!r}")
                    self.assertIn("permission denied", cp.stderr.lower(), cp.stderr)
                    self.assertEqual(cp.stdout, "", cp.stdout)
        finally:
            os.chmod(workdir, old)
        self.assertTrue(d.running())
        self.assertIn("packets", self.stats())

    # -- 7 --

    def _raw(self, payload, mode="shut", timeout=9.0):
        """Talk to the control socket directly. mode: 'shut' (send, shutdown write side,
        read), 'open' (send, keep writing side open, read), 'close' (send, close at once).
        Returns (lines, closed, elapsed, error)."""
        path = self.lab.daemon.control
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        t0 = time.monotonic()
        err = None
        data = b""
        closed = False
        try:
            s.connect(path)
            try:
                s.sendall(payload)
            except OSError as e:  # the daemon may refuse and close before reading it all
                err = f"send: {e}"
            if mode == "close":
                return [], True, time.monotonic() - t0, err
            if mode == "shut":
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            while True:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    err = "timeout"
                    break
                except (ConnectionResetError, BrokenPipeError) as e:
                    closed, err = True, f"recv: {e}"
                    break
                if not chunk:
                    closed = True
                    break
                data += chunk
        finally:
            s.close()
        return data.decode(errors="replace").splitlines(), closed, time.monotonic() - t0, err

    def assert_refused(self, name, result, max_seconds=8.0):
        lines, closed, elapsed, err = result
        self.assertNotEqual(err, "timeout", f"{name}: the daemon neither answered nor "
                                            f"closed within {elapsed:.1f} s")
        self.assertLessEqual(elapsed, max_seconds, f"{name}: took {elapsed:.1f} s")
        self.assertTrue(closed, f"{name}: the daemon did not close the connection: {lines}")
        self.assertLessEqual(len(lines), 1, f"{name}: more than one answer line: {lines}")
        for ln in lines:
            try:
                obj = json.loads(ln)
            except ValueError:
                self.fail(f"{name}: answer is not JSON: {ln!r}")
            self.assertIs(obj.get("ok"), False, f"{name}: {ln}")
            self.assertIsInstance(obj.get("error"), str, f"{name}: {ln}")
            self.assertTrue(obj["error"].strip(), f"{name}: empty error: {ln}")

    def test_7_garbage_on_the_socket_does_not_hurt_the_daemon(self):
        """Random bytes, bad JSON, a 100 KiB line, half requests (closed, shut, left open)
        and 40 clients at once: each gets one error line or is closed, within ~6 s for the
        one left open; then the daemon still answers and still forwards a new connection."""
        d = self.lab.daemon
        start_log = d.log_size()
        rnd = bytes(b if b != 0x0A else 0x0B for b in os.urandom(2048)) + b"\n"
        cases = [
            ("random bytes", rnd, "shut"),
            ("invalid JSON", b'{"command": "stats"\n', "shut"),
            ("JSON, not an object", b'[1, 2, 3]\n', "shut"),
            ("unknown command", b'{"command": "explode"}\n', "shut"),
            ("empty line", b"\n", "shut"),
            ("100 KiB line", b'{"command": "' + b"a" * (100 * 1024) + b'"}\n', "shut"),
            ("half request, then EOF", b'{"command": "sta', "shut"),
        ]
        for name, payload, mode in cases:
            with self.subTest(case=name):
                self.assert_refused(name, self._raw(payload, mode))
        with self.subTest(case="half request, then close"):
            self._raw(b'{"command": "sta', "close")
        with self.subTest(case="half request left open"):
            # No newline, no EOF: the daemon must answer (time out) or close within ~6 s.
            self.assert_refused("half request left open",
                                self._raw(b'{"command": "stats"', "open", timeout=9.0),
                                max_seconds=7.0)
        with self.subTest(case="40 clients at once"):
            n = 40
            barrier = threading.Barrier(n)
            results = [None] * n

            def client(i):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(10)
                t0 = time.monotonic()
                data, closed, err = b"", False, None
                try:
                    s.connect(d.control)
                    try:
                        barrier.wait(timeout=10)
                    except threading.BrokenBarrierError:
                        pass
                    try:
                        s.sendall(b'{"command":"stats"}\n')
                    except OSError as e:
                        err = f"send: {e}"
                    while True:
                        try:
                            chunk = s.recv(65536)
                        except socket.timeout:
                            err = "timeout"
                            break
                        except OSError as e:
                            closed, err = True, f"recv: {e}"
                            break
                        if not chunk:
                            closed = True
                            break
                        data += chunk
                except OSError as e:
                    err = f"connect: {e}"
                    closed = True
                finally:
                    s.close()
                results[i] = (data.decode(errors="replace").splitlines(), closed,
                              time.monotonic() - t0, err)

            threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(20)
            served = 0
            for i, res in enumerate(results):
                self.assertIsNotNone(res, f"client {i} hung")
                lines, closed, elapsed, err = res
                self.assertNotEqual(err, "timeout", f"client {i}: no answer, not closed")
                self.assertTrue(closed, f"client {i}: not closed: {res}")
                self.assertLessEqual(len(lines), 1, f"client {i}: {lines}")
                for ln in lines:
                    obj = json.loads(ln)
                    self.assertIn("ok", obj, ln)
                    if obj["ok"]:
                        self.assertIn("stats", obj, ln)
                        served += 1
                    else:
                        self.assertTrue(str(obj.get("error", "")).strip(), ln)
            self.assertGreater(served, 0, f"no client of 40 was served: {results}")

        # The daemon is unhurt: running, answering, and still forwarding and tracking.
        self.assertTrue(d.running(), f"seqwall died; log:\n{d.log_text(since=start_log)}")
        before = self.stats()
        c = self.open_conn(4, PORT_A)
        self.assertEqual(c.send(b"after the garbage"), b"echo:after the garbage")
        self.assertEqual(len(self.ct_json(["--sport", str(c.sport), "--dport", str(PORT_A),
                                           "--state", "ESTABLISHED"])), 1)
        self.assertEqual(c.close(), b"")
        after = self.stats()
        self.assertGreaterEqual(after["packets"]["accepted"] - before["packets"]["accepted"], 3)
        self.assertTrue(d.running())

    # -- 8 --

    def test_8_errors_an_operator_can_act_on(self):
        """No daemon: exit 1, 'not running'. Bad filter values for list, count and delete:
        exit 1, one line naming the value, table unchanged. delete without a filter: exit 1."""
        d = self.lab.daemon
        with self.subTest(case="daemon not running"):
            cp = lab.ns_run(d.ns, [lab.SEQWALL_BIN, "stats", "--control", "/nonexistent.sock"],
                            check=False)
            self.assertEqual(cp.returncode, 1, cp)
            self.assertTrue(one_line(cp.stderr), f"not one line: {cp.stderr!r}")
            self.assertIn("not running", cp.stderr, cp.stderr)
            self.assertEqual(cp.stdout, "")
        bad = [
            (["--state", "OPEN"], "OPEN"),
            (["-s", "300.1.1.1"], "300.1.1.1"),
            (["-d", "203.0.113.0/33"], "203.0.113.0/33"),
            (["--dport", "70000"], "70000"),
            (["--sport", "8o80"], "8o80"),
            (["-f", "ipx"], "ipx"),
        ]
        # The table must hold still while it is compared: let the TIME_WAIT entries of earlier
        # tests (2 s) expire first, then hold one live connection that a delete which ignored
        # its bad filter would remove.
        self.wait_empty()
        held = self.open_conn(4, PORT_A)
        self.wait_established([held])
        total = self.ct_count()
        self.assertEqual(total, 1)
        for sub in ("list", "count", "delete"):
            for filters, value in bad:
                with self.subTest(command=sub, filters=" ".join(filters)):
                    cp = self.ct([sub] + filters)
                    self.assertEqual(cp.returncode, 1, f"conntrack {sub} {filters}: {cp}")
                    self.assertTrue(one_line(cp.stderr), f"not one line: {cp.stderr!r}")
                    self.assertIn(value, cp.stderr, f"message does not name {value!r}")
                    self.assertEqual(cp.stdout.strip(), "", cp.stdout)
        with self.subTest(command="delete without a filter"):
            cp = self.ct(["delete"])
            self.assertEqual(cp.returncode, 1, cp)
            self.assertTrue(one_line(cp.stderr), f"not one line: {cp.stderr!r}")
        self.assertEqual(self.ct_count(), total, "a refused delete changed the table")
        self.assertTrue(d.running())


    # -- 9: what conntrack users reach for --

    def send_udp(self, family, port):
        """One datagram from the client to the server's port."""
        server = self.lab.server_addr(family)
        code = ("import socket,sys; s=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else "
                "socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'hello', (sys.argv[1], int(sys.argv[2])))")
        lab.ns_run(self.lab.ns["client"], [sys.executable, "-c", code, server, str(port)])

    def test_9a_extended_listing_and_get(self):
        """list -o extended: the family first and packets/bytes per direction, the same
        figures as the JSON; get finds one exact tuple from either direction and exits 1 for
        a tuple nobody has."""
        self.wait_empty()
        c4 = self.open_conn(4, PORT_A)
        c6 = self.open_conn(6, PORT_B)
        self.wait_established([c4, c6])
        by_key = {entry_key(e): e for e in self.ct_json()}
        cp = self.ct(["list", "-o", "extended"])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        lines = [ln for ln in cp.stdout.splitlines() if ln.strip()]
        self.assertEqual(len(lines), 2, cp.stdout)
        for ln in lines:
            m = EXTENDED_RE.match(ln)
            self.assertIsNotNone(m, f"not the conntrack -o extended layout: {ln!r}")
            family = 6 if m.group("family").startswith("ipv6") else 4
            e = by_key[(family, int(m.group("osport")), int(m.group("odport")))]
            self.assertEqual(m.group("state"), "ESTABLISHED", ln)
            self.assertIsNotNone(m.group("assured"), ln)
            # The connection is idle: the figures are the JSON's, which the same table holds.
            self.assertEqual((int(m.group("opackets")), int(m.group("obytes")),
                              int(m.group("rpackets")), int(m.group("rbytes"))),
                             (e["packets"]["orig"], e["bytes"]["orig"],
                              e["packets"]["reply"], e["bytes"]["reply"]), ln)
            self.assertGreaterEqual(int(m.group("opackets")), 3, ln)
            self.assertGreater(int(m.group("rbytes")), 0, ln)

        for c in (c4, c6):
            cli, srv = self.lab.client_addr(c.family), self.lab.server_addr(c.family)
            for direction, tup in (("original", ["-s", cli, "-d", srv, "--sport", str(c.sport), "--dport", str(c.port)]),
                                   ("reply", ["-s", srv, "-d", cli, "--sport", str(c.port), "--dport", str(c.sport)])):
                with self.subTest(family=c.family, direction=direction):
                    cp = self.ct(["get", "-p", "tcp"] + tup)
                    self.assertEqual(cp.returncode, 0, cp.stderr)
                    lines = [ln for ln in cp.stdout.splitlines() if ln.strip()]
                    self.assertEqual(len(lines), 1, cp.stdout)
                    self.assert_line(lines[0], c)
                    cp = self.ct(["get", "-p", "tcp", "-o", "json"] + tup)
                    self.assertEqual(cp.returncode, 0, cp.stderr)
                    self.assert_entry(json.loads(cp.stdout), c)
        cli, srv = self.lab.client_addr(4), self.lab.server_addr(4)
        for tup in (["-p", "tcp", "-s", cli, "-d", srv, "--sport", str(c4.sport), "--dport", str(PORT_B)],
                    ["-p", "udp", "-s", cli, "-d", srv, "--sport", str(c4.sport), "--dport", str(PORT_A)],
                    ["-p", "tcp", "-s", cli, "-d", "203.0.113.99", "--sport", str(c4.sport), "--dport", str(PORT_A)]):
            with self.subTest(absent=" ".join(tup)):
                cp = self.ct(["get"] + tup)
                self.assertEqual(cp.returncode, 1, cp)
                self.assertEqual(cp.stdout, "")
                self.assertTrue(one_line(cp.stderr), cp.stderr)
                self.assertIn("no connection has this tuple", cp.stderr)
        for c in (c4, c6):
            self.assertEqual(c.close(), b"")

    def test_9b_rejected_udp_flow_shows_as_rejected(self):
        """A datagram a reject rule refused leaves an entry that waits for the port
        unreachable: list shows it [REJECTED] (rejected in JSON), not as an open flow."""
        before = lab.drops(self.stats(), "rule")
        self.send_udp(4, PORT_REJECTED_UDP)
        filters = ["-p", "udp", "--dport", str(PORT_REJECTED_UDP)]
        self.assertTrue(lab.wait_for(lambda: self.ct_count(filters) == 1, 5.0, 0.2),
                        f"no entry for the rejected datagram: {self.ct_json(['-p', 'udp'])}")
        self.assertEqual(lab.drops(self.stats(), "rule") - before, 1)
        [entry] = self.ct_json(filters)
        self.assertIs(entry.get("rejected"), True, entry)
        self.assertIs(entry.get("unreplied"), True, entry)
        self.assertIs(entry.get("assured"), False, entry)
        cp = self.ct(["list"] + filters)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertRegex(cp.stdout.strip(),
                         rf"^udp {{6}}17 \d+ src={CLIENT4} dst={SERVER4} sport=\d+ dport={PORT_REJECTED_UDP} "
                         rf"\[UNREPLIED\] src={SERVER4} dst={CLIENT4} sport={PORT_REJECTED_UDP} dport=\d+ "
                         rf"\[REJECTED\] use=1$")

    def test_9c_watch_filters_events_and_protocol(self):
        """watch -e NEW,DESTROY -p tcp shows a TCP connection's NEW and DESTROY and nothing
        else (no UPDATE, no UDP); watch -e NEW -p udp shows the rejected datagram's NEW only."""
        pt, tlines, tlog = self._start_watcher("json", ["-e", "NEW,DESTROY", "-p", "tcp"], name="tcp")
        pu, ulines, ulog = self._start_watcher("line", ["-e", "new", "-p", "udp"], name="udp")
        time.sleep(0.5)
        for proc, log in ((pt, tlog), (pu, ulog)):
            if proc.poll() is not None:
                with open(log, errors="replace") as f:
                    self.fail(f"watch exited at once with {proc.returncode}: {f.read().strip()}")
        # Subscribed once the TCP watcher reports a sentinel connection.
        s = self.open_conn(4, PORT_B)
        self.assertTrue(lab.wait_for(lambda: self._json_events(tlines, s.sport, PORT_B), 5.0, 0.1),
                        f"the tcp watcher printed nothing: {tlines}")
        self.assertEqual(s.close(), b"")
        c = self.open_conn(4, PORT_A)
        self.assertEqual(c.close(), b"")
        self.send_udp(4, PORT_REJECTED_UDP)
        done = lab.wait_for(lambda: [e.get("event") for e in self._json_events(tlines, c.sport, PORT_A)]
                            == ["new", "destroy"], 10.0, 0.2)
        self.assertTrue(done, f"tcp watcher: {[x for _, x in tlines]}")
        self.assertTrue(lab.wait_for(lambda: any(f"dport={PORT_REJECTED_UDP}" in x for _, x in ulines), 5.0, 0.1),
                        f"udp watcher: {[x for _, x in ulines]}")
        time.sleep(0.5)  # anything (wrongly) printed late
        events = [json.loads(x) for _, x in tlines]
        self.assertTrue(all(e.get("event") in ("new", "destroy") for e in events), events)
        self.assertTrue(all(e.get("proto") == "tcp" for e in events), events)
        udp = [x for _, x in ulines if x.strip()]
        self.assertTrue(udp and all(x.lstrip().startswith("[NEW] udp ") for x in udp), udp)
        self.assertTrue(all("[REJECTED]" in x for x in udp if f"dport={PORT_REJECTED_UDP}" in x), udp)
        for proc in (pt, pu):
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=3)

    def test_9d_options_say_what_they_take(self):
        """-o offers what it accepts; a negative number is a range error, not a missing
        value; an unknown log level lists the levels."""
        d = self.lab.daemon
        cp = self.ct(["list", "--help"])
        self.assertIn("values: line, extended, json", cp.stdout)
        tuple_args = ["-p", "tcp", "-s", CLIENT4, "-d", SERVER4, "--sport", "1", "--dport", "2"]
        for sub, extra in (("list", []), ("watch", []), ("get", tuple_args)):
            with self.subTest(command=sub):
                cp = self.ct([sub, "-o", "text"] + extra)
                self.assertEqual(cp.returncode, 1, cp)
                self.assertIn("'line', 'extended' or 'json'", cp.stderr)
        for args, value in ((["conntrack", "list", "--sport", "-1"], "-1"),
                            (["conntrack", "count", "--dport", "-80"], "-80"),
                            (["run", "--rules", self.RULES, "--queue", "-1"], "-1"),
                            (["run", "--rules", self.RULES, "--state-interval", "-5"], "-5")):
            with self.subTest(args=" ".join(args)):
                cp = lab.ns_run(d.ns, [lab.SEQWALL_BIN] + args, check=False)
                self.assertEqual(cp.returncode, 1, cp)
                self.assertTrue(one_line(cp.stderr), cp.stderr)
                self.assertNotIn("Missing value", cp.stderr)
                self.assertIn(f"'{value}'", cp.stderr)
                self.assertRegex(cp.stderr, r"from \d+ to \d+")
        cp = lab.ns_run(d.ns, [lab.SEQWALL_BIN, "run", "--rules", self.RULES, "--realtime-priority", "-5"], check=False)
        self.assertEqual(cp.returncode, 1, cp)
        self.assertIn("--realtime-priority must be between 1 and 99", cp.stderr)
        cp = lab.ns_run(d.ns, [lab.SEQWALL_BIN, "run", "--rules", self.RULES, "--log-level", "verbose"], check=False)
        self.assertEqual(cp.returncode, 1, cp)
        self.assertIn("use one of trace, debug, info, notice, warning, error, critical", cp.stderr)
        self.assertTrue(d.running())

    def test_9e_rules_check_neither_echoes_a_non_rule_file_nor_accepts_rules_that_cannot_match(self):
        """`include` of a file that is not rules (shaped like /etc/shadow): one error at its
        1:1 quoting at most 24 characters, nothing of its later lines. Rules no packet can
        match are refused at file:line:column."""
        secret = "Zq8nR2aT9Xw1pLkV0mJx7sYbQ3cHfE5u"
        shadow = os.path.join(self.lab.workdir, "shadow-like")
        with open(shadow, "w") as f:
            f.write(f"root:$6${secret}:19700:0:99999:7:::\n")
            f.write(f"daemon:*:19700:0:99999:7:::{secret}\n")
        rules = os.path.join(self.lab.workdir, "includes-shadow.rules")
        with open(rules, "w") as f:
            f.write(f'include "{shadow}"\npass in icmp echo to 2001:db8:2::10\n'
                    "pass in tcp from 198.51.100.0/24 to 2001:db8:2::/64 port 22\n")
        cp = lab.run([lab.SEQWALL_BIN, "rules", "check", rules], check=False)
        self.assertEqual(cp.returncode, 1, cp)
        self.assertEqual(cp.stdout, "")
        lines = cp.stderr.splitlines()
        self.assertEqual(len(lines), 3, cp.stderr)
        self.assertTrue(lines[0].startswith(f"{shadow}:1:1: unknown statement 'root:$6$Zq8nR2aT9Xw1pLkV…'"), lines[0])
        self.assertIn("not a rule, so the rest of this file is not read", lines[0])
        self.assertNotIn(secret[16:], cp.stderr)
        self.assertNotIn("daemon", cp.stderr)
        self.assertRegex(lines[1], rf"^{re.escape(rules)}:2:22: 'icmp echo' is IPv4 only and 2001:db8:2::10 is an IPv6 address")
        self.assertRegex(lines[2], rf"^{re.escape(rules)}:3:37: this rule can never match: every 'from' address is IPv4")


# ---------------------------------------------------------------------------------------------

class ConntrackDeleteFlushTest(ConntrackLabMixin, lab.LabTestCase):
    SPORT_BASE = 46000

    def parse_delete(self, cp):
        """(count from the summary, entry lines) of `conntrack delete`."""
        text = cp.stdout + cp.stderr
        m = DELETE_SUMMARY_RE.search(text)
        self.assertIsNotNone(m, f"no 'N flow entries have been deleted.' summary: "
                                f"stdout {cp.stdout!r} stderr {cp.stderr!r}")
        lines = [ln for ln in cp.stdout.splitlines()
                 if ln.strip() and not DELETE_SUMMARY_RE.search(ln)]
        return int(m.group(1)), lines

    # -- 3 --

    def test_3_delete_live_connection_then_its_packets_drop(self):
        """Delete a live connection by its ports: 1 deleted, count down by 1; data on the
        still-open socket is then dropped as no-connection and never reaches the server."""
        other = self.open_conn(4, PORT_B)   # must survive the delete
        c = self.open_conn(4, PORT_A, timeout=2.0)
        self.wait_established([other, c])
        count_before = self.ct_count()
        self.assertGreaterEqual(count_before, 2)

        tup = ["--sport", str(c.sport), "--dport", str(PORT_A)]
        cp = self.ct(["delete"] + tup)
        self.assertEqual(cp.returncode, 0, f"delete failed: {cp.stderr.strip()}")
        n, lines = self.parse_delete(cp)
        self.assertEqual(n, 1, f"deleted {n}: {cp.stdout!r}")
        if lines:  # the deleted entries, in the line layout (when printed)
            self.assertEqual(len(lines), 1, lines)
            self.assert_line(lines[0], c)
        self.assertEqual(self.ct_count(), count_before - 1)
        self.assertEqual(self.ct_json(tup), [])
        self.assertEqual(len(self.ct_json(["--sport", str(other.sport), "--dport",
                                           str(PORT_B)])), 1,
                         "the delete removed another connection")

        before = self.stats()
        seen_before = len(self.lab.probe.segments(dport=PORT_A, sports={c.sport}))
        with self.assertRaises(AssertionError, msg="the echo came back after the delete"):
            c.send(b"after delete", timeout=2.0)
        lab.wait_for(lambda: lab.drops(self.stats(), "no-connection")
                     > lab.drops(before, "no-connection"), 3.0)
        after = self.stats()
        self.assertGreaterEqual(lab.drops(after, "no-connection")
                                - lab.drops(before, "no-connection"), 1,
                                f"{before['drops']} -> {after['drops']}")
        time.sleep(0.3)
        arrived = self.lab.probe.segments(dport=PORT_A, sports={c.sport})[seen_before:]
        self.assertEqual(arrived, [], "segments of the deleted connection reached the server")
        # It stays deleted: the dropped segments did not bring it back.
        self.assertEqual(self.ct_json(tup), [])
        # The other connection still works.
        self.assertEqual(other.send(b"still here"), b"echo:still here")

    def test_3b_delete_that_matches_nothing_exits_1(self):
        """As conntrack -D: a delete that removes nothing says so and exits 1; the table is
        unchanged."""
        # The aborted connections of test_3 linger in CLOSE for 10 s; let them go, so that
        # test_4 after this one finds a table that holds still.
        self.wait_empty(timeout=20)
        held = self.open_conn(4, PORT_A)
        self.wait_established([held])
        before = self.ct_count()
        cp = self.ct(["delete", "--sport", str(held.sport), "--dport", str(PORT_B)])
        self.assertEqual(cp.returncode, 1, cp)
        n, lines = self.parse_delete(cp)
        self.assertEqual((n, lines), (0, []), cp.stdout)
        self.assertIn("seqwall: no connection matches the filters", cp.stderr)
        self.assertEqual(self.ct_count(), before)
        self.assertEqual(held.send(b"still here"), b"echo:still here")
        # Leave the table as it was: test_4 counts it. The socket's RST at cleanup then finds
        # no entry and makes none.
        cp = self.ct(["delete", "--sport", str(held.sport), "--dport", str(PORT_A)])
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(self.ct_count(), before - 1)

    # -- 4 --

    def test_4_flush_empties_the_table(self):
        """Two live connections, flush: 'emptied (2 entries)', then count 0, list shows 0
        (line and json) and stats' current connections is 0."""
        # Connections the earlier tests closed linger in TIME_WAIT or CLOSE for seconds; one that
        # expires between the counts below would make them disagree. Start from an empty table.
        self.wait_empty(timeout=20)
        base = self.ct_count()
        c1 = self.open_conn(4, PORT_A)
        c2 = self.open_conn(4, PORT_B)
        self.wait_established([c1, c2])
        before = self.ct_count()
        self.assertEqual(before, base + 2)
        cp = self.ct(["flush"])
        self.assertEqual(cp.returncode, 0, f"flush failed: {cp.stderr.strip()}")
        m = FLUSH_RE.search(cp.stdout)
        self.assertIsNotNone(m, f"flush printed {cp.stdout!r}")
        self.assertEqual(int(m.group(1)), before, cp.stdout)
        self.assertEqual(self.ct_count(), 0)
        lines, summary = self.ct_lines()
        self.assertEqual(lines, [])
        self.assertEqual(summary, 0)
        self.assertEqual(self.ct_json(), [])
        self.assertEqual(self.stats()["connections"]["current"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
