#!/usr/bin/python3
"""Writes the packet-tracking seed corpus (FuzzTargets/Corpus/packet-tracking) in the input
format PacketTrackingFuzz reads (Sources/SeqwallFuzzing/PacketTrackingFuzz.swift), and the
control-request and rule-file seeds. Run it again after changing the format; libFuzzer adds
what it finds to the same directories when `make fuzz` runs.

    /usr/bin/python3 FuzzTargets/scripts/make_seeds.py
"""
import os
import shutil
import struct
import sys

from scapy.all import IP, IPv6, TCP, UDP, ICMP, Raw, IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, \
    IPv6ExtHdrRouting, IPv6ExtHdrFragment, ICMPv6EchoRequest, ICMPv6EchoReply, ICMPv6PacketTooBig, \
    ICMPv6ND_NS, raw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "Corpus")

# Header bits (PacketTrackingFuzz): options, states, half-open, per-source, syn-rate,
# base timeout, established timeout, wheel.
PICKUP, DEFAULT_PASS, EVENTS, RULES = 1, 2, 4, 8
INPUT, OUTPUT, FORWARD, OTHER = 0, 1, 2, 3

C4, S4 = "198.51.100.10", "203.0.113.10"
C6, S6 = "2001:db8:1::10", "2001:db8:2::10"


def header(options=RULES | EVENTS, states=16, half_open=0, per_source=0, syn_rate=0,
           base=5, established=20, wheel=2):
    return bytes([options, states - 1, half_open, per_source, syn_rate, base - 1,
                  established - base, wheel])


def packet(pkt, hook=FORWARD, cut=None):
    data = pkt if isinstance(pkt, bytes) else raw(pkt)
    op = hook << 2
    if cut is not None:
        return bytes([op | 0x10]) + struct.pack(">H", len(data)) + bytes([cut]) + data
    return bytes([op]) + struct.pack(">H", len(data)) + data


def seconds(n):
    return bytes([2 | 4]) + struct.pack(">H", n)


def millis(n):
    return bytes([2]) + struct.pack(">H", n)


def expire(budget=255):
    return bytes([3, budget])


def delete_state(state):
    return bytes([3 | 4, state])


def reload_flip_pickup():
    return bytes([3 | 8])


def collect_events():
    return bytes([3 | 12])


def ip(v6, src, dst, **kw):
    return IPv6(src=src, dst=dst, **kw) if v6 else IP(src=src, dst=dst, **kw)


def flow(v6=False, sport=40000, dport=80):
    """Client and server packet makers for one connection."""
    c, s = (C6, S6) if v6 else (C4, S4)

    def client(flags, seq, ack=0, payload=b"", **tcp):
        return ip(v6, c, s) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, **tcp) / Raw(payload)

    def server(flags, seq, ack=0, payload=b"", **tcp):
        return ip(v6, s, c) / TCP(sport=dport, dport=sport, flags=flags, seq=seq, ack=ack, **tcp) / Raw(payload)
    return client, server


def handshake_data_close(v6):
    client, server = flow(v6)
    opts = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("WScale", 7)]
    steps = [
        packet(client("S", 1000, window=64240, options=opts)),
        packet(server("SA", 5000, 1001, window=65160, options=opts)),
        packet(client("A", 1001, 5001)),
        packet(client("PA", 1001, 5001, b"GET / HTTP/1.0\r\n\r\n")),
        packet(server("A", 5001, 1019)),
        millis(200),
        packet(server("PA", 5001, 1019, b"HTTP/1.0 200 OK\r\n\r\nhello")),
        packet(client("FA", 1019, 5025)),
        packet(server("FA", 5025, 1020)),
        packet(client("A", 1020, 5026)),
        seconds(3),
        expire(),
    ]
    return header() + b"".join(steps)


def est_v4():
    """An IPv4 handshake between C4:40000 and S4:80 (ISNs 1000 and 5000)."""
    return [packet(IP(src=C4, dst=S4) / TCP(sport=40000, dport=80, flags="S", seq=1000)),
            packet(IP(src=S4, dst=C4) / TCP(sport=80, dport=40000, flags="SA", seq=5000, ack=1001)),
            packet(IP(src=C4, dst=S4) / TCP(sport=40000, dport=80, flags="A", seq=1001, ack=5001))]


def write(target, name, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def tracking_seeds():
    c4, s4 = flow(False)
    c6, s6 = flow(True)
    seeds = {}
    seeds["handshake-v4"] = handshake_data_close(False)
    seeds["handshake-v6"] = handshake_data_close(True)

    # Every invalid flag combination, then a valid SYN: bad-flags, then a new connection.
    seeds["bad-flags"] = header() + b"".join(packet(c4(f, 1)) for f in [0, "SF", "SR", "F", "FPU", 0xFF, "SRA"]) \
        + packet(c4("S", 1))

    # Options: length 0, length past the end, window scale 255, SACK blocks, a bare EOL.
    def with_options(blob):
        t = TCP(sport=40001, dport=80, flags="S", seq=7, dataofs=(20 + len(blob)) // 4) / Raw()
        b = bytearray(raw(IP(src=C4, dst=S4) / t))
        return bytes(b) + blob
    def fixed(pkt):
        # Let the IP length cover the appended options, and keep the checksum irrelevant.
        b = bytearray(pkt)
        struct.pack_into(">H", b, 2, len(b))
        return bytes(b)
    seeds["options-zero-length"] = header() + packet(fixed(with_options(b"\x02\x00\x00\x00")))
    seeds["options-past-end"] = header() + packet(fixed(with_options(b"\x01\x01\x08\x0a")))
    seeds["wscale-255"] = header() + packet(c4("S", 1, window=65535, options=[("WScale", 255)])) \
        + packet(s4("SA", 9, 2, window=65535, options=[("WScale", 255)])) + packet(c4("A", 2, 10))
    seeds["sack-blocks"] = header() + packet(c4("S", 1, options=[("SAckOK", b"")])) \
        + packet(s4("SA", 9, 2, options=[("SAckOK", b"")])) \
        + packet(c4("A", 2, 10, options=[("SAck", (12, 20, 30, 40))]))

    # Lying headers: IHL 4, IHL past the packet, total length beyond and short, data offset 15.
    good = bytearray(raw(c4("S", 1)))
    for name, offset, value in [("ihl-4", 0, 0x44), ("ihl-15", 0, 0x4F), ("totlen-long", 2, None),
                                ("totlen-short", 2, 21), ("doff-15", 32, 0xF0), ("doff-1", 32, 0x10)]:
        b = bytearray(good)
        if value is None:
            struct.pack_into(">H", b, 2, 1500)
        elif offset == 2:
            struct.pack_into(">H", b, 2, value)
        else:
            b[offset] = value
        seeds["lying-" + name] = header() + packet(bytes(b))
    seeds["truncated-copy-range"] = header() + packet(raw(c4("S", 1))[:30], cut=4) \
        + packet(raw(c6("S", 1))[:50], cut=200)
    seeds["fragments-v4"] = header() + packet(IP(src=C4, dst=S4, flags="MF") / TCP(dport=80, flags="S")) \
        + packet(IP(src=C4, dst=S4, frag=3) / Raw(b"x" * 16))

    # IPv6 extension chains: a good one, an atomic fragment, a real fragment, one that runs off
    # the end, one longer than the walk allows.
    seeds["v6-ext-chain"] = header() + packet(
        IPv6(src=C6, dst=S6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting()
        / IPv6ExtHdrFragment(offset=0, m=0) / TCP(sport=40000, dport=80, flags="S"))
    seeds["v6-fragment"] = header() + packet(
        IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(offset=0, m=1) / TCP(sport=40000, dport=80, flags="S"))
    chain = raw(IPv6(src=C6, dst=S6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / TCP(dport=80, flags="S"))
    seeds["v6-chain-off-end"] = header() + packet(chain[:50])
    loop = IPv6(src=C6, dst=S6)
    for _ in range(20):
        loop = loop / IPv6ExtHdrDestOpt()
    seeds["v6-chain-too-long"] = header() + packet(loop / TCP(dport=80, flags="S"))
    seeds["v6-mapped"] = header() + packet(IPv6(src="::ffff:198.51.100.10", dst=S6) / TCP(dport=80, flags="S"))

    # Land, ports 0, other protocols.
    seeds["land"] = header() + packet(IP(src=S4, dst=S4) / TCP(sport=80, dport=80, flags="S"))
    seeds["ports-zero"] = header(DEFAULT_PASS) + packet(IP(src=C4, dst=S4) / TCP(sport=0, dport=0, flags="S")) \
        + packet(IP(src=S4, dst=C4) / TCP(sport=0, dport=0, flags="SA", ack=1))
    seeds["udp-icmp"] = header() + packet(raw(IP(src=C4, dst=S4, proto=17) / Raw(b"\0" * 8))) \
        + packet(raw(IP(src=S4, dst=C4, proto=1) / Raw(b"\0" * 8)))

    # UDP and echo flows, a UDP reject and its port unreachable, ICMP errors related and not,
    # with the quote cut to 8 bytes of TCP, and neighbour discovery.
    seeds["udp-flow"] = header() + packet(IP(src=C4, dst=S4) / UDP(sport=5000, dport=53) / Raw(b"q")) \
        + packet(IP(src=S4, dst=C4) / UDP(sport=53, dport=5000) / Raw(b"a")) + seconds(3) \
        + packet(IP(src=C4, dst=S4) / UDP(sport=5000, dport=53) / Raw(b"q")) \
        + packet(IPv6(src=C6, dst=S6) / UDP(sport=5000, dport=54)) + collect_events()
    seeds["udp-reject"] = header() + packet(IP(src=C4, dst=S4) / UDP(sport=5001, dport=69)) \
        + packet(IP(src=S4, dst=C4) / ICMP(type=3, code=3) / raw(IP(src=C4, dst=S4) / UDP(sport=5001, dport=69)),
                 hook=OUTPUT)
    seeds["echo"] = header() + packet(IP(src=C4, dst=S4) / ICMP(type=8, id=7)) \
        + packet(IP(src=S4, dst=C4) / ICMP(type=0, id=7)) + packet(IP(src=S4, dst=C4) / ICMP(type=0, id=8)) \
        + packet(IPv6(src=C6, dst=S6) / ICMPv6EchoRequest(id=9)) + packet(IPv6(src=S6, dst=C6) / ICMPv6EchoReply(id=9))
    quoted4 = raw(IP(src=S4, dst=C4) / TCP(sport=80, dport=40000, flags="A", seq=5001, ack=1001))[:28]
    quoted6 = raw(IPv6(src=S6, dst=C6) / TCP(sport=80, dport=40000, flags="A", seq=5001, ack=1001))[:48]
    seeds["icmp-errors"] = header() + b"".join(est_v4()) \
        + packet(IP(src="198.51.100.1", dst=S4) / ICMP(type=3, code=4, nexthopmtu=1280) / quoted4) \
        + packet(IP(src="198.51.100.1", dst=C4) / ICMP(type=3, code=4, nexthopmtu=1280) / quoted4) \
        + packet(IP(src="198.51.100.1", dst=S4) / ICMP(type=11) / quoted4[:24]) \
        + packet(IPv6(src="2001:db8:1::1", dst=S6) / ICMPv6PacketTooBig(mtu=1280) / quoted6)
    seeds["neighbour-discovery"] = header() + packet(
        IPv6(src="fe80::1", dst="ff02::1:ff00:10", hlim=255) / ICMPv6ND_NS(tgt=S6), hook=INPUT) \
        + packet(IPv6(src="fe80::1", dst="ff02::1:ff00:10", hlim=64) / ICMPv6ND_NS(tgt=S6), hook=INPUT)

    # Table at its limit (2 states) with early drop, half-open limit, syn-rate, expiry.
    syns = b"".join(packet(IP(src="198.51.100.%d" % (20 + i), dst=S4) / TCP(sport=1000 + i, dport=80, flags="S"))
                    for i in range(6))
    seeds["table-full"] = header(states=2) + syns + seconds(10) + expire() + syns
    seeds["half-open-limit"] = header(half_open=3, per_source=2, syn_rate=0x11) + syns + syns + millis(500) + syns
    seeds["per-rule-half-open"] = header(RULES) + b"".join(
        packet(IP(src=C4, dst=S4) / TCP(sport=2000 + i, dport=8000, flags="S"))
        for i in range(4))

    # Pickup of a connection already open, then a reload that switches pickup off.
    seeds["pickup"] = header(PICKUP | RULES) + packet(c4("A", 1001, 5001)) + packet(s4("A", 5001, 1001)) \
        + packet(c4("PA", 1001, 5001, b"x" * 100)) + reload_flip_pickup() + packet(s4("A", 5001, 1101))

    # RST in and out of window, TIME_WAIT assassination, reopen on TIME_WAIT.
    est = [packet(c4("S", 1000)), packet(s4("SA", 5000, 1001)), packet(c4("A", 1001, 5001))]
    seeds["rst-window"] = header() + b"".join(est) + packet(s4("R", 90000)) + packet(s4("R", 5001))
    seeds["time-wait"] = header() + b"".join(est) + packet(c4("FA", 1001, 5001)) + packet(s4("FA", 5001, 1002)) \
        + packet(c4("A", 1002, 5002)) + packet(s4("R", 5002)) + packet(c4("S", 70000)) + delete_state(8) \
        + collect_events()
    seeds["simultaneous-open"] = header(DEFAULT_PASS) + packet(c4("S", 1000)) + packet(s4("S", 5000)) \
        + packet(c4("SA", 1000, 5001)) + packet(s4("SA", 5000, 1001)) + packet(c4("A", 1001, 5001))
    seeds["reject-port-23"] = header() + packet(IP(src=C4, dst=S4) / TCP(sport=40000, dport=23, flags="S")) \
        + packet(IP(src=S4, dst=C4) / TCP(sport=23, dport=40000, flags="RA", ack=1)) \
        + packet(IP(src=C4, dst=S4) / TCP(sport=40000, dport=23, flags="S"))
    seeds["hooks"] = header() + packet(c4("S", 1), hook=INPUT) + packet(flow(False, 3)[0]("S", 1), hook=OUTPUT) \
        + packet(flow(False, 4)[0]("S", 1), hook=OTHER)
    seeds["wheel-expiry"] = header(states=8, base=1, established=2, wheel=1) + b"".join(est) \
        + seconds(1) + expire(1) + seconds(5) + expire(1) + expire(1) + packet(c4("A", 1001, 5001))
    for name, data in seeds.items():
        write("packet-tracking", name, data)
    return len(seeds)


def control_seeds():
    lines = {
        "ping": b'{"command":"ping"}',
        "stats": b'{"command":"stats"}\n',
        "list-filter": b'{"command":"list","filter":{"proto":"tcp","state":"ESTABLISHED","source":"198.51.100.0/24",'
                       b'"destination":"2001:db8:2::10","sourcePort":40000,"destinationPort":80,"family":"ipv4"}}',
        "delete-bad-state": b'{"command":"delete","filter":{"state":"NOPE"}}',
        "bad-prefix": b'{"command":"count","filter":{"source":"198.51.100.0/33"}}',
        "bad-port": b'{"command":"count","filter":{"sourcePort":70000}}',
        "unknown-command": b'{"command":"shutdown"}',
        "not-json": b'stats please',
        "empty": b' \t\r',
        "nested": b'{"command":"watch","filter":{"family":"inet6","proto":"6"},"extra":[1,2,{"a":null}]}',
        "unicode": b'{"command":"list","filter":{"source":"\\u0031\\u0039\\u0038.51.100.1"}}',
    }
    for name, data in lines.items():
        write("control-request", name, data)
    return len(lines)


def rule_seeds():
    golden = os.path.join(os.path.dirname(ROOT), "Tests", "SeqwallRulesTests", "Golden")
    count = 0
    for kind in ("good", "bad"):
        directory = os.path.join(golden, kind)
        for name in sorted(os.listdir(directory)):
            if name.endswith(".rules"):
                shutil.copyfile(os.path.join(directory, name),
                                os.path.join(CORPUS, "rule-file", "%s-%s" % (kind, name)))
                count += 1
    return count


if __name__ == "__main__":
    os.makedirs(os.path.join(CORPUS, "rule-file"), exist_ok=True)
    counts = (tracking_seeds(), control_seeds(), rule_seeds())
    print("seeds: packet-tracking %d, control-request %d, rule-file %d" % counts, file=sys.stderr)
