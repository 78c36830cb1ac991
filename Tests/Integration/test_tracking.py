"""Exact TCP tracking with real connections: hand-made segments injected into a live
connection between real sockets, gateway mode and host mode, IPv4 and IPv6.

The client (lab.py's client agent) talks to the echo server through seqwall; a scapy agent
(tcpagent.py) in the client namespace injects segments with the connection's own 4-tuple and
live sequence numbers, which it reads from seqwall's table (`conntrack list -o json`:
window.orig.end is the client's next sequence number, window.reply.end the server's). The
same agent watches what comes back to the client. A second agent in the server namespace
injects segments from the server's side. The probe in the server namespace logs
what the server's stack was handed (after the firewall), so a dropped segment is shown not
to arrive. Rules: rules/tracking.rules (gateway) and rules/tracking-host.rules (host).
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402
import tcpagent  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GATEWAY_RULES = os.path.join(HERE, "rules", "tracking.rules")
HOST_RULES = os.path.join(HERE, "rules", "tracking-host.rules")

PORT = 8080
M32 = 1 << 32
# Far outside any window these connections open (their windows stay below 2^24), far inside
# 2^31, so that "after" and "before" in sequence space are unambiguous.
FAR = 1 << 28


class TrackingTests:
    """Mixed into one LabTestCase per mode and address family."""

    MODE = None
    FAMILY = None
    SERVER_PORTS = (PORT,)
    CLIENT_PORTS = ()
    agent = None
    server_agent = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        problem = lab.scapy_problem()
        if problem:
            cls.tearDownClass()
            raise unittest.SkipTest(problem)
        try:
            cls.agent = tcpagent.Agent(lab, cls.lab.ns["client"], "eth0",
                                       os.path.join(cls.lab.workdir, "tcpagent.stderr"))
            cls.server_agent = tcpagent.Agent(lab, cls.lab.ns["server"], "eth0",
                                              os.path.join(cls.lab.workdir,
                                                           "tcpagent-server.stderr"))
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for name in ("agent", "server_agent"):
            agent = getattr(cls, name)
            if agent is not None:
                agent.stop()
                setattr(cls, name, None)
        super().tearDownClass()

    # -- helpers --

    def setUp(self):
        super().setUp()
        self.client = self.lab.client_addr(self.FAMILY)
        self.server = self.lab.server_addr(self.FAMILY)

    def entry(self, sport):
        for e in self.lab.daemon.conntrack():
            o = e.get("orig", {})
            if (o.get("sport") == sport and o.get("dport") == PORT
                    and lab.addr_eq(o.get("src"), self.client)):
                return e
        return None

    def open_connection(self):
        """A live connection that has carried data both ways; returns (conn, its entry)."""
        c = self.lab.connect("client", self.server, PORT, timeout=5.0)
        self.addCleanup(lambda: c.proc.poll() is None and c.abort())
        self.assertTrue(c.connected, f"connect to [{self.server}]:{PORT} failed: {c.error}")
        payload = f"hello from {c.sport}".encode()
        self.assertEqual(c.send(payload), b"echo:" + payload)
        e = lab.wait_for(lambda: (lambda x: x if x and x.get("state") == "ESTABLISHED"
                                  else None)(self.entry(c.sport)), 5.0, 0.1)
        self.assertIsNotNone(e, f"connection not ESTABLISHED in the table: "
                                f"{self.lab.daemon.conntrack()}")
        self.assertIn("window", e, f"conntrack list -o json shows no window data: {e}")
        return c, e

    def segment(self, c, flags, seq, ack=0, length=0, data=None, win=502):
        pkt = {"family": self.FAMILY, "src": self.client, "dst": self.server,
               "sport": c.sport, "dport": PORT, "flags": flags, "seq": seq % M32,
               "ack": ack % M32, "win": win, "len": length}
        if data is not None:
            pkt["data"] = data.hex()
        return pkt

    def server_segment(self, c, flags, seq, ack=0, win=502):
        """A segment from the server's side of connection c (the reply direction)."""
        return {"family": self.FAMILY, "src": self.server, "dst": self.client,
                "sport": PORT, "dport": c.sport, "flags": flags, "seq": seq % M32,
                "ack": ack % M32, "win": win, "len": 0}

    def inject(self, pkt):
        self.agent.send(pkt)

    def inject_from_server(self, pkt):
        self.server_agent.send(pkt)

    def reached_client(self, c, seq, flags, since=0):
        """Segments from the server with this sequence number and flags the client got."""
        return [p for p in self.agent.arrivals(PORT, c.sport)[since:]
                if p["seq"] == seq % M32 and p["flags"] & 0x3F == flags]

    def arrived(self, c, seq, flags=None, length=None, ack=None):
        """Segments with this sequence number (and flags, length, ack) the server's stack
        got."""
        out = []
        for s in self.lab.probe.segments(dport=PORT, sports={c.sport}):
            if s["seq"] != seq % M32:
                continue
            if ack is not None and s["ack"] != ack % M32:
                continue
            if flags is not None and s["flags"] & 0x3F != flags:
                continue
            if length is not None and s["len"] != length:
                continue
            out.append(s)
        return out

    def assert_dropped(self, c, pkt, reason, before, log_start, flags):
        """pkt was dropped by seqwall for reason, logged, and never reached the server."""
        d = self.lab.daemon
        lab.wait_for(lambda: lab.drops(d.stats(), reason) > lab.drops(before, reason), 5.0)
        time.sleep(0.5)  # anything still in flight would reach the probe by now
        after = d.stats()
        self.assertEqual(lab.drops(after, reason) - lab.drops(before, reason), 1,
                         f"`{reason}` did not rise by exactly one: {before['drops']} -> "
                         f"{after['drops']}")
        self.assertEqual(after["packets"]["dropped"] - before["packets"]["dropped"], 1,
                         f"{before['packets']} -> {after['packets']}")
        self.assertEqual(self.arrived(c, pkt["seq"], flags, ack=pkt["ack"]), [],
                         f"the dropped segment reached the server: {pkt}")
        log = d.log_text(since=log_start)
        self.assertTrue(any(f"reason={reason}" in ln and f"seq={pkt['seq']} " in ln
                            for ln in log.splitlines()),
                        f"no log line with reason={reason} and seq={pkt['seq']}:\n{log}")

    def assert_carries_data(self, c, what):
        payload = f"still alive after {what}".encode()
        self.assertEqual(c.send(payload), b"echo:" + payload,
                         f"the connection no longer carries data after {what}")

    # -- tests --

    def test_1_out_of_window_data_never_reaches_server(self):
        c, e = self.open_connection()
        w = e["window"]
        before, log_start = self.lab.daemon.stats(), self.lab.daemon.log_size()
        pkt = self.segment(c, "PA", w["orig"]["maxend"] + FAR, w["reply"]["end"],
                           data=b"injected beyond the window")
        self.inject(pkt)
        self.assert_dropped(c, pkt, "seq-above-window", before, log_start, 0x18)
        self.assert_carries_data(c, "out-of-window data")
        self.assertEqual(self.entry(c.sport)["state"], "ESTABLISHED")
        self.assertEqual(c.close(), b"")

    def test_2_blind_rst_with_wrong_sequence_is_dropped(self):
        c, e = self.open_connection()
        w = e["window"]
        for name, seq in (("above the window", w["orig"]["end"] + FAR),
                          ("below the window", w["orig"]["end"] - FAR)):
            with self.subTest(rst=name):
                before, log_start = self.lab.daemon.stats(), self.lab.daemon.log_size()
                pkt = self.segment(c, "R", seq, win=0)
                self.inject(pkt)
                self.assert_dropped(c, pkt, "rst-out-of-window", before, log_start, 0x04)
                e2 = self.entry(c.sport)
                self.assertIsNotNone(e2, "a blind RST removed the connection")
                self.assertEqual(e2["state"], "ESTABLISHED", e2)
        self.assert_carries_data(c, "two blind RSTs")
        # Both ways: the server's echo came back, and a second exchange works too.
        self.assert_carries_data(c, "the first exchange")
        self.assertEqual(c.close(), b"")

    def test_3_ack_for_data_never_sent_is_dropped(self):
        c, e = self.open_connection()
        w = e["window"]
        before, log_start = self.lab.daemon.stats(), self.lab.daemon.log_size()
        pkt = self.segment(c, "A", w["orig"]["end"], w["reply"]["end"] + (1 << 20))
        self.inject(pkt)
        self.assert_dropped(c, pkt, "ack-above-sent", before, log_start, 0x10)
        # A dropped ACK above sent changes nothing: the windows are as before.
        self.assertEqual(self.entry(c.sport)["window"], w)
        self.assert_carries_data(c, "an ACK for unsent data")
        self.assertEqual(c.close(), b"")

    def test_4_retransmission_of_acknowledged_data_passes_without_changing_state(self):
        c, _ = self.open_connection()
        data = b"data that will be retransmitted"
        self.assertEqual(c.send(data), b"echo:" + data)
        time.sleep(0.3)  # the client's ACK of the echo
        e = self.entry(c.sport)
        w = e["window"]
        seq = w["orig"]["end"] - len(data)
        self.assertEqual(len(self.arrived(c, seq, length=len(data))), 1,
                         "the original data segment is not in the probe's log")
        before = self.lab.daemon.stats()
        cases = [("the last segment again", self.segment(c, "PA", seq, w["reply"]["end"],
                                                         data=data)),
                 ("an ancient segment far below the window",
                  self.segment(c, "PA", w["orig"]["end"] - FAR, w["reply"]["end"],
                               data=b"ancient"))]
        for name, pkt in cases:
            self.inject(pkt)
        got = lab.wait_for(lambda: len(self.arrived(c, seq, length=len(data))) == 2
                           and self.arrived(c, cases[1][1]["seq"]), 5.0)
        after = self.lab.daemon.stats()
        self.assertTrue(got, f"a retransmission did not reach the server: "
                             f"{self.lab.probe.segments(dport=PORT, sports={c.sport})}")
        self.assertEqual(after["packets"]["dropped"] - before["packets"]["dropped"], 0,
                         f"{before['drops']} -> {after['drops']}")
        e2 = self.entry(c.sport)
        self.assertEqual(e2["state"], "ESTABLISHED", e2)
        for side in ("orig", "reply"):
            self.assertEqual(e2["window"][side]["end"], w[side]["end"],
                             f"a retransmission moved {side}.end: {w} -> {e2['window']}")
        self.assert_carries_data(c, "retransmissions")
        self.assertEqual(c.close(), b"")

    def assert_exact_rst_closes(self, c, seq, what):
        """An RST from the client at seq reaches the server, nothing is dropped, and the
        entry goes to CLOSE (or away)."""
        before = self.lab.daemon.stats()
        self.inject(self.segment(c, "R", seq, win=0))
        self.assertTrue(lab.wait_for(lambda: self.arrived(c, seq, 0x04), 5.0),
                        f"{what} did not reach the server")
        gone = lab.wait_for(lambda: (lambda x: x is None or x["state"] == "CLOSE")(
            self.entry(c.sport)), 5.0)
        self.assertTrue(gone, f"entry after {what}: {self.entry(c.sport)}")
        after = self.lab.daemon.stats()
        self.assertEqual(after["packets"]["dropped"] - before["packets"]["dropped"], 0,
                         f"{before['drops']} -> {after['drops']}")

    def test_5_exact_rst_closes_the_connection(self):
        c, e = self.open_connection()
        self.assert_exact_rst_closes(c, e["window"]["orig"]["end"], "an exact RST")
        c.abort()

    def test_6_in_window_rst_that_is_not_exact_keeps_the_connection(self):
        """RFC 5961 3.2: an RST inside the window but not at the next sequence number is
        answered by a challenge ACK and does not close anything; the kernel keeps the state
        for the same reason."""
        c, e = self.open_connection()
        w = e["window"]
        seq = w["orig"]["end"] + 100
        earlier = len(self.agent.arrivals(PORT, c.sport))
        self.inject(self.segment(c, "R", seq, win=0))
        self.assertTrue(lab.wait_for(lambda: self.arrived(c, seq, 0x04), 5.0),
                        "an in-window RST did not reach the server")
        # The server's challenge ACK crosses the firewall back to the client.
        challenge = lab.wait_for(
            lambda: [p for p in self.agent.arrivals(PORT, c.sport)[earlier:]
                     if p["flags"] & 0x3F == 0x10 and p["ack"] == w["orig"]["end"]], 5.0)
        self.assertTrue(challenge, "no challenge ACK from the server reached the client")
        self.assertEqual(self.entry(c.sport)["state"], "ESTABLISHED")
        self.assert_carries_data(c, "an in-window RST")
        self.assertEqual(c.close(), b"")

    def test_6b_syn_in_established_draws_challenge_ack_and_changes_nothing(self):
        """A SYN on a live connection's tuple (a restarted client, or a blind attacker) is
        ignored as the kernel ignores it: it passes, the server answers with a challenge ACK
        (RFC 5961 4) that crosses back, and the connection and its windows are untouched."""
        c, e = self.open_connection()
        w = e["window"]
        isn = (w["orig"]["end"] + FAR) % M32
        earlier = len(self.agent.arrivals(PORT, c.sport))
        before = self.lab.daemon.stats()
        self.inject(self.segment(c, "S", isn, win=64240))
        self.assertTrue(lab.wait_for(lambda: self.arrived(c, isn, 0x02), 5.0),
                        "the SYN did not reach the server")
        challenge = lab.wait_for(
            lambda: [p for p in self.agent.arrivals(PORT, c.sport)[earlier:]
                     if p["flags"] & 0x3F == 0x10 and p["ack"] == w["orig"]["end"]
                     and p["seq"] == w["reply"]["end"]], 5.0)
        self.assertTrue(challenge, "no challenge ACK from the server reached the client: "
                                   f"{self.agent.arrivals(PORT, c.sport)[earlier:]}")
        after = self.lab.daemon.stats()
        self.assertEqual(after["packets"]["dropped"] - before["packets"]["dropped"], 0,
                         f"{before['drops']} -> {after['drops']}")
        e2 = self.entry(c.sport)
        self.assertEqual(e2["state"], "ESTABLISHED", e2)
        for side in ("orig", "reply"):
            self.assertEqual(e2["window"][side]["end"], w[side]["end"], e2)
        self.assert_carries_data(c, "a SYN in ESTABLISHED")
        self.assertEqual(c.close(), b"")

    def wait_time_wait(self, c):
        tw = lab.wait_for(lambda: (lambda x: x if x and x["state"] == "TIME_WAIT" else None)(
            self.entry(c.sport)), 5.0)
        self.assertIsNotNone(tw, f"no TIME_WAIT after a clean close: {self.entry(c.sport)}")
        return tw

    def test_7_rst_to_the_endpoint_in_time_wait_is_dropped(self):
        """RFC 1337: the client closed first, so its socket is in TIME_WAIT; an RST addressed
        to it (here an exact one from the server's side) is dropped (stricter than the
        kernel: docs/design.md, RSTs and TIME_WAIT) and never reaches it."""
        c, e = self.open_connection()
        self.assertEqual(c.close(), b"")
        tw = self.wait_time_wait(c)
        before, log_start = self.lab.daemon.stats(), self.lab.daemon.log_size()
        earlier = len(self.agent.arrivals(PORT, c.sport))
        seq = tw["window"]["reply"]["end"]
        self.inject_from_server(self.server_segment(c, "R", seq, win=0))
        d = self.lab.daemon
        lab.wait_for(lambda: lab.drops(d.stats(), "time-wait-rst")
                     > lab.drops(before, "time-wait-rst"), 5.0)
        time.sleep(0.5)
        after = d.stats()
        self.assertEqual(lab.drops(after, "time-wait-rst") - lab.drops(before, "time-wait-rst"), 1,
                         f"{before['drops']} -> {after['drops']}")
        self.assertEqual(self.reached_client(c, seq, 0x04, earlier), [],
                         "the RST reached the client in TIME_WAIT")
        self.assertIn(f"seq={seq % M32} ", d.log_text(since=log_start))
        self.assertEqual(self.entry(c.sport)["state"], "TIME_WAIT")

    def test_7b_rst_from_the_endpoint_in_time_wait_is_judged(self):
        """An RST from the side in TIME_WAIT is not one RFC 1337 is about: judged as in any
        state (RFC 5961), out of window it is dropped, exact it passes and closes the entry."""
        c, e = self.open_connection()
        self.assertEqual(c.close(), b"")
        tw = self.wait_time_wait(c)
        before, log_start = self.lab.daemon.stats(), self.lab.daemon.log_size()
        far = self.segment(c, "R", tw["window"]["orig"]["end"] + FAR, win=0)
        self.inject(far)
        self.assert_dropped(c, far, "rst-out-of-window", before, log_start, 0x04)
        self.assert_exact_rst_closes(c, tw["window"]["orig"]["end"],
                                     "the exact RST from the client in TIME_WAIT")

    def test_8_forged_syn_and_rst_from_the_client_side_are_harmless(self):
        """The two-packet blind kill: a forged SYN from the client's side (ignored: it passes
        and the server answers with a challenge ACK) and a forged RST from the same side, far
        out of window, whose ACK is the SYN's end. It answers nothing (only the SYN's receiver
        can), so seqwall judges it as any RST from the client: dropped, the connection carries
        on."""
        c, e = self.open_connection()
        w = e["window"]
        isn = (w["orig"]["end"] + FAR) % M32
        self.inject(self.segment(c, "S", isn, win=64240))
        self.assertTrue(lab.wait_for(lambda: self.arrived(c, isn, 0x02), 5.0),
                        "the SYN did not reach the server")
        time.sleep(0.3)   # the challenge ACK crosses back
        for name, seq in (("above the window", w["orig"]["end"] + FAR + 5000),
                          ("below the window", w["orig"]["end"] - FAR)):
            with self.subTest(rst=name):
                before, log_start = self.lab.daemon.stats(), self.lab.daemon.log_size()
                pkt = self.segment(c, "RA", seq, isn + 1, win=0)
                self.inject(pkt)
                self.assert_dropped(c, pkt, "rst-out-of-window", before, log_start, 0x14)
                self.assertEqual(self.entry(c.sport)["state"], "ESTABLISHED")
        self.assert_carries_data(c, "a forged SYN and RST from the client's side")
        self.assertEqual(self.entry(c.sport)["state"], "ESTABLISHED")
        self.assertEqual(c.close(), b"")

    def test_8b_forged_syn_and_rst_from_the_server_side_are_harmless(self):
        """The same two packets forged from the server's side: that side's SYN in an
        established connection is invalid (dropped, as in the kernel), and the RST acking it
        answers nothing: dropped. The connection carries on."""
        c, e = self.open_connection()
        w = e["window"]
        isn = (w["reply"]["end"] + FAR) % M32
        d = self.lab.daemon
        before = d.stats()
        earlier = len(self.agent.arrivals(PORT, c.sport))
        self.inject_from_server(self.server_segment(c, "S", isn, win=64240))
        rst_seq = w["reply"]["end"] + FAR + 5000
        lab.wait_for(lambda: lab.drops(d.stats(), "bad-transition")
                     > lab.drops(before, "bad-transition"), 5.0)
        self.inject_from_server(self.server_segment(c, "RA", rst_seq, isn + 1, win=0))
        lab.wait_for(lambda: lab.drops(d.stats(), "rst-out-of-window")
                     > lab.drops(before, "rst-out-of-window"), 5.0)
        time.sleep(0.5)
        after = d.stats()
        for reason in ("bad-transition", "rst-out-of-window"):
            self.assertEqual(lab.drops(after, reason) - lab.drops(before, reason), 1,
                             f"{reason}: {before['drops']} -> {after['drops']}")
        self.assertEqual(self.reached_client(c, isn, 0x02, earlier)
                         + self.reached_client(c, rst_seq, 0x14, earlier), [],
                         "a forged segment reached the client")
        self.assertEqual(self.entry(c.sport)["state"], "ESTABLISHED")
        self.assert_carries_data(c, "a forged SYN and RST from the server's side")
        self.assertEqual(c.close(), b"")

    def test_9_rst_from_the_other_side_answering_an_ignored_syn_closes(self):
        """As in the kernel: after a SYN from the client's side (a restarted client, or the
        tuple reused), the RST from the server's side that acknowledges it answers it, and
        passes without a window check: the entry goes to CLOSE. A server that has no socket
        for the old connection answers so; this one still has it, so its own answer (a
        challenge ACK, which would become the last segment seen) is held back in its
        namespace, ahead of seqwall, and the RST is sent from there instead."""
        c, e = self.open_connection()
        w = e["window"]
        hold = ["OUTPUT", "-p", "tcp", "--sport", str(PORT), "--dport", str(c.sport),
                "--tcp-flags", "ALL", "ACK", "-j", "DROP"]
        tool = "iptables" if self.FAMILY == 4 else "ip6tables"
        lab.ns_run(self.lab.ns["server"], [tool, "-I"] + hold[:1] + ["1"] + hold[1:])
        self.addCleanup(lab.ns_run, self.lab.ns["server"], [tool, "-D"] + hold, check=False)
        isn = (w["orig"]["end"] + FAR) % M32
        self.inject(self.segment(c, "S", isn, win=64240))
        self.assertTrue(lab.wait_for(lambda: self.arrived(c, isn, 0x02), 5.0),
                        "the SYN did not reach the server")
        earlier = len(self.agent.arrivals(PORT, c.sport))
        rst_seq = w["reply"]["end"] + FAR
        self.inject_from_server(self.server_segment(c, "RA", rst_seq, isn + 1, win=0))
        self.assertTrue(lab.wait_for(lambda: self.reached_client(c, rst_seq, 0x14, earlier),
                                     5.0), "the RST answering the SYN did not pass")
        closed = lab.wait_for(lambda: (lambda x: x is None or x["state"] == "CLOSE")(
            self.entry(c.sport)), 5.0)
        self.assertTrue(closed, f"entry after the RST: {self.entry(c.sport)}")
        c.abort()

for _family in (4, 6):
    for _mode, _rules in ((lab.GATEWAY, GATEWAY_RULES), (lab.HOST, HOST_RULES)):
        _name = f"{_mode.capitalize()}IPv{_family}Test"
        globals()[_name] = type(_name, (TrackingTests, lab.LabTestCase),
                                {"MODE": _mode, "FAMILY": _family, "RULES": _rules})


if __name__ == "__main__":
    unittest.main(verbosity=2)
