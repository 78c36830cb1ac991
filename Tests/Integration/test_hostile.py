"""Hostile packets through seqwall in gateway mode, IPv4 and IPv6.

Every packet is built here with scapy and sent as a raw Ethernet frame (AF_PACKET) from the
client namespace to the firewall's out0, so that no IP stack on the sending side fixes what it
lies about (a raw IP socket would rewrite the IPv4 total length and checksum: raw_send_hdrinc).

Each hostile packet has its own source port and one expected outcome:

- dropped by seqwall with a reason: asserted from `seqwall stats -o json` (the drop counter of
  each reason grows by exactly the number of packets expected under it) and by the packet not
  reaching the server (the lab's raw-socket probe there logs every TCP segment delivered);
- passed (by the rules, or as a segment of a tracked connection): the probe sees it arrive;
- dropped by the firewall namespace's own kernel before the FORWARD hook, so that seqwall never
  sees it: ip_rcv_core (net/ipv4/ip_input.c) drops an IPv4 header with IHL below 5, a header
  longer than the packet, a total length beyond the packet or below the header, and a bad
  header checksum; ipv6_rcv (net/ipv6/ip6_input.c) drops a payload length beyond the packet,
  and ipv6_parse_hopopts drops a hop-by-hop header that runs past the packet (every router
  reads hop-by-hop options). These are asserted by the kernel's own counters in the firewall
  namespace (Ip InHdrErrors, IpExt InTruncatedPkts, Ip6InHdrErrors, Ip6InTruncatedPkts), by
  their not reaching the server, and by seqwall's counters growing only by the packets it was
  meant to see. The kernel also trims a packet whose total length is shorter than the frame
  (pskb_trim_rcsum), so seqwall sees the shorter packet: when that cuts into the TCP header,
  seqwall drops it as truncated. Lone IPv4 fragments wait in the kernel's reassembler, which
  the shipped diversion turns on (docs/design.md, Fragments), and are counted there (Ip
  ReasmReqds); seqwall never sees them.

All 256 TCP flag combinations are sent twice per family: as the first packet of a connection
(to the open port) and inside an established connection (in-window sequence and
acknowledgment numbers). The expected verdict comes from docs/design.md, Flags (the valid
combinations) and from the kernel's transition table (tcp_conntracks in
nf_conntrack_proto_tcp.c) for the state.

Throughout, one IPv4 and one IPv6 connection opened by the kernel's own TCP carry data every
0.1 s (before, during and after the hostile traffic), and every exchange must succeed; the
daemon must stay up.
"""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402
from test_limits import RulesInWorkdir  # noqa: E402

OPEN_PORT = 8080
CLOSED_PORT = 8099        # no rule: `default in block`

# Source ports of crafted traffic: the client kernel's RSTs from these are dropped in the client
# namespace (it has no socket for them), so crafted handshakes stay open. The kernel's own
# connections use the ephemeral range (32768-60999), outside this one.
CRAFT_PORTS = (20000, 31999)
MALFORMED_BASE = 20000
FIRST_FLAGS_BASE = {4: 21000, 6: 21500}
ESTABLISHED_FLAGS_BASE = {4: 22000, 6: 22500}

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

RULES = f"""# test_hostile.py: one open port inbound; everything else inbound blocked.
inside 203.0.113.0/24, 2001:db8:2::/64
default in block
default out pass
pass in tcp to port {OPEN_PORT}
set pickup grace 0
"""

# Sends raw Ethernet frames from a namespace: JSON on stdin {iface, src_mac, dst_mac, frames:
# [[ethertype, hex], ...]}. Standard library only.
FRAME_SENDER = r"""
import json, socket, sys
spec = json.loads(sys.stdin.read())
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((spec["iface"], 0))
header = bytes.fromhex(spec["dst_mac"].replace(":", "")) + bytes.fromhex(spec["src_mac"].replace(":", ""))
for ethertype, data in spec["frames"]:
    s.send(header + ethertype.to_bytes(2, "big") + bytes.fromhex(data))
print("sent %d" % len(spec["frames"]), flush=True)
"""

# Opens connections by hand (scapy): SYN, waits for the SYN-ACK, ACK; prints the server's
# initial sequence number per source port. JSON on stdin {iface, src_mac, dst_mac, dport,
# conns: [[family, src, dst, sport, isn], ...]}.
HANDSHAKER = r"""
import json, select, socket, sys, time
import logging
logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import Ether, IP, IPv6, TCP, raw
spec = json.loads(sys.stdin.read())
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((spec["iface"], 0))
eth = Ether(src=spec["src_mac"], dst=spec["dst_mac"])
def l3(family, src, dst):
    return IPv6(src=src, dst=dst) if family == 6 else IP(src=src, dst=dst)
server_isn = {}
conns = spec["conns"]
for start in range(0, len(conns), 32):
    batch = {c[3]: c for c in conns[start:start + 32]}
    def send_syns(ports):
        for port in ports:
            family, src, dst, sport, isn = batch[port]
            s.send(raw(eth / l3(family, src, dst) / TCP(sport=sport, dport=spec["dport"], flags="S", seq=isn,
                                                        window=65535)))
    waiting = set(batch)
    send_syns(waiting)
    # Like a real client, retransmit a SYN that got no answer (once a second): on a loaded
    # machine the kernel's shared backlog can lose a frame before seqwall ever sees it.
    deadline = time.monotonic() + 10
    resend_at = time.monotonic() + 1
    while waiting and time.monotonic() < deadline:
        if time.monotonic() >= resend_at:
            send_syns(waiting)
            resend_at = time.monotonic() + 1
        r, _, _ = select.select([s], [], [], 0.2)
        if not r:
            continue
        frame = Ether(s.recv(65535))
        tcp = frame.getlayer(TCP)
        if tcp is None or tcp.dport not in waiting or (tcp.flags & 0x12) != 0x12:
            continue
        family, src, dst, sport, isn = batch[tcp.dport]
        if tcp.ack != isn + 1:
            continue
        server_isn[sport] = tcp.seq
        waiting.discard(sport)
        s.send(raw(eth / l3(family, src, dst) / TCP(sport=sport, dport=spec["dport"], flags="A", seq=isn + 1,
                                                    ack=tcp.seq + 1, window=65535)))
print(json.dumps(server_isn), flush=True)
"""


def mac_of(ns, ifname):
    out = lab.ns_run(ns, ["ip", "-j", "link", "show", ifname]).stdout
    return json.loads(out)[0]["address"]


def kernel_counters(ns):
    """The firewall namespace's own IP drop counters."""
    counters = {}
    snmp = lab.ns_run(ns, ["cat", "/proc/net/snmp", "/proc/net/netstat"]).stdout.splitlines()
    for header, values in zip(snmp[::2], snmp[1::2]):
        keys, vals = header.split(), values.split()
        if keys and keys[0] in ("Ip:", "IpExt:"):
            for key, value in zip(keys[1:], vals[1:]):
                counters[keys[0][:-1] + key] = int(value)
    for line in lab.ns_run(ns, ["cat", "/proc/net/snmp6"]).stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            counters[parts[0]] = int(parts[1])
    return counters


def valid_flags(flags):
    """The kernel's tcp_valid_flags (nf_conntrack_proto_tcp.c), which seqwall follows: SYN,
    SYN|URG, SYN|ACK, RST, RST|ACK, FIN|ACK, FIN|ACK|URG, ACK, ACK|URG; PSH, ECE and CWR are
    ignored for the check. URG is refused on SYN|ACK and on RST, by the kernel and by
    seqwall."""
    return flags & ~(PSH | ECE | CWR) in (SYN, SYN | URG, SYN | ACK, RST, RST | ACK, FIN | ACK,
                                          FIN | ACK | URG, ACK, ACK | URG)


def first_packet_outcome(flags):
    """A packet of no known connection to the open port."""
    if not valid_flags(flags):
        return "bad-flags"
    if flags & (SYN | ACK | RST) == SYN:
        return "pass"         # opens a connection: the rule passes it
    return "no-connection"    # pickup is off by default


def established_outcome(flags):
    """From the client, in window, on an ESTABLISHED connection (tcp_conntracks, original)."""
    if not valid_flags(flags):
        return "bad-flags"
    if flags & RST:
        return "pass"            # exact sequence number: closes it (RFC 5961 3.2)
    if flags & (SYN | ACK) == SYN | ACK:
        return "bad-transition"  # sES -> sIV: the client cannot send a SYN-ACK
    return "pass"                # SYN: sES -> sIG (the server answers it); FIN|ACK, ACK


class HostileTest(RulesInWorkdir, lab.LabTestCase):
    MODE = lab.GATEWAY
    SERVER_PORTS = (OPEN_PORT,)
    CLIENT_PORTS = ()

    RULE_TEXT = RULES

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        lb = cls.lab
        client, fw = lb.ns["client"], lb.ns["fw"]
        # Packets from inside addresses arriving on out0 (land attacks) are not reverse-path
        # filtered away: seqwall must see them.
        lab.allow_spoofed_sources(fw, "out0")
        low, high = CRAFT_PORTS
        for tool in ("iptables", "ip6tables"):
            lab.ns_run(client, [tool, "-A", "OUTPUT", "-p", "tcp", "--tcp-flags", "RST", "RST",
                                "--sport", f"{low}:{high}", "-j", "DROP"])
        cls.src_mac = mac_of(client, "eth0")
        cls.dst_mac = mac_of(fw, "out0")

    # -- helpers --

    def send_frames(self, packets):
        """packets: [(family, bytes)]; sent as Ethernet frames from the client to the firewall."""
        frames = [[0x86DD if family == 6 else 0x0800, data.hex()] for family, data in packets]
        spec = json.dumps({"iface": "eth0", "src_mac": self.src_mac, "dst_mac": self.dst_mac, "frames": frames})
        cp = lab.ns_run(self.lab.ns["client"], [lab.PY, "-c", FRAME_SENDER], input=spec, timeout=60)
        self.assertEqual(cp.stdout.strip(), f"sent {len(frames)}", cp.stderr)

    def arrived_sports(self, low, high):
        return {seg["sport"] for seg in self.lab.probe.segments() if low <= seg["sport"] <= high
                and seg["dport"] in (OPEN_PORT, CLOSED_PORT, 0)}

    def drop_deltas(self, before, after):
        return {reason: count - before["drops"].get(reason, 0) for reason, count in after["drops"].items()
                if count != before["drops"].get(reason, 0)}

    def start_keepalive(self):
        """One IPv4 and one IPv6 connection exchanging data every 0.1 s until stopped."""
        lb = self.lab
        conns = [lb.connect("client", lb.server_addr(family), OPEN_PORT, timeout=10) for family in (4, 6)]
        for conn in conns:
            self.assertTrue(conn.connected, f"the good connection did not open: {conn.error}")
        record = {"exchanges": 0, "failures": [], "times": []}
        stop = threading.Event()

        def loop():
            n = 0
            while not stop.is_set():
                for conn in conns:
                    payload = b"keepalive %d" % n
                    try:
                        reply = conn.send(payload, timeout=10)
                        if reply != b"echo:" + payload:
                            record["failures"].append(f"wrong echo {reply!r}")
                    except AssertionError as e:
                        record["failures"].append(str(e))
                    record["exchanges"] += 1
                    record["times"].append(time.monotonic())
                    n += 1
                stop.wait(0.1)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()

        def finish():
            stop.set()
            thread.join(30)
            for conn in conns:
                conn.close()
            return record
        return finish

    def check_cases(self, cases, before_stats, before_kernel, label):
        """cases: [(name, family, sport, expected)], expected "pass", a drop reason, or
        ("kernel", counter). sport None: a packet without ports (a later fragment), only
        counted. Waits for stragglers, then checks every case against the probe's log, seqwall's
        drop counters and the firewall kernel's counters."""
        time.sleep(1.0)
        after_stats = self.lab.daemon.stats()
        after_kernel = kernel_counters(self.lab.ns["fw"])
        ports = {sport for _, _, sport, _ in cases if sport is not None}
        segments = self.lab.probe.segments()[getattr(self, "probe_skip", 0):]
        arrived = {(seg["family"], seg["sport"]) for seg in segments if seg["sport"] in ports}
        wanted_drops, wanted_kernel, problems = {}, {}, []
        for name, family, sport, expected in cases:
            if isinstance(expected, tuple):
                wanted_kernel[expected[1]] = wanted_kernel.get(expected[1], 0) + 1
            elif expected != "pass":
                wanted_drops[expected] = wanted_drops.get(expected, 0) + 1
            if sport is not None and ((family, sport) in arrived) != (expected == "pass"):
                problems.append(f"{name} (IPv{family}, sport {sport}): expected {expected}, "
                                f"{'arrived' if (family, sport) in arrived else 'did not arrive'}")
        drops = self.drop_deltas(before_stats, after_stats)
        kernel = {key: after_kernel.get(key, 0) - before_kernel.get(key, 0) for key in wanted_kernel}
        figures = {"label": label, "cases": len(cases), "seqwall_drops": drops, "kernel_drops": kernel,
                   "passed": len(arrived)}
        sys.stderr.write(f"\nhostile figures: {json.dumps(figures)}\n")
        self.assertEqual(problems, [], figures)
        self.assertEqual(drops, wanted_drops, f"seqwall's drop counters: {figures}")
        self.assertEqual(kernel, wanted_kernel, f"the firewall kernel's own drop counters: {figures}")
        self.assertTrue(self.lab.daemon.running(), "seqwall died")
        return figures

    def send_under_keepalive(self, packets):
        """Sends packets while the good connections exchange data; returns the counters from
        before, when it was sent, and the good connections' record."""
        finish = self.start_keepalive()
        try:
            time.sleep(0.5)
            before_stats, before_kernel = self.lab.daemon.stats(), kernel_counters(self.lab.ns["fw"])
            sent_at = time.monotonic()
            self.send_frames(packets)
            time.sleep(0.5)
        finally:
            record = finish()
        return before_stats, before_kernel, sent_at, record

    def check_keepalive(self, record, hostile_sent_at):
        self.assertEqual(record["failures"], [], "the good connections failed during the hostile traffic")
        before = [t for t in record["times"] if t < hostile_sent_at]
        after = [t for t in record["times"] if t > hostile_sent_at]
        self.assertGreater(len(before), 0, "no exchange on the good connections before the hostile traffic")
        self.assertGreater(len(after), 2, "no exchange on the good connections during and after it")

    # -- the cases --

    def malformed_cases(self):
        """(name, family, sport, packet bytes, expected)."""
        from scapy.all import IP, IPv6, TCP, Raw, IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, \
            IPv6ExtHdrFragment, IPOption_EOL, IPOption_NOP, raw
        lb = self.lab
        c4, s4, c6, s6 = lb.client4, lb.server4, lb.client6, lb.server6
        cases = []
        sport = [MALFORMED_BASE]

        def add(name, family, build, expected):
            port = sport[0]
            sport[0] += 1
            cases.append((name, family, port, build(port), expected))

        def syn4(port, **tcp):
            return bytearray(raw(IP(src=c4, dst=s4) / TCP(sport=port, dport=OPEN_PORT, flags="S", seq=7, **tcp)))

        def syn6(port, **tcp):
            return bytearray(raw(IPv6(src=c6, dst=s6) / TCP(sport=port, dport=OPEN_PORT, flags="S", seq=7, **tcp)))

        def ipv4_checksum(b):
            """The IPv4 header checksum again after a field was changed (RFC 791)."""
            ihl = max(5, b[0] & 0x0F) * 4
            b[10:12] = b"\0\0"
            total = sum(int.from_bytes(b[i:i + 2], "big") for i in range(0, min(ihl, len(b)), 2))
            while total >> 16:
                total = (total & 0xFFFF) + (total >> 16)
            b[10:12] = (~total & 0xFFFF).to_bytes(2, "big")
            return bytes(b)

        def patched4(port, offset, value, size=1, **tcp):
            b = syn4(port, **tcp)
            b[offset:offset + size] = value.to_bytes(size, "big")
            return ipv4_checksum(b)

        def with_tcp_options(family, port, options):
            """A SYN whose TCP header carries `options` (raw bytes, a multiple of 4)."""
            l3 = IPv6(src=c6, dst=s6) if family == 6 else IP(src=c4, dst=s4)
            return bytes(raw(l3 / TCP(sport=port, dport=OPEN_PORT, flags="S", seq=7,
                                       dataofs=5 + len(options) // 4) / Raw(options)))

        # IPv4 header lies the kernel itself drops in ip_rcv_core, before any netfilter hook.
        add("IHL 4 (below 5)", 4, lambda p: patched4(p, 0, 0x44), ("kernel", "IpInHdrErrors"))
        add("IHL 15, header past the packet", 4, lambda p: patched4(p, 0, 0x4F), ("kernel", "IpInHdrErrors"))
        add("version 5", 4, lambda p: patched4(p, 0, 0x55), ("kernel", "IpInHdrErrors"))
        add("total length beyond the packet", 4, lambda p: patched4(p, 2, 1400, 2), ("kernel", "IpExtInTruncatedPkts"))
        add("total length below the header", 4, lambda p: patched4(p, 2, 19, 2), ("kernel", "IpInHdrErrors"))

        def bad_checksum(p):
            b = bytearray(patched4(p, 8, 64))
            b[10] ^= 0xFF
            return bytes(b)
        add("bad header checksum", 4, bad_checksum, ("kernel", "IpInHdrErrors"))
        # A longer IPv4 header that tells the truth (IHL 6: NOP, NOP, NOP, EOL): the TCP header
        # is where IHL says, and the SYN passes the rules.
        add("IHL 6 with IP options", 4, lambda p: bytes(raw(
            IP(src=c4, dst=s4, options=[IPOption_NOP(), IPOption_NOP(), IPOption_NOP(), IPOption_EOL()])
            / TCP(sport=p, dport=OPEN_PORT, flags="S"))), "pass")
        # Trimmed by the kernel to its total length, which cuts the TCP header: seqwall's turn.
        add("total length short, cuts TCP", 4, lambda p: patched4(p, 2, 30, 2), "truncated")
        # An honest IP header around a TCP header cut at 10 bytes.
        add("TCP header cut short", 4, lambda p: patched4(p, 2, 30, 2)[:30], "truncated")
        add("IPv6 TCP header cut short", 6,
            lambda p: bytes(syn6(p)[:4]) + (10).to_bytes(2, "big") + bytes(syn6(p)[6:50]), "truncated")
        # IPv6 header lies the kernel drops in ipv6_rcv.
        add("IPv6 payload length beyond the packet", 6,
            lambda p: bytes(syn6(p)[:4]) + (1400).to_bytes(2, "big") + bytes(syn6(p)[6:]),
            ("kernel", "Ip6InTruncatedPkts"))

        for family in (4, 6):
            syn = syn4 if family == 4 else syn6
            tcp_at = 20 if family == 4 else 40

            def doff(value, syn=syn, tcp_at=tcp_at):
                def build(p):
                    b = syn(p)
                    b[tcp_at + 12] = value << 4
                    return ipv4_checksum(b) if b[0] >> 4 == 4 else bytes(b)
                return build
            add("TCP data offset 4", family, doff(4), "bad-header")
            add("TCP data offset 15 past the segment", family, doff(15), "bad-header")
            add("option length 0", family, lambda p, f=family: with_tcp_options(f, p, b"\x02\x00\x01\x01"), "bad-options")
            add("option past the header's end", family,
                lambda p, f=family: with_tcp_options(f, p, b"\x01\x01\x08\x0a"), "bad-options")
            add("option length 1", family, lambda p, f=family: with_tcp_options(f, p, b"\x03\x01\x0e\x00"), "bad-options")
            # Legal: clamped to 14 (RFC 7323 2.3), the SYN passes the rules.
            add("window scale 255", family, lambda p, s=syn: bytes(s(p, options=[("WScale", 255)])), "pass")
            l3 = (lambda: IPv6(src=c6, dst=s6)) if family == 6 else (lambda: IP(src=c4, dst=s4))
            # Port 0 is a port like any other to the tracker (and to conntrack): the rules decide.
            cases.append(("source port 0", family, 0, bytes(raw(l3() / TCP(sport=0, dport=OPEN_PORT, flags="S"))),
                          "pass"))
            add("destination port 0", family,
                lambda p, l3=l3: bytes(raw(l3() / TCP(sport=p, dport=0, flags="S"))), "rule")
            server = s6 if family == 6 else s4
            add("land (same address and port)", family,
                lambda p, server=server, f=family: bytes(raw(
                    (IPv6(src=server, dst=server) if f == 6 else IP(src=server, dst=server))
                    / TCP(sport=OPEN_PORT, dport=OPEN_PORT, flags="S"))), "land")

        # Lone IPv4 fragments: the shipped diversion has the kernel reassemble (docs/design.md,
        # Fragments), so they wait in its reassembler for the rest of their datagram and
        # seqwall never sees them (counted as reassembly requests).
        add("first fragment (MF)", 4, lambda p: bytes(raw(IP(src=c4, dst=s4, flags="MF", id=p)
                                                          / TCP(sport=p, dport=OPEN_PORT, flags="S"))),
            ("kernel", "IpReasmReqds"))
        # A later fragment has no TCP header: no port to find it by, so it is only counted.
        cases.append(("later fragment", 4, None, bytes(raw(IP(src=c4, dst=s4, frag=2, id=7, proto=6) / Raw(b"x" * 24))),
                      ("kernel", "IpReasmReqds")))
        # An IPv6 first fragment without the whole TCP header is not reassembled (RFC 8200 4.5:
        # nf_ct_frag6_gather lets it on as it is): seqwall drops it as a fragment.
        add("IPv6 first fragment, TCP header cut", 6, lambda p: bytes(raw(
            IPv6(src=c6, dst=s6) / IPv6ExtHdrFragment(nh=6, offset=0, m=1, id=p)
            / Raw(raw(TCP(sport=p, dport=OPEN_PORT, flags="S"))[:8]))), "fragment")
        add("IPv6 atomic fragment", 6, lambda p: bytes(raw(IPv6(src=c6, dst=s6) / IPv6ExtHdrFragment(offset=0, m=0, id=p)
                                                           / TCP(sport=p, dport=OPEN_PORT, flags="S"))), "pass")
        add("IPv6 good extension chain", 6, lambda p: bytes(raw(
            IPv6(src=c6, dst=s6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt()
            / TCP(sport=p, dport=OPEN_PORT, flags="S"))), "pass")

        def chain_off_end(p):
            # A destination-options header whose length runs past the packet (routers do not
            # read it; seqwall walks the chain and must stop).
            b = bytearray(raw(IPv6(src=c6, dst=s6) / IPv6ExtHdrDestOpt() / TCP(sport=p, dport=OPEN_PORT, flags="S")))
            b[41] = 200
            return bytes(b)
        add("IPv6 chain runs off the end", 6, chain_off_end, "bad-header")

        def chain_repeats(p):
            # 20 destination-options headers, each naming another: longer than any real chain;
            # seqwall walks at most 16 (the nearest a chain comes to a loop on the wire).
            packet = IPv6(src=c6, dst=s6)
            for _ in range(20):
                packet = packet / IPv6ExtHdrDestOpt()
            return bytes(raw(packet / TCP(sport=p, dport=OPEN_PORT, flags="S")))
        add("IPv6 chain of 20 headers", 6, chain_repeats, "bad-header")

        def hop_by_hop_off_end(p):
            b = bytearray(raw(IPv6(src=c6, dst=s6) / IPv6ExtHdrHopByHop() / TCP(sport=p, dport=OPEN_PORT, flags="S")))
            b[41] = 200
            return bytes(b)
        add("IPv6 hop-by-hop runs off the end", 6, hop_by_hop_off_end, ("kernel", "Ip6InHdrErrors"))
        add("IPv4-mapped IPv6 source", 6, lambda p: bytes(raw(IPv6(src="::ffff:198.51.100.10", dst=s6)
                                                              / TCP(sport=p, dport=OPEN_PORT, flags="S"))), "bad-header")
        return cases

    def test_1_malformed_headers(self):
        cases = self.malformed_cases()
        before_stats, before_kernel, sent_at, record = self.send_under_keepalive(
            [(family, data) for _, family, _, data, _ in cases])
        self.check_cases([(name, family, sport, expected) for name, family, sport, _, expected in cases],
                         before_stats, before_kernel, "malformed")
        self.check_keepalive(record, sent_at)

    def flag_packet(self, family, sport, flags, seq, ack):
        from scapy.all import IP, IPv6, TCP, raw
        lb = self.lab
        l3 = IPv6(src=lb.client6, dst=lb.server6) if family == 6 else IP(src=lb.client4, dst=lb.server4)
        return bytes(raw(l3 / TCP(sport=sport, dport=OPEN_PORT, flags=flags, seq=seq, ack=ack, window=65535)))

    def test_2_every_flag_combination_as_first_packet(self):
        cases, packets = [], []
        for family in (4, 6):
            for flags in range(256):
                sport = FIRST_FLAGS_BASE[family] + flags
                cases.append((f"flags {flags:#04x} first", family, sport, first_packet_outcome(flags)))
                packets.append((family, self.flag_packet(family, sport, flags, 1000 + flags, 777 if flags & ACK else 0)))
        before_stats, before_kernel, sent_at, record = self.send_under_keepalive(packets)
        self.check_cases(cases, before_stats, before_kernel, "flags as first packet")
        self.check_keepalive(record, sent_at)

    def test_3_every_flag_combination_in_an_established_connection(self):
        lb, d = self.lab, self.lab.daemon
        conns = []
        for family in (4, 6):
            for flags in range(256):
                sport = ESTABLISHED_FLAGS_BASE[family] + flags
                conns.append([family, lb.client_addr(family), lb.server_addr(family), sport, 100_000 * (flags + 1)])
        spec = json.dumps({"iface": "eth0", "src_mac": self.src_mac, "dst_mac": self.dst_mac,
                           "dport": OPEN_PORT, "conns": conns})
        cp = lab.ns_run(lb.ns["client"], [lab.PY, "-c", HANDSHAKER], input=spec, timeout=300)
        server_isn = {int(port): isn for port, isn in json.loads(cp.stdout.strip().splitlines()[-1]).items()}
        self.assertEqual(len(server_isn), len(conns), f"handshakes that did not complete: "
                         f"{sorted(c[3] for c in conns if c[3] not in server_isn)[:10]}")
        # Every one is ESTABLISHED in seqwall's table before the flags are tried.
        def established():
            table = d.conntrack()
            return {(6 if ":" in e["orig"]["src"] else 4, e["orig"]["sport"]) for e in table
                    if e["state"] == "ESTABLISHED" and e["orig"]["dport"] == OPEN_PORT}
        wanted = {(c[0], c[3]) for c in conns}
        self.assertTrue(lab.wait_for(lambda: wanted <= established(), 20, 0.5),
                        f"not ESTABLISHED in seqwall: {sorted(wanted - established())[:10]}")

        cases, packets = [], []
        for family, _, _, sport, isn in conns:
            flags = sport - ESTABLISHED_FLAGS_BASE[family]
            cases.append((f"flags {flags:#04x} established", family, sport, established_outcome(flags)))
            packets.append((family, self.flag_packet(family, sport, flags, isn + 1, server_isn[sport] + 1)))
        # The probe has logged the handshakes' ACKs from these ports: only what comes now counts.
        handshake_segments = len(lb.probe.segments())
        before_stats, before_kernel, sent_at, record = self.send_under_keepalive(packets)
        self.probe_skip = handshake_segments
        try:
            self.check_cases(cases, before_stats, before_kernel, "flags in an established connection")
        finally:
            self.probe_skip = 0
        self.check_keepalive(record, sent_at)
