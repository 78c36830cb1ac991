"""seqwall replay against captures of real traffic through a live seqwall.

Each lab class records one session while tcpdump captures it on the firewall, then replays
the captures with the same rules and checks, packet by packet, the verdicts and reasons
replay gives, and that replay's drops per reason equal what the live daemon counted for the
same traffic.

  ReplayGatewayTest  gateway mode (seqwall in fw, FORWARD queued), three captures of one
                     session taken at once: Ethernet on the outside interface (out0, both
                     directions), `-i any -Q in` in Linux cooked v1 (SLL) and v2 (SLL2); and
                     a pcapng copy of the Ethernet capture. The session: an IPv4 connection
                     to the open port with data both ways and a clean close, with a scapy
                     segment far beyond its window in the middle (seq-above-window), an Xmas
                     segment (bad-flags), a SYN to a blocked port (rule) and one to the
                     rejected port (REJECT), then an IPv6 connection with data and close.
                     A fourth capture, `-i any` both ways, shows the outgoing copies that
                     gateway-mode replay skips; a fifth keeps 96 bytes a frame (-s 96).
                     Two more take what comes in on each interface (-Q in), with different
                     snap lengths, and mergecap merges them into one pcapng file of two
                     interfaces: what libpcap refuses to read and replay reads.
  ReplayHostTest     host mode (seqwall in server, INPUT/OUTPUT queued), captured on the
                     server's interface and replayed with --host: an inbound connection, an
                     outbound one, a blocked SYN.
  ReplayCLITest      the errors an operator sees (no lab needed).

Rules: Tests/Integration/rules/gateway.rules and host.rules (8080 open, 8082 rejected, the
rest of inbound blocked).
"""

import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GATEWAY_RULES = os.path.join(HERE, "rules", "gateway.rules")
HOST_RULES = os.path.join(HERE, "rules", "host.rules")

OPEN_PORT, BLOCKED_PORT, REJECT_PORT = 8080, 8081, 8082
XMAS_SPORT, BLOCKED_SPORT, REJECT_SPORT = 46001, 46002, 46003
CAPTURE_START_TIMEOUT = 20.0
CAPTURE_STOP_TIMEOUT = 20.0
SETTLE_TIMEOUT = 30.0
SNAP_LENGTH = 2048
MERGED_SNAP_LENGTH = 8192
REPLAY_TIMEOUT = 120

# A segment with a payload (lab.craft sends none): out-of-window data.
SEND_DATA = r"""
import json, logging, sys
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import IP, IPv6, TCP, Raw, send
p = json.loads(sys.argv[1])
l3 = IPv6(src=p["src"], dst=p["dst"]) if ":" in p["dst"] else IP(src=p["src"], dst=p["dst"])
seg = TCP(sport=p["sport"], dport=p["dport"], flags=p["flags"], seq=p["seq"], ack=p["ack"],
          window=p["window"])
send(l3 / seg / Raw(bytes.fromhex(p["payload"])), verbose=0)
print("sent 1", flush=True)
"""


class Capture:
    """tcpdump in a namespace writing a file, started and known to be listening before any
    traffic, stopped with SIGINT so that it writes out everything it caught."""

    def __init__(self, ns, workdir, name, args):
        self.path = os.path.join(workdir, name)
        self.log = os.path.join(workdir, name + ".stderr")
        # -U and --immediate-mode: every packet reaches the file as it is caught, none waits
        # in a buffer at SIGINT. -s 2048 -B 8192: immediate mode uses a ring of snap-length
        # slots, and the default 256 KiB slots in 2 MiB leave room for 8 packets only, which a
        # tcpdump slowed by a loaded machine overruns ("dropped by kernel"); the session's
        # packets are all far below 2048 bytes. -n: no name lookups. `tcp`: what the shipped
        # iptables files queue to seqwall (ICMPv6 neighbour discovery and the like never
        # reach it).
        argv = (["tcpdump", "-n", "-U", "--immediate-mode", "-s", str(SNAP_LENGTH), "-B", "8192",
                 "-w", self.path] + list(args) + ["tcp"])
        self.proc = lab.spawn(ns, argv, self.log, stdout=False)

    def wait_listening(self):
        def listening():
            if self.proc.poll() is not None:
                raise RuntimeError(f"tcpdump exited: {self.stderr()}")
            return "listening on" in self.stderr()
        if not lab.wait_for(listening, CAPTURE_START_TIMEOUT):
            raise RuntimeError(f"tcpdump did not start listening: {self.stderr()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=CAPTURE_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        lab.REGISTRY.kill_proc(self.proc)

    def frames(self):
        """Frames written so far (classic pcap as tcpdump writes it; a record still being
        written does not count)."""
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError:
            return 0
        if len(data) < 24:
            return 0
        order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        count, offset = 0, 24
        while offset + 16 <= len(data):
            (caplen,) = struct.unpack_from(order + "I", data, offset + 8)
            if offset + 16 + caplen > len(data):
                break
            offset += 16 + caplen
            count += 1
        return count

    def stderr(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def replay(path, rules, *extra, check=True):
    """Runs `seqwall replay -o json` and returns the document."""
    cp = lab.run([lab.SEQWALL_BIN, "replay", path, "--rules", rules, "-o", "json"] + list(extra),
                 timeout=REPLAY_TIMEOUT, check=check)
    try:
        return json.loads(cp.stdout)
    except ValueError as e:
        raise AssertionError(f"seqwall replay -o json printed no JSON: {cp.stdout[:500]!r} "
                             f"{cp.stderr!r}") from e


def replay_text(path, rules, *extra):
    return lab.run([lab.SEQWALL_BIN, "replay", path, "--rules", rules] + list(extra),
                   timeout=REPLAY_TIMEOUT).stdout


def to_pcapng(src, dst):
    """Writes src (pcap) again as pcapng with scapy's own writer: tcpdump and libpcap 1.10 write
    only pcap."""
    script = ("import sys, logging\n"
              "logging.getLogger('scapy.runtime').setLevel(logging.ERROR)\n"
              "from scapy.utils import rdpcap, PcapNgWriter\n"
              "w = PcapNgWriter(sys.argv[2])\n"
              "w.write(rdpcap(sys.argv[1]))\n"
              "w.close()\n")
    lab.run([lab.PY, "-c", script, src, dst], timeout=60)
    with open(dst, "rb") as f:
        if f.read(4) != b"\x0a\x0d\x0d\x0a":
            raise AssertionError(f"{dst} is not pcapng (no Section Header Block)")


def settle(daemon, before, sports, captures, expected):
    """Waits until the connections from `sports` are closed (TIME_WAIT) in the live table, so
    their last ACKs have been judged, then until each capture holds the frames `expected`
    (live counts -> {capture name: frames}) says it must: a loaded machine may leave tcpdump
    behind, and SIGINT would lose what it has not read yet. Returns the live counts."""
    def closed():
        states = {(c["orig"]["sport"], c["state"]) for c in daemon.conntrack()}
        return {(sport, "TIME_WAIT") for sport in sports} <= states
    if not lab.wait_for(closed, SETTLE_TIMEOUT, 0.2):
        raise AssertionError(f"the live table never showed ports {sports} in TIME_WAIT: {daemon.conntrack()}")
    live = stats_delta(before, daemon.stats())
    for name, count in expected(live).items():
        capture = captures[name]
        if not lab.wait_for(lambda: capture.frames() >= count, SETTLE_TIMEOUT, 0.2):
            raise AssertionError(f"capture {name} holds {capture.frames()} frames, not the {count} "
                                 f"the live counts {live} call for; tcpdump: {capture.stderr()}")
    return live


def stats_delta(before, after):
    """What the live daemon counted between two `stats -o json`."""
    return {
        "seen": after["packets"]["seen"] - before["packets"]["seen"],
        "accepted": after["packets"]["accepted"] - before["packets"]["accepted"],
        "dropped": after["packets"]["dropped"] - before["packets"]["dropped"],
        "drops": {reason: after["drops"][reason] - before["drops"].get(reason, 0)
                  for reason in after["drops"]},
    }


def of_flow(packets, a, a_port, b, b_port):
    """The packets between (a, a_port) and (b, b_port), either way."""
    ends = {(lab.ipaddress.ip_address(a), a_port), (lab.ipaddress.ip_address(b), b_port)}
    out = []
    for p in packets:
        if "src" not in p or "sport" not in p:
            continue
        here = {(lab.ipaddress.ip_address(p["src"]), p["sport"]),
                (lab.ipaddress.ip_address(p["dst"]), p["dport"])}
        if here == ends:
            out.append(p)
    return out


def outcome(p):
    return f"{p['verdict']} {p.get('reason') or '-'}"


class ReplayGatewayTest(lab.LabTestCase):
    MODE = lab.GATEWAY
    RULES = GATEWAY_RULES
    SERVER_PORTS = (OPEN_PORT,)
    CLIENT_PORTS = ()

    CAPTURES = {
        "ethernet": ("session-ethernet.pcap", ["-i", "out0"]),
        "sll": ("session-sll.pcap", ["-i", "any", "-Q", "in", "-y", "LINUX_SLL"]),
        "sll2": ("session-sll2.pcap", ["-i", "any", "-Q", "in", "-y", "LINUX_SLL2"]),
        # Both directions: each forwarded packet in on one interface and out on the other.
        "any-both": ("session-any.pcap", ["-i", "any", "-y", "LINUX_SLL2"]),
        # 96 bytes a frame: every header whole (IPv6 SYN: 14 + 40 + 40), payloads cut.
        "snap96": ("session-snap96.pcap", ["-i", "out0", "-s", "96"]),
        # Each interface's way in, one snap length each, for the merged capture.
        "from-outside": ("session-from-outside.pcap", ["-i", "out0", "-Q", "in", "-s", str(MERGED_SNAP_LENGTH)]),
        "from-inside": ("session-from-inside.pcap", ["-i", "in0", "-Q", "in"]),
    }

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.record_session()
        except BaseException:
            cls.lab.destroy()
            raise

    @classmethod
    def record_session(cls):
        problem = lab.scapy_problem()
        if problem:
            raise unittest.SkipTest(problem)
        if lab.shutil.which("tcpdump") is None:
            raise unittest.SkipTest("tcpdump not found")
        L = cls.lab
        fw, client = L.ns["fw"], L.ns["client"]
        captures = {name: Capture(fw, L.workdir, file, args) for name, (file, args) in cls.CAPTURES.items()}
        try:
            for capture in captures.values():
                capture.wait_listening()
            before = L.daemon.stats()

            # IPv4: data both ways, a segment far beyond the window in the middle, a clean close.
            server4 = L.server_addr(4)
            with L.connect("client", server4, OPEN_PORT, timeout=10) as conn:
                if not conn.connected:
                    raise AssertionError(f"IPv4 connection to {OPEN_PORT} failed: {conn.error}")
                cls.sport4 = conn.sport
                if conn.send(b"hello " * 50) != b"echo:" + b"hello " * 50:
                    raise AssertionError("the IPv4 echo came back wrong")
                entry = cls.live_entry(server4, conn.sport)
                end, reply_end = entry["window"]["orig"]["end"], entry["window"]["reply"]["end"]
                cls.far_seq = (end + 10_000_000) % 2**32
                lab.ns_run(client, [lab.PY, "-c", SEND_DATA, json.dumps({
                    "src": L.client_addr(4), "dst": server4, "sport": conn.sport, "dport": OPEN_PORT,
                    "flags": "PA", "seq": cls.far_seq, "ack": reply_end, "window": 502,
                    "payload": (b"far away!!").hex()})], timeout=60)
                L.craft([
                    {"family": 4, "dst": server4, "sport": XMAS_SPORT, "dport": OPEN_PORT, "flags": "FPU", "seq": 7000},
                    {"family": 4, "dst": server4, "sport": BLOCKED_SPORT, "dport": BLOCKED_PORT, "flags": "S", "seq": 7000},
                    {"family": 4, "dst": server4, "sport": REJECT_SPORT, "dport": REJECT_PORT, "flags": "S", "seq": 7000},
                ])
                # The connection lives on past the dropped segments.
                if conn.send(b"still here") != b"echo:still here":
                    raise AssertionError("the IPv4 connection broke after the bad segments")
                conn.close()

            # IPv6: data both ways and a clean close.
            with L.connect("client", L.server_addr(6), OPEN_PORT, timeout=10) as conn:
                if not conn.connected:
                    raise AssertionError(f"IPv6 connection to {OPEN_PORT} failed: {conn.error}")
                cls.sport6 = conn.sport
                if conn.send(b"six " * 100) != b"echo:" + b"six " * 100:
                    raise AssertionError("the IPv6 echo came back wrong")
                conn.close()

            # Each capture must hold one copy of each packet the daemon saw, plus the REJECT's
            # RST where outgoing packets show, plus the way out of each packet it passed where
            # both ways show.
            cls.live = settle(L.daemon, before, [cls.sport4, cls.sport6], captures, lambda live: {
                "ethernet": live["seen"] + 1, "sll": live["seen"], "sll2": live["seen"],
                "any-both": live["seen"] + live["accepted"] + 1, "snap96": live["seen"] + 1})
            # What came in on the two interfaces is everything the daemon saw, in two files.
            ways_in = (captures["from-outside"], captures["from-inside"])
            if not lab.wait_for(lambda: sum(c.frames() for c in ways_in) >= cls.live["seen"], SETTLE_TIMEOUT, 0.2):
                raise AssertionError(f"the -Q in captures hold {[c.frames() for c in ways_in]} frames, "
                                     f"not the {cls.live['seen']} the daemon saw")
        finally:
            for capture in captures.values():
                capture.stop()
        cls.paths = {name: capture.path for name, capture in captures.items()}
        cls.paths["pcapng"] = os.path.join(L.workdir, "session-ethernet.pcapng")
        to_pcapng(cls.paths["ethernet"], cls.paths["pcapng"])
        cls.merged = None
        if lab.shutil.which("mergecap"):
            # mergecap (wireshark-common) writes pcapng, one interface per input file, the
            # frames in time order.
            cls.merged = os.path.join(L.workdir, "session-merged.pcapng")
            lab.run(["mergecap", "-w", cls.merged, cls.paths["from-outside"], cls.paths["from-inside"]], timeout=60)
            cls.paths["merged"] = cls.merged
        cls.replays = {name: replay(path, GATEWAY_RULES) for name, path in cls.paths.items()}

    @classmethod
    def live_entry(cls, server, sport):
        for entry in cls.lab.daemon.conntrack():
            if entry["orig"]["sport"] == sport and lab.addr_eq(entry["orig"]["dst"], server):
                return entry
        raise AssertionError(f"the live table has no connection from port {sport}")

    # -- helpers --

    def tcp_packets(self, name):
        return [p for p in self.replays[name]["packets"] if p.get("proto") == "tcp"]

    def assert_session(self, name):
        """The per-packet verdicts every capture of the session must replay to."""
        doc = self.replays[name]
        packets = self.tcp_packets(name)
        self.assertEqual(len(packets), len(doc["packets"]), f"{name}: frames that are not TCP")
        L = self.lab
        client4, server4 = L.client_addr(4), L.server_addr(4)

        # The IPv4 session: handshake, data both ways, close; only the far segment dropped.
        session = of_flow(packets, client4, self.sport4, server4, OPEN_PORT)
        far = [p for p in session if p["seq"] == self.far_seq and p["len"] == 10]
        self.assertEqual([outcome(p) for p in far], ["drop seq-above-window"], f"{name}: the far segment")
        self.assertEqual(far[0]["state"], "ESTABLISHED")
        rest = [p for p in session if p not in far]
        self.assertEqual([outcome(p) for p in rest if outcome(p) != "accept -"], [],
                         f"{name}: a packet of the real IPv4 session was not accepted")
        self.assertEqual([(p["flags"], p["state"]) for p in rest[:3]],
                         [("SYN", "SYN_SENT"), ("SYN,ACK", "SYN_RECV"), ("ACK", "ESTABLISHED")],
                         f"{name}: the handshake")
        self.assertGreaterEqual(sum(p["len"] for p in rest if p["sport"] == self.sport4), 300 + 10)
        self.assertGreaterEqual(sum(p["len"] for p in rest if p["sport"] == OPEN_PORT), 305 + 15)
        self.assertEqual(rest[-1]["state"], "TIME_WAIT", f"{name}: the close")

        # The hand-made segments.
        xmas = of_flow(packets, client4, XMAS_SPORT, server4, OPEN_PORT)
        self.assertEqual([(p["flags"], outcome(p)) for p in xmas], [("FIN,PSH,URG", "drop bad-flags")])
        blocked = of_flow(packets, client4, BLOCKED_SPORT, server4, BLOCKED_PORT)
        self.assertEqual([outcome(p) for p in blocked], ["drop rule"])
        self.assertIsNone(blocked[0].get("state"))
        rejected = of_flow(packets, client4, REJECT_SPORT, server4, REJECT_PORT)
        self.assertEqual(outcome(rejected[0]), "reject rule")

        # The IPv6 session: everything accepted, closed.
        session6 = of_flow(packets, L.client_addr(6), self.sport6, L.server_addr(6), OPEN_PORT)
        self.assertGreaterEqual(len(session6), 7)
        self.assertEqual({outcome(p) for p in session6}, {"accept -"}, f"{name}: the IPv6 session")
        self.assertEqual(session6[-1]["state"], "TIME_WAIT")
        self.assertEqual(len(packets), len(session) + len(xmas) + len(blocked) + len(rejected) + len(session6),
                         f"{name}: packets of flows the test did not make")

        # The table left behind: both sessions in TIME_WAIT, as `conntrack list -o json` shows.
        states = {(c["orig"]["sport"], c["state"]) for c in doc["connections"]}
        self.assertIn((self.sport4, "TIME_WAIT"), states)
        self.assertIn((self.sport6, "TIME_WAIT"), states)
        for c in doc["connections"]:
            for key in ("proto", "state", "timeout", "orig", "reply", "assured", "packets", "bytes"):
                self.assertIn(key, c)
        return rejected

    def assert_drops_match_live(self, name):
        stats = self.replays[name]["stats"]
        self.assertEqual(stats["drops"], self.live["drops"],
                         f"{name}: replay's drops per reason differ from the live daemon's")
        for reason, count in (("seq-above-window", 1), ("bad-flags", 1), ("rule", 2)):
            self.assertEqual(stats["drops"][reason], count, reason)
        self.assertEqual(stats["packets"]["dropped"], 4)

    # -- tests --

    def test_ethernet_capture(self):
        doc = self.replays["ethernet"]
        self.assertEqual(doc["capture"]["link_type"], "EN10MB")
        rejected = self.assert_session("ethernet")
        # On the outside interface the RST that seqwall sent for the rejected SYN
        # shows too. Replay lets it out and ends the refused entry; the live daemon never saw
        # it (it left through OUTPUT, which gateway mode does not queue).
        self.assertEqual([(p["flags"], outcome(p)) for p in rejected[1:]], [("RST,ACK", "accept -")])
        self.assert_drops_match_live("ethernet")
        self.assertEqual(doc["stats"]["packets"]["seen"], self.live["seen"] + 1)
        self.assertEqual(doc["verdicts"], {"accept": self.live["accepted"] + 1, "drop": 3, "reject": 1})
        self.assertEqual(doc["capture"]["skipped"], {"link-truncated": 0, "snap-truncated": 0, "non-ip": 0,
                                                     "not-host": 0, "outgoing-copy": 0})
        self.assertEqual(doc["capture"]["snap_length"], SNAP_LENGTH)

    def test_linux_cooked_capture_of_any_interface(self):
        for name, link_type in (("sll", "LINUX_SLL"), ("sll2", "LINUX_SLL2")):
            with self.subTest(name):
                doc = self.replays[name]
                self.assertEqual(doc["capture"]["link_type"], link_type)
                rejected = self.assert_session(name)
                # -Q in: each packet as it came in, once, as FORWARD saw it.
                self.assertEqual(len(rejected), 1)
                self.assert_drops_match_live(name)
                live = self.live
                self.assertEqual(doc["stats"]["packets"],
                                 {"seen": live["seen"], "accepted": live["accepted"], "dropped": live["dropped"]})

    def test_linux_cooked_capture_both_ways(self):
        doc = self.replays["any-both"]
        judged = [p for p in doc["packets"] if p["verdict"] != "skip"]
        copies = [p for p in doc["packets"] if p["verdict"] == "skip"]
        # The copies leaving the firewall are skipped: each packet the daemon let through once,
        # and the RST seqwall sent for the rejected SYN.
        self.assertEqual({p["reason"] for p in copies}, {"outgoing-copy"})
        self.assertEqual(len(copies), self.live["accepted"] + 1)
        self.assertEqual(doc["capture"]["skipped"]["outgoing-copy"], len(copies))
        # What is left is what came in: the -Q in capture's packets, judged the same.
        def key(p):
            return (p["src"], p["sport"], p["seq"], p["flags"], outcome(p), p.get("state"))
        self.assertEqual([key(p) for p in judged], [key(p) for p in self.replays["sll2"]["packets"]])
        self.assert_drops_match_live("any-both")
        live = self.live
        self.assertEqual(doc["stats"]["packets"],
                         {"seen": live["seen"], "accepted": live["accepted"], "dropped": live["dropped"]})

    def test_capture_with_a_short_snap_length(self):
        doc = self.replays["snap96"]
        self.assertEqual(doc["capture"]["snap_length"], 96)
        self.assertEqual(sum(doc["capture"]["skipped"].values()), 0)
        cut = [p for p in doc["packets"] if p["len"] > 0]
        self.assertGreaterEqual(len(cut), 4, "no packet had its payload cut")
        # Judged exactly as the whole capture, and counted in bytes as on the wire.
        full = self.replays["ethernet"]
        def key(p):
            return (p["src"], p["sport"], p["seq"], p["len"], p["wire_length"], outcome(p), p.get("state"))
        self.assertEqual([key(p) for p in doc["packets"]], [key(p) for p in full["packets"]])
        # Two capture sockets may stamp a frame a hair apart: the seconds left may differ by one.
        def entry(c):
            return {k: v for k, v in c.items() if k != "timeout"}
        self.assertEqual([entry(c) for c in doc["connections"]], [entry(c) for c in full["connections"]])
        for mine, theirs in zip(doc["connections"], full["connections"]):
            self.assertLessEqual(abs(mine["timeout"] - theirs["timeout"]), 1)
        self.assertEqual(doc["stats"], full["stats"])

    def test_pcapng_capture(self):
        doc = self.replays["pcapng"]
        self.assertEqual(doc["capture"]["link_type"], "EN10MB")
        self.assert_session("pcapng")
        self.assert_drops_match_live("pcapng")
        ethernet = self.replays["ethernet"]["packets"]
        self.assertEqual([(p.get("src"), p.get("seq"), outcome(p), p.get("state")) for p in doc["packets"]],
                         [(p.get("src"), p.get("seq"), outcome(p), p.get("state")) for p in ethernet])

    def test_merged_pcapng_of_two_interfaces_with_different_snap_lengths(self):
        if self.merged is None:
            self.skipTest("mergecap not found (make deps installs wireshark-common)")
        # libpcap itself refuses this file; replay reads it.
        cp = lab.run(["tcpdump", "-n", "-r", self.merged], check=False)
        self.assertNotEqual(cp.returncode, 0, "libpcap read a pcapng file with two snap lengths")
        self.assertIn("snapshot length", cp.stderr)
        doc = self.replays["merged"]
        self.assertEqual(doc["capture"]["interfaces"],
                         [{"link_type": "EN10MB", "snap_length": MERGED_SNAP_LENGTH},
                          {"link_type": "EN10MB", "snap_length": SNAP_LENGTH}])
        self.assertEqual(doc["capture"]["snap_length"], MERGED_SNAP_LENGTH)
        # Every packet as it came in, once: judged as the `-i any -Q in` capture judges them,
        # and as the live daemon did.
        rejected = self.assert_session("merged")
        self.assertEqual(len(rejected), 1)
        self.assert_drops_match_live("merged")
        live = self.live
        self.assertEqual(doc["stats"]["packets"],
                         {"seen": live["seen"], "accepted": live["accepted"], "dropped": live["dropped"]})
        def key(p):
            return (p["src"], p["sport"], p["seq"], p["flags"], outcome(p), p.get("state"))
        self.assertEqual(sorted(map(key, doc["packets"])), sorted(map(key, self.replays["sll2"]["packets"])))

    def test_text_output(self):
        text = replay_text(self.paths["sll"], GATEWAY_RULES)
        lines = text.splitlines()
        first = lines[0].split()
        # "   1 0.000000 198.51.100.10:PORT > 203.0.113.10:8080 [S] seq=.. ack=0 win=.. len=0 ACCEPT SYN_SENT"
        self.assertEqual(first[0], "1")
        self.assertRegex(first[1], r"^0\.000000$")
        self.assertEqual(first[2:5], [f"{self.lab.client_addr(4)}:{self.sport4}", ">", f"{self.lab.server_addr(4)}:{OPEN_PORT}"])
        self.assertEqual(first[5], "[S]")
        self.assertEqual(first[-2:], ["ACCEPT", "SYN_SENT"])
        self.assertIn(f" len=10 DROP seq-above-window", text)
        self.assertIn(" [FPU] ", text)
        self.assertRegex(text, r"\[FPU\] seq=7000 ack=0 win=8192 len=0 DROP bad-flags\n")
        self.assertRegex(text, rf":{BLOCKED_PORT} \[S\] seq=7000 ack=0 win=8192 len=0 DROP rule\n")
        self.assertRegex(text, rf":{REJECT_PORT} \[S\] seq=7000 ack=0 win=8192 len=0 REJECT rule\n")
        self.assertIn("\nconnections:\n", text)
        self.assertRegex(text, rf"\ntcp {{6}}6 \d+ TIME_WAIT src={self.lab.client_addr(4)} dst={self.lab.server_addr(4)} "
                               rf"sport={self.sport4} dport={OPEN_PORT} src=.* \[ASSURED\] use=1\n")
        self.assertIn("\ncounters:\n", text)
        self.assertIn(f"\nverdicts     accept {self.live['accepted']}  drop 3  reject 1\n", text)
        self.assertRegex(text, r"\n  seq-above-window +1\n")
        self.assertRegex(text, r"\n  bad-flags +1\n")


class ReplayHostTest(lab.LabTestCase):
    MODE = lab.HOST
    RULES = HOST_RULES
    SERVER_PORTS = (OPEN_PORT,)
    CLIENT_PORTS = (9000,)

    def test_host_mode_capture(self):
        if lab.shutil.which("tcpdump") is None:
            self.skipTest("tcpdump not found")
        problem = lab.scapy_problem()
        if problem:
            self.skipTest(problem)
        L = self.lab
        server, client = L.server_addr(4), L.client_addr(4)
        capture = Capture(L.ns["server"], L.workdir, "host.pcap", ["-i", "eth0"])
        try:
            capture.wait_listening()
            before = L.daemon.stats()
            with L.connect("client", server, OPEN_PORT, timeout=10) as conn:
                self.assertTrue(conn.connected, conn.error)
                inbound = conn.sport
                self.assertEqual(conn.send(b"in" * 40), b"echo:" + b"in" * 40)
                conn.close()
            L.craft([{"family": 4, "dst": server, "sport": BLOCKED_SPORT, "dport": BLOCKED_PORT,
                      "flags": "S", "seq": 7000}])
            # Outbound from the host to the client's port 9000: `default out pass`. (Last, so
            # that its close, which settle() waits for, comes after the blocked SYN in the
            # daemon's one queue.)
            with L.connect("server", client, 9000, timeout=10) as conn:
                self.assertTrue(conn.connected, conn.error)
                outbound = conn.sport
                self.assertEqual(conn.send(b"out" * 30), b"echo:" + b"out" * 30)
                conn.close()
            # Every packet on the wire went through INPUT or OUTPUT.
            live = settle(L.daemon, before, [inbound, outbound], {"host": capture},
                          lambda live: {"host": live["seen"]})
        finally:
            capture.stop()

        doc = replay(capture.path, HOST_RULES, "--host", server, "--host", L.server_addr(6))
        packets = doc["packets"]
        session_in = of_flow(packets, client, inbound, server, OPEN_PORT)
        session_out = of_flow(packets, server, outbound, client, 9000)
        blocked = of_flow(packets, client, BLOCKED_SPORT, server, BLOCKED_PORT)
        self.assertGreaterEqual(len(session_in), 7)
        self.assertGreaterEqual(len(session_out), 7)
        self.assertEqual({outcome(p) for p in session_in + session_out}, {"accept -"})
        self.assertEqual(session_out[0]["state"], "SYN_SENT")
        self.assertEqual([outcome(p) for p in blocked], ["drop rule"])
        self.assertEqual(len(packets), len(session_in) + len(session_out) + len(blocked))
        self.assertEqual(doc["stats"]["drops"], live["drops"])
        self.assertEqual(doc["stats"]["packets"],
                         {"seen": live["seen"], "accepted": live["accepted"], "dropped": live["dropped"]})
        # The same capture judged as a gateway would judge it: the host's own connection out to
        # port 9000 goes toward no `inside` network, so it counts as inbound and is blocked.
        gateway = replay(capture.path, HOST_RULES)
        as_gateway = of_flow(gateway["packets"], server, outbound, client, 9000)
        self.assertEqual(outcome(as_gateway[0]), "drop rule")


class ReplayCLITest(unittest.TestCase):
    """Errors: one line on stderr, exit 1; a rules error keeps its file:line:column."""

    def setUp(self):
        if not os.path.exists(lab.SEQWALL_BIN):
            self.skipTest(f"no seqwall binary at {lab.SEQWALL_BIN}")
        self.dir = tempfile.mkdtemp(prefix="seqwall-replay-cli-")
        self.addCleanup(lab.shutil.rmtree, self.dir, True)
        self.capture = os.path.join(self.dir, "one.pcap")
        # A pcap file with one Ethernet frame holding a SYN to port 8080, written by hand.
        frame = (b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
                 + bytes.fromhex("45000028beef40004006" "0000" "c633640a" "cb00710a")
                 + bytes.fromhex("9c401f90" "000003e8" "00000000" "5002faf0" "0000" "0000"))
        header = bytes.fromhex("d4c3b2a1" "0200" "0400" "00000000" "00000000" "ffff0000" "01000000")
        record = (1_700_000_000).to_bytes(4, "little") + (0).to_bytes(4, "little") \
            + len(frame).to_bytes(4, "little") * 2
        with open(self.capture, "wb") as f:
            f.write(header + record + frame)

    def seqwall(self, *args):
        return lab.run([lab.SEQWALL_BIN] + list(args), check=False, timeout=30)

    def assert_error(self, cp, pattern):
        self.assertEqual(cp.returncode, 1, cp.stderr)
        self.assertEqual(cp.stdout, "")
        lines = cp.stderr.splitlines()
        self.assertEqual(len(lines), 1, cp.stderr)
        self.assertRegex(lines[0], pattern)

    def test_a_good_capture_replays(self):
        cp = self.seqwall("replay", self.capture, "--rules", GATEWAY_RULES)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertTrue(cp.stdout.startswith(
            "   1 0.000000 198.51.100.10:40000 > 203.0.113.10:8080 [S] seq=1000 ack=0 win=64240 len=0 ACCEPT SYN_SENT\n"),
            cp.stdout)

    def test_limits_in_force_show_as_stats_shows_them(self):
        rules = os.path.join(self.dir, "limited.rules")
        with open(GATEWAY_RULES) as f:
            text = f.read()
        with open(rules, "w") as f:
            f.write(text + "\nlimit half-open 20\n")
        cp = self.seqwall("replay", self.capture, "--rules", rules)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertRegex(cp.stdout, r"\nlimits       half-open limit 20  ")
        doc = replay(self.capture, rules)
        self.assertEqual(doc["stats"]["connections"]["half_open_limit"], 20)
        self.assertNotIn("half_open_limit", replay(self.capture, GATEWAY_RULES)["stats"]["connections"])

    def test_standard_input(self):
        with open(self.capture, "rb") as f:
            cp = subprocess.run([lab.SEQWALL_BIN, "replay", "-", "--rules", GATEWAY_RULES, "-o", "json"],
                                stdin=f, capture_output=True, text=True, timeout=30)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        doc = json.loads(cp.stdout)
        self.assertEqual([(p["dport"], p["verdict"], p["state"]) for p in doc["packets"]],
                         [(8080, "accept", "SYN_SENT")])

    def test_missing_capture(self):
        missing = os.path.join(self.dir, "absent.pcap")
        self.assert_error(self.seqwall("replay", missing, "--rules", GATEWAY_RULES),
                          rf"^seqwall: {missing}: cannot read capture: No such file or directory$")

    def test_not_a_capture(self):
        self.assert_error(self.seqwall("replay", GATEWAY_RULES, "--rules", GATEWAY_RULES),
                          rf"^seqwall: {GATEWAY_RULES}: cannot read capture: unknown file format$")

    def test_capture_cut_short(self):
        with open(self.capture, "rb") as f:
            data = f.read()
        cut = os.path.join(self.dir, "cut.pcap")
        with open(cut, "wb") as f:
            f.write(data[:-7])
        cp = self.seqwall("replay", cut, "--rules", GATEWAY_RULES)
        self.assertEqual(cp.returncode, 1)
        self.assertRegex(cp.stderr.strip(), rf"^seqwall: {cut}: truncated dump file.*\(after frame 0\)$")
        # What was read is still reported: the (empty) table and the counters.
        self.assertIn("frames       read 0  replayed 0  skipped 0", cp.stdout)

    def test_bad_rules_keep_their_location(self):
        bad = os.path.join(self.dir, "bad.rules")
        with open(bad, "w") as f:
            f.write("default in block\npass in tcp to port 99999\n")
        self.assert_error(self.seqwall("replay", self.capture, "--rules", bad),
                          rf"^{bad}:2:\d+: .*99999")
        self.assert_error(self.seqwall("replay", self.capture, "--rules", os.path.join(self.dir, "none.rules")),
                          rf"^{self.dir}/none.rules:1:1: cannot read file")

    def test_bad_host_address(self):
        self.assert_error(self.seqwall("replay", self.capture, "--rules", GATEWAY_RULES, "--host", "1.2.3"),
                          r"^seqwall: bad --host address '1\.2\.3'$")


if __name__ == "__main__":
    unittest.main()
