"""IP fragments through seqwall, with real packets, gateway and host mode, IPv4 and IPv6
(docs/design.md, Fragments).

The shipped diversions (rules/gateway.iptables, rules/host.iptables) turn on the kernel's
reassembly without its connection tracking, so seqwall judges whole datagrams:
- UDP requests and answers of 1,400, 3,000 and 8,000 bytes each way, and `ping -s 3000`,
  cross seqwall. In gateway mode the inside link has MTU 1280: the firewall reassembles what
  comes in 1,500-byte fragments and fragments it again, and a 1,400-byte request sent with DF
  (IPv4) or whole (IPv6) first meets fragmentation-needed / packet-too-big, then crosses in
  pieces (path MTU discovery keeps working);
- one datagram sent by scapy as fragments in reverse and in shuffled order is answered;
- a fragmented datagram to a blocked port is dropped as `rule`, never as `fragment`;
- a TCP SYN split into tiny fragments (RFC 1858 3.1) is judged whole over IPv4: it reaches an
  open port and is dropped as `rule` at a blocked one; over IPv6 the kernel does not reassemble
  a first fragment without the whole TCP header (RFC 8200 4.5), seqwall drops it as
  `fragment`, and neither SYN arrives; overlapping fragments that rewrite the port (RFC 1858
  3.2, RFC 5722) reach neither seqwall nor any port;
- the kernel's conntrack table stays empty throughout (`conntrack -C`, Debian's conntrack).
With a diversion of the operator's own without the reassembly rule, fragments are dropped as
`fragment`, the drop log shows their addresses, protocol, ports (first fragment) and IP id, and
the daemon warns once (rate-limited) naming the fix.

Rules: rules/fragments.rules (gateway) and rules/fragments-host.rules (host).

This file is also the agent program run inside namespaces:

  /usr/bin/python3 test_fragments.py udp-echo PORTS LOG     answer each datagram reversed, log it
  /usr/bin/python3 test_fragments.py udp-ask ADDR PORT SIZE SIZE bytes, wait for the answer
  /usr/bin/python3 test_fragments.py frag-send JSON         scapy: fragments in a chosen order
"""

import json
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lab  # noqa: E402
from test_icmp_udp import read_json_lines, stats_delta  # noqa: E402

AGENT = os.path.abspath(__file__)
GATEWAY_RULES = os.path.join(HERE, "rules", "fragments.rules")
HOST_RULES = os.path.join(HERE, "rules", "fragments-host.rules")

UDP_OPEN = 5353       # passed by the rules
UDP_BLOCKED = 5354    # served, but no rule passes it
TCP_OPEN = 8080
TCP_BLOCKED = 8081    # the lab's server listens here too
SIZES = (1400, 3000, 8000)
INSIDE_MTU = 1280     # gateway mode: the firewall-server link
IP_MTU, IPV6_MTU = 14, 24  # <linux/in.h>, <linux/in6.h>: a connected socket's path MTU


# ---------------------------------------------------------------------------------------------
# Agents
# ---------------------------------------------------------------------------------------------

def _agent_udp_echo(ports, log_path):
    logf = open(log_path, "a")
    socks = []
    for port in ports:
        for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            s = socket.socket(fam, socket.SOCK_DGRAM)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, port))
            socks.append((s, port))
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select([s for s, _ in socks], [], [], 1.0)
        for s in ready:
            port = next(p for sock, p in socks if sock is s)
            data, peer = s.recvfrom(65535)
            logf.write(json.dumps({"port": port, "peer": peer[0], "sport": peer[1], "size": len(data)}) + "\n")
            logf.flush()
            s.sendto(data[::-1], peer)


def _payload(size, seed):
    return bytes((i * 7 + seed) & 0xFF for i in range(size))


def _agent_udp_ask(addr, port, size, tries=4, timeout=2.0):
    """SIZE bytes on a connected socket, sent again up to `tries` times (the first may meet a
    path MTU error); the answer must be the request reversed. Prints the outcome and the path
    MTU the socket knows afterwards."""
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.connect((addr, port))
    s.settimeout(timeout)
    request = _payload(size, os.getpid())
    result = {"answered": False, "tries": 0, "sport": s.getsockname()[1], "errors": []}
    for attempt in range(1, tries + 1):
        result["tries"] = attempt
        try:
            s.send(request)
            data = s.recv(65535)
        except socket.timeout:
            continue
        except OSError as e:  # EMSGSIZE after a path MTU error, ECONNREFUSED
            result["errors"].append(f"{type(e).__name__}: {e}")
            time.sleep(0.2)
            continue
        if data == request[::-1]:
            result["answered"] = True
            break
        result["errors"].append(f"wrong answer of {len(data)} bytes")
    level, option = (socket.IPPROTO_IPV6, IPV6_MTU) if fam == socket.AF_INET6 else (socket.IPPROTO_IP, IP_MTU)
    try:
        result["mtu"] = s.getsockopt(level, option)
    except OSError:
        result["mtu"] = None
    print(json.dumps(result), flush=True)
    return 0 if result["answered"] else 1


def _agent_frag_send(spec):
    """Sends hand-made fragments with scapy; see frag_send() for the spec."""
    import logging
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    from scapy.all import IP, TCP, UDP, IPv6, IPv6ExtHdrFragment, Raw, conf, fragment, fragment6, raw, send
    conf.verb = 0
    spec = json.loads(spec)
    six = ":" in spec["dst"]
    fam = socket.AF_INET6 if six else socket.AF_INET
    ident = spec.get("id", os.getpid() & 0xFFFF)
    out = {}
    if spec["kind"] == "udp":
        # A bound socket owns the source port, so the answer finds a home.
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind(("::" if six else "0.0.0.0", 0))
        sport = s.getsockname()[1]
        request = _payload(spec["size"], ident)
        if six:
            whole = IPv6(src=spec["src"], dst=spec["dst"]) / IPv6ExtHdrFragment(id=ident) / \
                UDP(sport=sport, dport=spec["dport"]) / Raw(request)
            frags = fragment6(whole, spec["fragsize"] + 48)
        else:
            whole = IP(src=spec["src"], dst=spec["dst"], id=ident) / UDP(sport=sport, dport=spec["dport"]) / Raw(request)
            frags = fragment(whole, fragsize=spec["fragsize"])
        if spec["order"] == "reverse":
            frags = frags[::-1]
        elif spec["order"] == "shuffle":  # odd ones first, then even: the first comes third
            frags = frags[1::2] + frags[0::2]
        for f in frags:
            send(f)
        out = {"sport": sport, "fragments": len(frags), "answered": False}
        s.settimeout(spec.get("wait", 3.0))
        try:
            data, _ = s.recvfrom(65535)
            out["answered"] = data == request[::-1]
        except socket.timeout:
            pass
    else:
        # A TCP SYN in fragments (its checksum right for the segment the fragments claim).
        sport = spec["sport"]

        def segment(dport):
            l3 = IPv6(src=spec["src"], dst=spec["dst"]) if six else IP(src=spec["src"], dst=spec["dst"])
            return raw((l3 / TCP(sport=sport, dport=dport, flags="S", seq=1000) / Raw(b"\0" * 28))[TCP])

        def piece(data, offset_units, more):
            if six:
                return IPv6(src=spec["src"], dst=spec["dst"]) / \
                    IPv6ExtHdrFragment(nh=6, id=ident, offset=offset_units, m=int(more)) / Raw(data)
            return IP(src=spec["src"], dst=spec["dst"], id=ident, proto=6, frag=offset_units,
                      flags="MF" if more else 0) / Raw(data)

        # 48-byte SYNs (20 bytes of header, 28 of data) to the open and the blocked port.
        to_open, to_blocked = segment(spec["open"]), segment(spec["dport"])
        if spec["kind"] == "tiny":
            # RFC 1858 3.1: the first fragment holds only the ports and sequence number; the
            # flags come in the second.
            frags = [piece(to_blocked[:8], 0, True), piece(to_blocked[8:], 1, False)]
        elif spec["kind"] == "overlap":
            # RFC 1858 3.2, RFC 5722: the middle of a SYN to the open port, then a whole TCP
            # header to the blocked port from offset 0 that runs 8 bytes into it, then the end.
            frags = [piece(to_open[16:40], 2, True), piece(to_blocked[:24], 0, True), piece(to_open[40:], 5, False)]
        else:
            # The same with a header to the blocked port exactly over the first fragment's.
            frags = [piece(to_open[:24], 0, True), piece(to_blocked[:24], 0, True), piece(to_open[24:], 3, False)]
        for f in frags:
            send(f)
        out = {"sport": sport, "fragments": len(frags)}
    print(json.dumps(out), flush=True)


def agent_main(argv):
    signal.signal(signal.SIGALRM, lambda *a: os._exit(3))
    signal.alarm(lab.AGENT_LIFETIME)
    role, args = argv[0], argv[1:]
    if role == "udp-echo":
        _agent_udp_echo([int(p) for p in args[0].split(",")], args[1])
    elif role == "udp-ask":
        return _agent_udp_ask(args[0], int(args[1]), int(args[2]))
    elif role == "frag-send":
        signal.alarm(120)
        _agent_frag_send(args[0])
    else:
        print(f"unknown agent {role!r}", file=sys.stderr)
        return 2
    return 0


# ---------------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------------

def agent_json(cp, what):
    try:
        return json.loads(cp.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(f"{what} printed nothing useful: {cp.stdout!r} {cp.stderr!r}")


def udp_ask(ns, addr, port, size):
    cp = lab.ns_run(ns, [lab.PY, AGENT, "udp-ask", addr, str(port), str(size)], check=False, timeout=30)
    return agent_json(cp, "udp-ask")


def frag_send(ns, **spec):
    """kind udp: src, dst, dport, size, fragsize (data bytes a fragment), order (forward,
    reverse, shuffle); answers {"sport", "fragments", "answered"}. kinds tiny, overlap and
    duplicate: a TCP SYN from sport to dport in tiny fragments, or fragments of a SYN to `open`
    with a header to dport over part of them (overlap) or exactly over the first (duplicate)."""
    cp = lab.ns_run(ns, [lab.PY, AGENT, "frag-send", json.dumps(spec)], timeout=90)
    return agent_json(cp, "frag-send")


def kernel_conntrack_count(ns):
    cp = lab.ns_run(ns, ["conntrack", "-C"], check=False)
    if cp.returncode != 0:
        raise AssertionError(f"conntrack -C failed in {ns} (Debian's conntrack, `make deps`): {cp.stderr.strip()}")
    return int(cp.stdout.strip())


class FragmentLab(lab.LabTestCase):
    """Whole datagrams through seqwall with the shipped diversion of MODE."""

    SERVER_PORTS = (TCP_OPEN, TCP_BLOCKED)
    CLIENT_PORTS = ()

    @classmethod
    def setUpClass(cls):
        for tool in ("conntrack", "ping"):
            if shutil.which(tool) is None:
                raise AssertionError(f"{tool} not found (make deps installs it)")
        problem = lab.scapy_problem()
        if problem:
            raise unittest.SkipTest(problem)
        super().setUpClass()
        try:
            cls.prepare()
            L = cls.lab
            cls.udp_log = os.path.join(L.workdir, "udp.log")
            proc = lab.spawn(L.ns["server"], [lab.PY, AGENT, "udp-echo", f"{UDP_OPEN},{UDP_BLOCKED}", cls.udp_log],
                             os.path.join(L.workdir, "udp-echo.stderr"))
            if lab.LineReader(proc.stdout).readline(15) != "ready":
                raise RuntimeError("the UDP echo agent did not start")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def prepare(cls):
        """Changes to the lab before the tests (gateway: the inside link's MTU)."""

    def tearDown(self):
        # The kernel keeps no connection of its own, whatever crossed.
        if self.lab is not None and self.lab.ns:
            self.assertEqual(kernel_conntrack_count(self.lab.fw_ns), 0,
                             "the kernel's conntrack table is not empty:\n"
                             + lab.ns_run(self.lab.fw_ns, ["conntrack", "-L"], check=False).stdout)

    def received(self, port, sport=None):
        return [r for r in read_json_lines(self.udp_log)
                if r["port"] == port and (sport is None or r["sport"] == sport)]

    def assert_no_fragment_reached_seqwall(self, before):
        self.assertEqual(stats_delta(before, self.lab.daemon.stats(), "fragment"), 0,
                         "fragments reached seqwall although the diversion reassembles")

    # -- whole datagrams --

    def check_exchange(self, fam, size):
        L = self.lab
        answer = udp_ask(L.ns["client"], L.server_addr(fam), UDP_OPEN, size)
        self.assertTrue(answer["answered"], f"IPv{fam}, {size} bytes each way: no answer through seqwall: {answer}")
        got = self.received(UDP_OPEN, answer["sport"])
        self.assertTrue(got and all(r["size"] == size for r in got), f"the server got {got}")
        return answer

    def test_udp_exchanges(self):
        before = self.lab.daemon.stats()
        for fam in (4, 6):
            for size in SIZES:
                with self.subTest(family=fam, size=size):
                    answer = self.check_exchange(fam, size)
                    if self.MODE == lab.GATEWAY and size == SIZES[0]:
                        # The DF request (IPv4) or the whole IPv6 packet met the inside link's
                        # MTU at the firewall, and the client learnt it.
                        self.assertEqual(answer["mtu"], INSIDE_MTU, f"path MTU discovery: {answer}")
        self.assert_no_fragment_reached_seqwall(before)
        self.assertEqual(stats_delta(before, self.lab.daemon.stats(), "truncated"), 0)

    def test_ping_3000(self):
        L = self.lab
        before = L.daemon.stats()
        for fam in (4, 6):
            with self.subTest(family=fam):
                cp = lab.ns_run(L.ns["client"], ["ping", f"-{fam}", "-n", "-c", "5", "-i", "0.3", "-W", "2", "-s",
                                                 "3000", L.server_addr(fam)], check=False, timeout=40)
                received = [ln for ln in cp.stdout.splitlines() if "bytes from" in ln]
                # In gateway mode the first IPv6 echo may meet the inside MTU (packet too big).
                self.assertGreaterEqual(len(received), 4, cp.stdout + cp.stderr)
                self.assertTrue(all(ln.startswith("3008 bytes from") for ln in received), cp.stdout)
        self.assert_no_fragment_reached_seqwall(before)

    def test_fragments_out_of_order(self):
        L = self.lab
        before = L.daemon.stats()
        for fam in (4, 6):
            for order in ("reverse", "shuffle"):
                with self.subTest(family=fam, order=order):
                    sent = frag_send(L.ns["client"], kind="udp", src=L.client_addr(fam), dst=L.server_addr(fam),
                                     dport=UDP_OPEN, size=3000, fragsize=800, order=order)
                    self.assertGreaterEqual(sent["fragments"], 4, sent)
                    self.assertTrue(sent["answered"], f"no answer to fragments sent in {order} order: {sent}")
                    self.assertEqual([r["size"] for r in self.received(UDP_OPEN, sent["sport"])], [3000])
        self.assert_no_fragment_reached_seqwall(before)

    def test_fragmented_datagram_to_blocked_port(self):
        L = self.lab
        for fam in (4, 6):
            with self.subTest(family=fam):
                before = L.daemon.stats()
                start = L.daemon.log_size()
                sent = frag_send(L.ns["client"], kind="udp", src=L.client_addr(fam), dst=L.server_addr(fam),
                                 dport=UDP_BLOCKED, size=3000, fragsize=1000, order="forward", wait=1.5)
                self.assertFalse(sent["answered"], sent)
                self.assertEqual(self.received(UDP_BLOCKED, sent["sport"]), [])
                # One datagram, one drop; its line shows the ports only the whole datagram has.
                line = (f"drop reason=rule proto=udp src={L.client_addr(fam)} dst={L.server_addr(fam)} "
                        f"sport={sent['sport']} dport={UDP_BLOCKED} ")
                self.assertTrue(lab.wait_for(lambda: line in L.daemon.log_text(since=start), 5),
                                f"no drop line {line!r}:\n{L.daemon.log_text(since=start)}")
                after = L.daemon.stats()
                self.assertEqual(stats_delta(before, after, "rule"), 1)
                self.assertEqual(stats_delta(before, after, "fragment"), 0)

    def seen_by_seqwall(self, sport, since):
        """Whether seqwall logged a drop or keeps a connection for source port sport."""
        L = self.lab
        logged = f" sport={sport} " in L.daemon.log_text(since=since)
        return logged or any(e["orig"]["sport"] == sport or e["reply"]["sport"] == sport
                             for e in L.daemon.conntrack() if "sport" in e["orig"])

    def test_tiny_fragment_trick(self):
        L = self.lab
        sport = 41000
        for fam in (4, 6):
            src, dst = L.client_addr(fam), L.server_addr(fam)
            with self.subTest(family=fam):
                before = L.daemon.stats()
                frag_send(L.ns["client"], kind="tiny", src=src, dst=dst, sport=sport, dport=TCP_OPEN, open=TCP_OPEN)
                frag_send(L.ns["client"], kind="tiny", src=src, dst=dst, sport=sport + 1, dport=TCP_BLOCKED,
                          open=TCP_OPEN)
                if fam == 4:
                    # Reassembled, the SYN is judged whole: it reaches the open port and is
                    # dropped by rule at the blocked one.
                    self.assertTrue(lab.wait_for(lambda: L.probe.segments(dport=TCP_OPEN, sports=[sport]), 5),
                                    "a SYN in tiny fragments to the open port did not arrive whole")
                    self.assertTrue(lab.wait_for(lambda: stats_delta(before, L.daemon.stats(), "rule") == 1, 5),
                                    "the whole SYN to the blocked port was not dropped by rule")
                    self.assertEqual(stats_delta(before, L.daemon.stats(), "fragment"), 0)
                else:
                    # RFC 8200 4.5: a first fragment without the whole upper-layer header is not
                    # reassembled (nf_ct_frag6_gather lets it on as it is); it reaches seqwall as
                    # a fragment and is dropped, and its second half waits in the kernel for a
                    # first that never comes. Neither SYN arrives anywhere.
                    self.assertTrue(lab.wait_for(lambda: stats_delta(before, L.daemon.stats(), "fragment") == 2, 5),
                                    "the tiny first fragments were not dropped as fragments")
                    time.sleep(0.5)
                    self.assertEqual(L.probe.segments(dport=TCP_OPEN, sports=[sport]), [])
                self.assertEqual(L.probe.segments(dport=TCP_BLOCKED, sports=[sport + 1]), [])
                sport += 2

    def test_overlapping_fragment_tricks(self):
        L = self.lab
        for fam, sport in ((4, 42001), (6, 42002)):
            src, dst = L.client_addr(fam), L.server_addr(fam)
            with self.subTest(family=fam, overlap="partial"):
                start = L.daemon.log_size()
                frag_send(L.ns["client"], kind="overlap", src=src, dst=dst, sport=sport, open=TCP_OPEN,
                          dport=TCP_BLOCKED, id=0x4242)
                time.sleep(1.5)
                # The kernel throws the whole datagram away (inet_frag_queue_insert: overlap):
                # nothing reaches seqwall or the server, on either port.
                self.assertEqual(L.probe.segments(sports=[sport]), [])
                self.assertFalse(self.seen_by_seqwall(sport, start),
                                 "the overlapping fragments reached seqwall:\n" + L.daemon.log_text(since=start))
            with self.subTest(family=fam, overlap="duplicate"):
                # A fragment exactly over one already queued is a duplicate, dropped; the
                # datagram is the SYN to the open port, which seqwall judges and passes: what
                # crosses is what seqwall judged.
                frag_send(L.ns["client"], kind="duplicate", src=src, dst=dst, sport=sport + 10, open=TCP_OPEN,
                          dport=TCP_BLOCKED, id=0x4343)
                self.assertTrue(lab.wait_for(lambda: L.probe.segments(dport=TCP_OPEN, sports=[sport + 10]), 5),
                                "the SYN to the open port did not arrive")
                self.assertEqual(L.probe.segments(dport=TCP_BLOCKED, sports=[sport + 10]), [])


class GatewayFragmentTests(FragmentLab):
    MODE = lab.GATEWAY
    RULES = GATEWAY_RULES

    @classmethod
    def prepare(cls):
        L = cls.lab
        lab.run(["ip", "-n", L.ns["fw"], "link", "set", "in0", "mtu", str(INSIDE_MTU)])
        lab.run(["ip", "-n", L.ns["server"], "link", "set", "eth0", "mtu", str(INSIDE_MTU)])


class HostFragmentTests(FragmentLab):
    MODE = lab.HOST
    RULES = HOST_RULES


del FragmentLab  # only its subclasses are tests


# ---------------------------------------------------------------------------------------------
# A diversion of the operator's own, without reassembly
# ---------------------------------------------------------------------------------------------

def without_reassembly(path):
    """The shipped file without its raw table (the rule that turns reassembly on)."""
    out, skipping = [], False
    with open(path) as f:
        for line in f:
            if line.strip() == "*raw":
                skipping = True
            if not skipping:
                out.append(line)
            if skipping and line.strip() == "COMMIT":
                skipping = False
    return "".join(out)


class DiversionWithoutReassemblyTest(lab.LabTestCase):
    MODE = lab.GATEWAY
    RULES = GATEWAY_RULES
    SERVER_PORTS = (TCP_OPEN,)
    CLIENT_PORTS = ()

    @classmethod
    def make_lab(cls):
        lab.REGISTRY.install()
        directory = tempfile.mkdtemp(prefix="seqwall-frag-")
        lab.REGISTRY.add_tmp(directory)
        path = os.path.join(directory, "no-defrag.iptables")
        text = without_reassembly(os.path.join(lab.IPTABLES_DIR, "gateway.iptables"))
        assert "-m socket" not in text and "NFQUEUE" in text, text
        with open(path, "w") as f:
            f.write(text)
        return lab.Lab(cls.MODE, cls.RULES, server_ports=cls.SERVER_PORTS, client_ports=cls.CLIENT_PORTS,
                       iptables=path)

    @classmethod
    def setUpClass(cls):
        problem = lab.scapy_problem()
        if problem:
            raise unittest.SkipTest(problem)
        super().setUpClass()

    def test_fragments_dropped_logged_and_warned_about(self):
        L = self.lab
        start = L.daemon.log_size()
        before = L.daemon.stats()
        fragments = 0
        for fam in (4, 6):
            with self.subTest(family=fam):
                sent = frag_send(L.ns["client"], kind="udp", src=L.client_addr(fam), dst=L.server_addr(fam),
                                 dport=UDP_OPEN, size=3000, fragsize=1000, order="forward", wait=1.5,
                                 id=0x1234 + fam)
                self.assertFalse(sent["answered"], sent)
                fragments += sent["fragments"]
                # The first fragment shows the ports, every one the addresses, protocol and id.
                head = f"drop reason=fragment proto=udp src={L.client_addr(fam)} dst={L.server_addr(fam)} "
                first = head + f"sport={sent['sport']} dport={UDP_OPEN} "
                ident = f" ipid={0x1234 + fam} "
                self.assertTrue(lab.wait_for(
                    lambda: any(first in ln and ln.endswith(ident + "fragoff=0 mf=1")
                                for ln in L.daemon.log_text(since=start).splitlines()), 5),
                    f"no drop line for the first fragment:\n{L.daemon.log_text(since=start)}")
                later = [ln for ln in L.daemon.log_text(since=start).splitlines()
                         if head + "sport=- dport=- " in ln and ident in ln]
                self.assertEqual(len(later), sent["fragments"] - 1, later)
        self.assertEqual(stats_delta(before, L.daemon.stats(), "fragment"), fragments)
        warning = "IP fragments reached queue 0 and were dropped (reason fragment)"
        self.assertTrue(lab.wait_for(lambda: warning in L.daemon.log_text(since=start), 5),
                        f"no warning about fragments:\n{L.daemon.log_text(since=start)}")
        text = L.daemon.log_text(since=start)
        self.assertIn("seqwall-divert start", text)
        # Rate-limited: one warning for both datagrams' fragments.
        self.assertEqual(text.count(warning), 1, text)


if __name__ == "__main__":
    sys.exit(agent_main(sys.argv[1:]))
