"""`reject` answered by seqwall itself, whatever diversion feeds the queue, and marks left alone.

seqwall sends the answer to a rejected packet from its own namespace (a TCP RST, an ICMP or
ICMPv6 port unreachable) and drops the packet; no rule of the diversion takes part, and no
verdict changes a packet's mark. For host and gateway mode, each with three diversions:

- the shipped iptables file (rules/host.iptables, rules/gateway.iptables),
- a bare `-j NFQUEUE` the test writes (no bypass, loopback not left out, every protocol),
- an nft `queue` rule the test writes (a table of its own, nft only inside the lab; skipped,
  saying so, on a kernel built without the queue expression, CONFIG_NFT_QUEUE),

it checks, over IPv4 and IPv6:

- a TCP connect to a rejected port is refused (ECONNREFUSED) in under a second, the SYN never
  reaches the server, the rejection is counted as a `rule` drop and seqwall counts one answer
  sent; in host mode seqwall's own RST crosses OUTPUT and the queue and passes;
- a connected UDP socket's datagram to a rejected port gets ECONNREFUSED on recv in under a
  second, from seqwall's port unreachable;
- host mode: a rejected datagram to the subnet's broadcast address is not answered;
- host mode, `reject out`: the host's own connect is refused by seqwall's RST, which crosses
  OUTPUT and (bare diversion) INPUT over loopback and passes both;
- (gateway, shipped diversion) answers are rate-limited: of 300 rejects decided at once, about
  the limiter's burst of 100 are answered and the rest counted as held back;
- the answers on the wire (scapy in the client namespace): addresses, TTL/hop limit 64, the
  RST's sequence and ACK, the ICMP type/code and quote, every checksum;
- a mark set before the queue (iptables mangle MARK, or nft `meta mark set`, 0x4000 as
  kube-proxy uses) is still on every packet of an accepted connection after the queue: an nft
  chain at a later priority of the same hook counts the marked packets and all packets, and
  the two counts are equal.

Usage: SEQWALL_BIN=.build/debug/seqwall /usr/bin/python3 -m unittest -v Tests/Integration/test_reject.py
Agents (run inside the lab's namespaces by the tests):
  /usr/bin/python3 test_reject.py tcp-connect ADDR PORT   connect once, print the outcome and its time
  /usr/bin/python3 test_reject.py udp-ask ADDR PORT       connected UDP: send once, recv, print the outcome
  /usr/bin/python3 test_reject.py probe-answers JSON      scapy probes, print the answers' fields
"""

import errno
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
import lab  # noqa: E402

AGENT = os.path.abspath(__file__)
OPEN_PORT, REJECT_PORT, UDP_REJECT_PORT, OUT_REJECT_PORT = 8080, 8082, 5355, 9100
MARK = 0x4000

RULES = f"""
default in block
default out pass
pass in tcp to port {OPEN_PORT}
reject in tcp to port {REJECT_PORT}
reject in udp to port {UDP_REJECT_PORT}
reject out tcp to port {OUT_REJECT_PORT}
"""
GATEWAY_INSIDE = "inside 203.0.113.0/24, 2001:db8:2::/64\n"


def agent(ns, *args):
    cp = lab.ns_run(ns, [lab.PY, AGENT] + [str(a) for a in args], check=False, timeout=20)
    try:
        return json.loads(cp.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(f"agent {args} printed nothing useful: {cp.stdout!r} {cp.stderr!r}")


def bare_iptables(mode):
    hooks = ["INPUT", "OUTPUT"] if mode == lab.HOST else ["FORWARD"]
    return "*filter\n" + "".join(f"-A {hook} -j NFQUEUE --queue-num 0\n" for hook in hooks) + "COMMIT\n"


def nft_diversion(mode):
    hooks = ["input", "output"] if mode == lab.HOST else ["forward"]
    chains = "".join(f"  chain {hook} {{ type filter hook {hook} priority 0; queue num 0; }}\n"
                     for hook in hooks)
    return "table inet seqwall_divert {\n" + chains + "}\n"


def mark_counters(mode, set_with_nft):
    """An nft table that counts packets to OPEN_PORT after the queue (priority 10, after the
    diversion's 0 and iptables' filter table), all of them and those carrying MARK; with
    set_with_nft it also sets the mark before the queue (prerouting, as mangle would)."""
    hook = "input" if mode == lab.HOST else "forward"
    setter = (f"  chain mark {{ type filter hook prerouting priority -150; tcp dport {OPEN_PORT} "
              f"meta mark set {MARK:#x}; }}\n") if set_with_nft else ""
    return ("table inet seqwall_marks {\n" + setter +
            f"  chain after {{ type filter hook {hook} priority 10;\n"
            f"    tcp dport {OPEN_PORT} counter name all_packets\n"
            f"    tcp dport {OPEN_PORT} meta mark {MARK:#x} counter name marked_packets\n  }}\n"
            "  counter all_packets { }\n  counter marked_packets { }\n}\n")


class RejectTests:
    """The checks, for a lab with seqwall already running behind the class's DIVERSION."""

    MODE = None
    DIVERSION = None  # "shipped", "bare" or "nft"
    SERVER_PORTS = (OPEN_PORT, REJECT_PORT)
    CLIENT_PORTS = ()

    @classmethod
    def make_lab(cls):
        rules_dir = tempfile.mkdtemp(prefix="seqwall-reject-")
        lab.REGISTRY.add_tmp(rules_dir)
        rules = os.path.join(rules_dir, "reject.rules")
        with open(rules, "w") as f:
            f.write((GATEWAY_INSIDE if cls.MODE == lab.GATEWAY else "") + RULES)
        iptables = None
        if cls.DIVERSION != "shipped":
            # The diversion goes in once seqwall holds the queue (there is no bypass to pass
            # the lab's warm-up pings meanwhile).
            iptables = os.path.join(rules_dir, "nothing.iptables")
            with open(iptables, "w") as f:
                f.write("*filter\nCOMMIT\n")
        cls.rules_dir = rules_dir
        return lab.Lab(cls.MODE, rules, server_ports=cls.SERVER_PORTS, client_ports=cls.CLIENT_PORTS,
                       iptables=iptables)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            fw = cls.lab.fw_ns
            if cls.DIVERSION == "bare":
                for tool in ("iptables-restore", "ip6tables-restore"):
                    lab.ns_run(fw, [tool, "--noflush"], input=bare_iptables(cls.MODE))
            elif cls.DIVERSION == "nft":
                cp = lab.ns_run(fw, ["nft", "-f", "-"], input=nft_diversion(cls.MODE), check=False)
                if cp.returncode != 0 and "Could not process rule" in cp.stderr:
                    # The queue expression is the nft_queue module (CONFIG_NFT_QUEUE); without
                    # it nft cannot divert to a queue at all.
                    raise unittest.SkipTest("this kernel has no nft `queue` expression (CONFIG_NFT_QUEUE): "
                                            + cp.stderr.strip().splitlines()[0])
                if cp.returncode != 0:
                    raise RuntimeError(f"nft -f failed: {cp.stderr.strip()}")
            if cls.DIVERSION != "nft":
                for tool in ("iptables", "ip6tables"):
                    lab.ns_run(fw, [tool, "-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "--dport",
                                    str(OPEN_PORT), "-j", "MARK", "--set-mark", hex(MARK)])
            lab.ns_run(fw, ["nft", "-f", "-"], input=mark_counters(cls.MODE, cls.DIVERSION == "nft"))
        except BaseException:
            cls.lab.destroy()
            raise

    def answers(self):
        return sum(q["reject_answers"] for q in self.lab.daemon.stats()["queues"])

    def counter(self, name):
        out = lab.ns_run(self.lab.fw_ns, ["nft", "list", "counter", "inet", "seqwall_marks", name]).stdout
        m = re.search(r"packets (\d+)", out)
        self.assertIsNotNone(m, out)
        return int(m.group(1))

    def assert_refused(self, role, kind, address, port, lost_answer_reason):
        """One try of the agent's `kind` from `role` to address:port is refused
        (ECONNREFUSED) within a second, counted as one `rule` drop and one answer sent, and
        seqwall's answer, wherever the queue saw it, was not dropped as `lost_answer_reason`."""
        L = self.lab
        before = L.daemon.stats()
        answers_before = self.answers()
        result = agent(L.ns[role], kind, address, port)
        after = L.daemon.stats()
        self.assertEqual(result["error"], "ECONNREFUSED", result)
        self.assertLess(result["seconds"], 1.0, result)
        self.assertEqual(lab.drops(after, "rule") - lab.drops(before, "rule"), 1, after["drops"])
        self.assertEqual(self.answers() - answers_before, 1, after["queues"])
        self.assertEqual(lab.drops(after, lost_answer_reason) - lab.drops(before, lost_answer_reason), 0,
                         after["drops"])

    def test_tcp_reject_refused_within_a_second(self):
        # In host mode the RST goes out through the queue: it must pass, not be dropped for
        # want of a connection.
        for fam in (4, 6):
            with self.subTest(family=fam):
                self.assert_refused("client", "tcp-connect", self.lab.server_addr(fam), REJECT_PORT, "no-connection")
        self.assertEqual(self.lab.server.accepts(REJECT_PORT), [])

    def test_udp_reject_refused_within_a_second(self):
        for fam in (4, 6):
            with self.subTest(family=fam):
                self.assert_refused("client", "udp-ask", self.lab.server_addr(fam), UDP_REJECT_PORT, "icmp-unrelated")

    def test_outbound_reject_refused_locally(self):
        """Host mode, `reject out`: the host's own connect is refused by seqwall's RST, which
        is addressed to the host itself. It crosses OUTPUT and, over loopback, INPUT: with a
        diversion that queues loopback too (the bare one) seqwall sees it twice and lets it
        through both times, though the refusal is forgotten after the first."""
        if self.MODE != lab.HOST:
            self.skipTest("host mode only: a gateway's own connections are not queued")
        for fam in (4, 6):
            with self.subTest(family=fam):
                self.assert_refused("server", "tcp-connect", self.lab.client_addr(fam), OUT_REJECT_PORT,
                                    "no-connection")

    def test_answers_on_the_wire(self):
        """The answers as the client receives them (scapy in the client namespace): the
        RST from the server's address with <SEQ=0><ACK=SEG.SEQ+1><CTL=RST,ACK>, TTL or hop
        limit 64; the port unreachable from the server (host mode) or from the gateway's
        address on the client's side (gateway mode), quoting the datagram; every checksum as
        scapy computes it."""
        problem = lab.scapy_problem()
        if problem:
            self.skipTest(problem)
        L = self.lab
        probes = [[fam, kind, L.server_addr(fam), REJECT_PORT if kind == "tcp" else UDP_REJECT_PORT]
                  for fam in (4, 6) for kind in ("tcp", "udp")]
        answers = agent(L.ns["client"], "probe-answers", json.dumps(probes))
        for (fam, kind, server, _), answer in zip(probes, answers):
            with self.subTest(family=fam, kind=kind):
                self.assertIsNotNone(answer, "no answer came back")
                self.assertEqual(answer["dst"], L.client_addr(fam), answer)
                self.assertEqual(answer["ttl"], 64, answer)
                self.assertTrue(answer["checksums_ok"], answer)
                if kind == "tcp":
                    self.assertEqual(answer["src"], server, answer)
                    self.assertEqual((answer["flags"], answer["seq"], answer["ack"]), ("RA", 0, 7001), answer)
                else:
                    gateway_side = "198.51.100.1" if fam == 4 else "2001:db8:1::1"
                    self.assertEqual(answer["src"], server if self.MODE == lab.HOST else gateway_side, answer)
                    self.assertEqual((answer["type"], answer["code"]), (3, 3) if fam == 4 else (1, 4), answer)
                    self.assertTrue(answer["quotes_datagram"], answer)

    def test_no_answer_to_a_broadcast(self):
        """Host mode: a rejected datagram sent to the subnet's broadcast address is dropped
        but not answered (RFC 1122 3.2.2; the kernel's REJECT does not answer one either, and
        the answer would have to come from the broadcast address)."""
        if self.MODE != lab.HOST:
            self.skipTest("host mode only: the broadcast is delivered to the host itself")
        L = self.lab
        before = L.daemon.stats()
        answers_before = self.answers()
        result = agent(L.ns["client"], "udp-ask", "198.51.100.255", UDP_REJECT_PORT)
        after = L.daemon.stats()
        self.assertEqual(result["error"], "TimeoutError", result)
        self.assertEqual(lab.drops(after, "rule") - lab.drops(before, "rule"), 1, after["drops"])
        self.assertEqual(self.answers() - answers_before, 0, after["queues"])

    def test_mark_survives_an_accepted_packet(self):
        L = self.lab
        all_before, marked_before = self.counter("all_packets"), self.counter("marked_packets")
        for fam in (4, 6):
            with self.subTest(family=fam):
                with L.connect("client", L.server_addr(fam), OPEN_PORT, timeout=5.0) as conn:
                    self.assertTrue(conn.connected, f"allowed connection failed: {conn.error}")
                    self.assertEqual(conn.send(b"marked"), b"echo:marked")
                    conn.close()
        seen = self.counter("all_packets") - all_before
        marked = self.counter("marked_packets") - marked_before
        # Both handshakes, the data and the closes: at least 3 packets each way... per family.
        self.assertGreaterEqual(seen, 6, "the counting chain saw too few packets after the queue")
        self.assertEqual(marked, seen, f"{seen - marked} of {seen} packets lost their mark in the queue")


class HostShipped(RejectTests, lab.LabTestCase):
    MODE, DIVERSION = lab.HOST, "shipped"


class HostBareNFQueue(RejectTests, lab.LabTestCase):
    MODE, DIVERSION = lab.HOST, "bare"


class HostNftQueue(RejectTests, lab.LabTestCase):
    MODE, DIVERSION = lab.HOST, "nft"


class GatewayShipped(RejectTests, lab.LabTestCase):
    MODE, DIVERSION = lab.GATEWAY, "shipped"

    def queued(self):
        """Packets waiting in the kernel's queue for a verdict (queue_total)."""
        fields = lab.ns_run(self.lab.fw_ns, ["cat", "/proc/net/netfilter/nfnetlink_queue"]).stdout.split()
        return int(fields[2]) if len(fields) > 2 else 0

    def test_answers_are_rate_limited(self):
        """300 rejected SYNs from forged source ports, decided at once (seqwall is stopped
        while they queue up): every one is dropped as `rule`, but only the burst of the rate
        limit (100, and what refills while they are decided) is answered; the rest are counted
        as held back."""
        problem = lab.scapy_problem()
        if problem:
            self.skipTest(problem)
        L = self.lab
        count = 300
        packets = [{"family": 4, "dst": L.server4, "sport": 30000 + i, "dport": REJECT_PORT, "flags": "S",
                    "seq": 1000 + i} for i in range(count)]
        before = L.daemon.stats()
        L.daemon.send_signal(signal.SIGSTOP)
        try:
            L.craft(packets)
            self.assertTrue(lab.wait_for(lambda: self.queued() == count, timeout=20),
                            f"the queue holds {self.queued()} of {count}")
        finally:
            L.daemon.send_signal(signal.SIGCONT)
        self.assertTrue(lab.wait_for(lambda: L.daemon.stats()["packets"]["seen"] - before["packets"]["seen"] >= count,
                                     timeout=30))
        after = L.daemon.stats()
        self.assertEqual(lab.drops(after, "rule") - lab.drops(before, "rule"), count, after["drops"])
        sent = sum(q["reject_answers"] for q in after["queues"]) - sum(q["reject_answers"] for q in before["queues"])
        limited = (sum(q["reject_answers_limited"] for q in after["queues"])
                   - sum(q["reject_answers_limited"] for q in before["queues"]))
        self.assertEqual(sent + limited, count, after["queues"])
        self.assertGreaterEqual(sent, 100, after["queues"])
        self.assertLessEqual(sent, 110, after["queues"])


class GatewayBareNFQueue(RejectTests, lab.LabTestCase):
    MODE, DIVERSION = lab.GATEWAY, "bare"


class GatewayNftQueue(RejectTests, lab.LabTestCase):
    MODE, DIVERSION = lab.GATEWAY, "nft"


# ---------------------------------------------------------------------------------------------
# Agents
# ---------------------------------------------------------------------------------------------

def _outcome(error, started):
    name = errno.errorcode.get(error.errno, str(error)) if isinstance(error, OSError) and error.errno else \
        type(error).__name__ if error else None
    print(json.dumps({"error": name, "seconds": time.monotonic() - started}), flush=True)


def _agent_tcp_connect(addr, port):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5.0)
    started = time.monotonic()
    try:
        s.connect((addr, port))
        _outcome(None, started)
    except OSError as e:
        _outcome(e, started)
    finally:
        s.close()


def _agent_udp_ask(addr, port):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3.0)
    if ":" not in addr:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.connect((addr, port))
    started = time.monotonic()
    try:
        s.send(b"seqwall reject test")
        s.recv(2048)
        _outcome(None, started)
    except OSError as e:
        _outcome(e, started)
    finally:
        s.close()


def _agent_probe_answers(spec):
    """For each [family, "tcp"|"udp", address, port]: sends a SYN (sequence 7000) or a UDP
    datagram with scapy and prints what came back (null for nothing), as one JSON list."""
    import logging
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    from scapy.all import ICMP, IP, TCP, UDP, IPv6, IPerror, IPerror6, Raw, conf, send, sniff  # noqa: E402
    from scapy.layers.inet6 import ICMPv6DestUnreach  # noqa: E402
    conf.verb = 0
    out = []
    for family, kind, address, port in json.loads(spec):
        l3 = IP(dst=address) if family == 4 else IPv6(dst=address)
        payload = b"seqwall quoted datagram"
        probe = l3 / (TCP(sport=41000 + port % 1000, dport=port, flags="S", seq=7000) if kind == "tcp"
                      else UDP(sport=42000 + port % 1000, dport=port) / Raw(payload))
        # sniff rather than sr1: scapy reads a datagram quoted from port 5355 as LLMNR and
        # then does not pair the error with its probe.
        wanted = (lambda p: TCP in p and p[TCP].dport == probe[TCP].sport) if kind == "tcp" else \
            (lambda p: (ICMP in p and p[ICMP].type == 3) or ICMPv6DestUnreach in p)
        caught = sniff(iface="eth0", timeout=3, count=1, lfilter=wanted, started_callback=lambda: send(probe))
        if not caught:
            out.append(None)
            continue
        answer = caught[0][IP] if family == 4 else caught[0][IPv6]
        rebuilt = answer.__class__(bytes(answer))
        for layer in (rebuilt, rebuilt.payload):
            for field in ("chksum", "cksum"):
                if field in layer.fields:
                    del layer.fields[field]
        record = {"src": answer.src, "dst": answer.dst,
                  "ttl": answer.ttl if family == 4 else answer.hlim,
                  "checksums_ok": bytes(answer.__class__(bytes(rebuilt))) == bytes(answer)}
        if kind == "tcp":
            record.update(flags=str(answer[TCP].flags), seq=answer[TCP].seq, ack=answer[TCP].ack)
        else:
            icmp = answer[ICMP] if family == 4 else answer[ICMPv6DestUnreach]
            quoted = icmp[IPerror] if family == 4 else icmp[IPerror6]
            record.update(type=icmp.type, code=icmp.code,
                          quotes_datagram=quoted.dst == address and bytes(quoted).endswith(payload))
        out.append(record)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "tcp-connect":
        _agent_tcp_connect(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "udp-ask":
        _agent_udp_ask(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "probe-answers":
        _agent_probe_answers(sys.argv[2])
    else:
        unittest.main(verbosity=2)
