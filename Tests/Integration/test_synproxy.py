"""SYN proxy lab (gateway mode, IPv4 and IPv6): a spoofed SYN flood against a server that cannot
defend itself, with and without a SYN proxy in front of it (docs/synproxy.md).

The server (SYN_SERVER, in the server namespace) listens with a backlog of BACKLOG and runs
with net.ipv4.tcp_syncookies=0 (the sysctl covers IPv6 too), so its SYN queue holds BACKLOG
half-open requests and drops every further SYN until one times out (tcp_conn_request:
inet_csk_reqsk_queue_is_full, counted in TcpExt TCPReqQFullDrop and ListenDrops). A spoofed
SYN's request waits for an ACK that never comes through all its SYN-ACK retransmissions
(about a minute): a few spoofed SYNs a second keep the queue full.

The flood: IPv4 from hping3 (-S --rand-source, paced by FLOOD_INTERVAL_US, at most FLOOD_COUNT
SYNs, ended after FLOOD_SECONDS by `timeout`); IPv6 from SPOOF6 below (hping3 has no IPv6): a
raw IPPROTO_RAW socket sending hand-built IPv6 + TCP SYN headers with random sources in
2001:db8:ff00::/40, at the same pace, bounded the same way. During it, LEGIT real clients
(LEGIT_CLIENTS, started CLIENT_STAGGER apart, each with a CONNECT_TIMEOUT) connect from the
client's own address and exchange a line with the server.

What the server receives is counted in the server namespace by its own counters: an nft
table of named counters (SYNs from the client's real address and SYNs from any other, per
family: the spoofed ones), and TcpExt/Tcp counters (PassiveOpens, ListenDrops,
TCPReqQFullDrop).

Replies to spoofed sources (the server's SYN-ACKs, or the proxy's) find no route in the
firewall namespace (it routes the lab's four prefixes only) and die there.

- NoProtectionTest: seqwall with a plain pass rule. The clients' success rate is a figure
  (printed), asserted only for sanity: the flood reached the server and filled its queue.
  Before the flood, nmap's SYN scan (-sS) of SCAN_PORTS sees the listening ports open and
  the others closed: what a scan sees without a proxy.
- NftSynproxyReferenceTest: no seqwall; the kernel's nft `synproxy` in the firewall namespace
  (lab.nft_synproxy_rules, nft's documented ruleset; tcp_syncookies=2, tcp_timestamps=1,
  nf_conntrack_tcp_loose=0 there). The reference: the success rate and the spoofed SYNs the
  server sees (none), a connection to a closed port reset, and what an nmap SYN scan sees
  through it (printed).
- SeqwallSynproxyTest: seqwall's `pass in tcp to port P synproxy` (docs/synproxy.md): at
  least 99% of the clients succeed and the server receives no spoofed SYN, seqwall answers
  the flood with cookies (`seqwall stats`); bulk transfers through it exact by SHA-256 with
  timestamps, SACK and window scaling under loss (LOSS_TABLE: this kernel has no netem); a
  closed port behind the rule resets the client; ACKs with bad cookies are dropped
  (`synproxy-bad-cookie`) and never reach the server; once a client has been refused at the
  closed port behind the rule, nmap's SYN scan sees exactly the open and closed ports it sees
  without a proxy (the refusal marks the port closed and its SYNs then go to the server;
  a scan's first contact with it would be answered by the cookie SYN-ACK, as with nft's
  synproxy).
  The rule's ports have a queue of their own (SYNPROXY_QUEUE, `--synproxy-queue`, diverted
  both ways ahead of the general rule by lab.with_synproxy_queue): the kernel's
  /proc/net/netfilter/nfnetlink_queue shows it copying whole packets and the general queue
  256 bytes, a bulk transfer outside the rule goes through the general queue and one behind
  it through the synproxy queue; a synproxy port the diversion leaves on the general queue
  has its SYNs dropped as `synproxy-wrong-queue`; a client whose first ACK is lost
  (FIRST_ACK_LOSS) still gets through on its zero-window probe.
- SeqwallAdaptiveSynproxyTest: `set synproxy adaptive` with no flood: the proxy is not
  engaged, no cookie is sent, and nmap's SYN scan sees every port as without a proxy, the
  closed port behind the rule closed on first contact.
- SynProxyQueueOptionTest: `seqwall run --synproxy-queue` in a bare namespace: without it
  every queue copies whole packets and a warning names the option, once; with it only its
  queue does; a queue given twice is refused.

Figures are printed on stderr as JSON lines starting with "synproxy figures:".
"""

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402
from test_cli_truth import bare_namespace  # noqa: E402
from test_limits import hping3_problem  # noqa: E402

OPEN_PORT = 8080      # SYN_SERVER: the flooded port, one line echoed per connection
BULK_PORT = 8081      # SYN_SERVER: bulk transfers
CLOSED_PORT = 8082    # nothing listens (behind the SYN proxy's rule where there is one)
PLAIN_CLOSED_PORT = 8083  # nothing listens, never behind a SYN proxy
PLAIN_BULK_PORT = 8084  # SYN_SERVER: bulk transfers never behind a SYN proxy
MISDIVERTED_PORT = 8085  # behind a synproxy rule, but diverted to the general queue
ECHO_PORT = 8090      # the lab's own echo server (unflooded)
SCAN_PORTS = (OPEN_PORT, BULK_PORT, CLOSED_PORT, PLAIN_CLOSED_PORT, ECHO_PORT)
BACKLOG = 16

# The lab runs seqwall's debug build, which must keep up with the flood: a SYN the kernel
# queue drops on overflow (queue full) never reaches seqwall, and a real client's SYN among
# them would count as a proxy failure. So the flood is paced at 10,000 SYNs a second nominal
# (hping3 -i u100, which sleeps between packets and so sends fewer; SPOOF6 keeps the rate);
# `make bench-e2e` floods the release build at full speed (hping3 --flood). It lasts as long
# as the clients (about 6 s) and is bounded by count and time whatever the rate.
FLOOD_INTERVAL_US = 100
FLOOD_SECONDS = 15
FLOOD_COUNT = FLOOD_SECONDS * 1000000 // FLOOD_INTERVAL_US
LEGIT = 200
CLIENT_STAGGER = 0.02   # 200 clients started over 4 s
CONNECT_TIMEOUT = 4.0   # the first SYN and its retransmissions at 1 s and 3 s

# The server: listens on the given ports, IPv4 and IPv6, with the given backlog; each
# connection reads one line: "up N" (reads N bytes, answers their SHA-256 in hex and a
# newline), "down N" (sends the SHA-256 of N bytes it then sends, a newline, the bytes), any
# other line is answered "echo:" + the line. Prints "ready" once listening.
SYN_SERVER = r"""
import hashlib, os, socket, sys, threading
ports, backlog = [int(p) for p in sys.argv[1].split(",")], int(sys.argv[2])
def tcp_options(c):
    info = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return info[5], info[6] & 15, info[6] >> 4
def handle(c):
    c.settimeout(60)
    try:
        f = c.makefile("rb")
        line = f.readline(256)
        words = line.split()
        if len(words) == 2 and words[0] == b"up":
            n, h = int(words[1]), hashlib.sha256()
            while n > 0:
                chunk = f.read1(min(n, 1 << 16))
                if not chunk:
                    break
                h.update(chunk)
                n -= len(chunk)
            opts = tcp_options(c)
            c.sendall(b"%s %d %d %d\n" % (h.hexdigest().encode(), *opts))
        elif len(words) == 2 and words[0] == b"down":
            data = os.urandom(int(words[1]))
            c.sendall(hashlib.sha256(data).hexdigest().encode() + b"\n" + data)
        else:
            c.sendall(b"echo:" + line)
    except OSError:
        pass
    finally:
        c.close()
def acceptor(s):
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()
for port in ports:
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port))
        s.listen(backlog)
        threading.Thread(target=acceptor, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# The real clients: COUNT connections, one started every STAGGER seconds, each on a thread of
# its own: connect (TIMEOUT), send a line, expect it echoed; prints one JSON list of outcomes.
LEGIT_CLIENTS = r"""
import json, socket, sys, threading, time
addr, port, count, stagger, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
results = [None] * count
def one(i):
    t0 = time.monotonic()
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((addr, port))
        connected = time.monotonic() - t0
        s.settimeout(5)
        line = b"legit %d\n" % i
        s.sendall(line)
        want, got = b"echo:" + line, b""
        while len(got) < len(want):
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        ok = got == want
        results[i] = {"ok": ok, "connect": round(connected, 3), "error": None if ok else repr(got)}
    except OSError as e:
        results[i] = {"ok": False, "connect": round(time.monotonic() - t0, 3), "error": type(e).__name__}
    finally:
        s.close()
threads = []
for i in range(count):
    t = threading.Thread(target=one, args=(i,))
    t.start()
    threads.append(t)
    time.sleep(stagger)
for t in threads:
    t.join()
print(json.dumps(results), flush=True)
"""

# The IPv6 spoofed SYN flood (hping3 has no IPv6): hand-built IPv6 + TCP headers on an
# IPPROTO_RAW socket (which includes the IPv6 header, inet6_create), random sources in
# 2001:db8:ff00::/40 (a documentation prefix no lab namespace routes), random source ports and
# sequence numbers; at most COUNT SYNs and SECONDS, RATE a second (0: as fast as it goes);
# prints {"sent", "seconds"}.
SPOOF6 = r"""
import json, os, socket, struct, sys, time
dst, port, count, seconds, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
dst_b = socket.inet_pton(socket.AF_INET6, dst)
def fold(x):
    while x >> 16:
        x = (x & 0xFFFF) + (x >> 16)
    return x
def words(b):
    return sum(struct.unpack("!%dH" % (len(b) // 2), b))
base = words(dst_b) + 20 + 6
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
batch = 4096
sent, started = 0, time.monotonic()
while sent < count and time.monotonic() - started < seconds:
    rnd = os.urandom(batch * 19)
    pkts = []
    for i in range(min(batch, count - sent)):
        r = rnd[i * 19:(i + 1) * 19]
        src = b"\x20\x01\x0d\xb8\xff" + r[:11]
        sport = 1024 + (int.from_bytes(r[11:13], "big") % 64000)
        tcp = struct.pack("!HHIIBBHHH", sport, port, int.from_bytes(r[13:17], "big"), 0, 5 << 4, 0x02, 64240, 0, 0)
        csum = (~fold(base + words(src) + words(tcp))) & 0xFFFF
        tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
        pkts.append(struct.pack("!IHBB", 6 << 28, 20, 6, 64) + src + dst_b + tcp)
    for p in pkts:
        try:
            s.sendto(p, (dst, 0))
            sent += 1
        except OSError:
            pass
        if rate and sent % 64 == 0:
            ahead = started + sent / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
print(json.dumps({"sent": sent, "seconds": round(time.monotonic() - started, 2)}), flush=True)
"""

# One bulk transfer: "up" sends SIZE random bytes and compares their SHA-256 with the server's;
# "down" reads SIZE bytes and compares theirs with the one the server sent first. Prints
# {"ok", "seconds", "client": [tcpi_options, snd_wscale, rcv_wscale], "server": [...]}
# (tcpi_options: 1 timestamps, 2 SACK, 4 window scaling), and on a socket error (30 s
# without progress) the stage it stopped in and the bytes done.
BULK_CLIENT = r"""
import hashlib, json, os, socket, sys, time
addr, port, direction, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
t0 = time.monotonic()
out = {"ok": False, "stage": "connect", "done": 0}
def opts():
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
    return [info[5], info[6] & 15, info[6] >> 4]
try:
    s = socket.create_connection((addr, port), timeout=30)
    out["sport"] = s.getsockname()[1]
    f = s.makefile("rb")
    if direction == "up":
        out["stage"] = "send"
        s.sendall(b"up %d\n" % size)
        h, left = hashlib.sha256(), size
        while left > 0:
            chunk = os.urandom(min(left, 1 << 16))
            s.sendall(chunk)
            h.update(chunk)
            left -= len(chunk)
            out["done"] = size - left
        out["stage"] = "reply"
        reply = f.readline().split()
        out["client"] = opts()
        out["ok"] = len(reply) == 4 and reply[0].decode() == h.hexdigest()
        out["server"] = [int(x) for x in reply[1:]]
    else:
        out["stage"] = "request"
        s.sendall(b"down %d\n" % size)
        want = f.readline().strip().decode()
        out["stage"] = "receive"
        h, left = hashlib.sha256(), size
        while left > 0:
            chunk = f.read1(min(left, 1 << 16))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
            out["done"] = size - left
        out["client"] = opts()
        out["ok"] = left == 0 and h.hexdigest() == want
    out["stage"] = "done"
    s.close()
except OSError as e:
    out["error"] = type(e).__name__
out["seconds"] = round(time.monotonic() - t0, 2)
print(json.dumps(out), flush=True)
"""

# A connection to a port nothing listens on: prints "refused" (connect failed with
# ECONNREFUSED), "reset" (a RST came after the client took the handshake as done, as through a
# SYN proxy: ECONNRESET from connect or from the first read, with no data), or what happened
# instead.
CLOSED_CLIENT = r"""
import socket, sys
addr, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(8)
try:
    s.connect((addr, port))
except ConnectionRefusedError:
    print("refused"); sys.exit()
except ConnectionResetError:
    print("reset"); sys.exit()
except OSError as e:
    print("connect " + type(e).__name__); sys.exit()
try:
    s.sendall(b"hello\n")
    data = s.recv(100)
    print("data %r" % data)
except ConnectionResetError:
    print("reset")
except OSError as e:
    print("read " + type(e).__name__)
"""

BULK_SIZE = 4 << 20

# Loss on the firewall's two links, both ways. This kernel has no netem (sch_netem), so the
# loss is made at the ends of the links: in the client and the server namespaces, a random
# LOSS_PER_MILLE of the bulk port's data segments (over 200 bytes) is dropped as it leaves and
# as it arrives (each direction crosses two such hooks), counted. The handshake's segments are
# under 200 bytes and so spared here; the loss of the client's first ACK to the SYN proxy is
# a test of its own (FIRST_ACK_LOSS).
LOSS_PER_MILLE = 10
LOSS_TABLE_NAME = "synproxyloss"
LOSS_TABLE = f"""
table inet {LOSS_TABLE_NAME} {{
    counter lost {{ }}
    chain input {{
        type filter hook input priority -10; policy accept;
        tcp sport {BULK_PORT} meta length > 200 numgen random mod 1000 < {LOSS_PER_MILLE} counter name lost drop
        tcp dport {BULK_PORT} meta length > 200 numgen random mod 1000 < {LOSS_PER_MILLE} counter name lost drop
    }}
    chain output {{
        type filter hook output priority -10; policy accept;
        tcp sport {BULK_PORT} meta length > 200 numgen random mod 1000 < {LOSS_PER_MILLE} counter name lost drop
        tcp dport {BULK_PORT} meta length > 200 numgen random mod 1000 < {LOSS_PER_MILLE} counter name lost drop
    }}
}}
"""

# The client's first pure ACK to BULK_PORT, per family, dropped as it leaves, and nothing after
# it: each quota holds more than one such ACK (40 to 52 bytes for IPv4, 60 to 72 for IPv6, with
# or without timestamps) and less than two, and the rule matches while its quota is not used
# up (nft_quota: `until`), so it drops one packet in all, counted.
FIRST_ACK_TABLE = "synproxyfirstack"
FIRST_ACK_LOSS = f"""
table inet {FIRST_ACK_TABLE} {{
    counter lost4 {{ }}
    counter lost6 {{ }}
    chain output {{
        type filter hook output priority -10; policy accept;
        meta nfproto ipv4 tcp dport {BULK_PORT} tcp flags == ack quota until 60 bytes counter name lost4 drop
        meta nfproto ipv6 tcp dport {BULK_PORT} tcp flags == ack quota until 80 bytes counter name lost6 drop
    }}
}}
"""

# The first SYN seqwall sends the server for BULK_PORT, per family, dropped as it arrives, and
# nothing after it (the quota as in FIRST_ACK_LOSS: a SYN with options is 60 to 64 bytes for
# IPv4, 80 to 84 for IPv6; each quota holds one and not two).
FIRST_SYN_TABLE = "synproxyfirstsyn"
FIRST_SYN_LOSS = f"""
table inet {FIRST_SYN_TABLE} {{
    counter lost4 {{ }}
    counter lost6 {{ }}
    chain input {{
        type filter hook input priority -10; policy accept;
        meta nfproto ipv4 tcp dport {BULK_PORT} tcp flags == syn quota until 100 bytes counter name lost4 drop
        meta nfproto ipv6 tcp dport {BULK_PORT} tcp flags == syn quota until 150 bytes counter name lost6 drop
    }}
}}
"""

# The server namespace's own SYN counters: SYNs to the flooded port from the client's real
# address and from any other (spoofed), per family.
COUNTER_TABLE = "synproxylab"
SERVER_COUNTERS = f"""
table inet {COUNTER_TABLE} {{
    counter legit4 {{ }}
    counter spoofed4 {{ }}
    counter legit6 {{ }}
    counter spoofed6 {{ }}
    chain input {{
        type filter hook input priority 0; policy accept;
        tcp dport {OPEN_PORT} tcp flags & (syn | ack) == syn ip saddr 198.51.100.10 counter name legit4
        tcp dport {OPEN_PORT} tcp flags & (syn | ack) == syn ip saddr != 198.51.100.10 counter name spoofed4
        tcp dport {OPEN_PORT} tcp flags & (syn | ack) == syn ip6 saddr 2001:db8:1::10 counter name legit6
        tcp dport {OPEN_PORT} tcp flags & (syn | ack) == syn ip6 saddr != 2001:db8:1::10 counter name spoofed6
    }}
}}
"""


def figures_line(name, figures):
    sys.stderr.write(f"\nsynproxy figures: {json.dumps(dict(case=name, **figures))}\n")
    sys.stderr.flush()


def tx_packets(ns, ifname):
    return int(lab.ns_run(ns, ["cat", f"/sys/class/net/{ifname}/statistics/tx_packets"]).stdout)


class SynFloodHarness:
    """The server, its counters, the flood and the real clients, for a LabTestCase in gateway
    mode. Subclasses call prepare_flood_lab() from setUpClass once the lab is built."""

    SERVER_PORTS = (ECHO_PORT,)
    CLIENT_PORTS = ()

    @classmethod
    def write_rules(cls, name, text):
        """The class's seqwall policy, in a directory removed with the lab's other files."""
        directory = tempfile.mkdtemp(prefix="seqwall-synproxy-rules-")
        lab.REGISTRY.install()
        lab.REGISTRY.add_tmp(directory)
        cls.RULES = os.path.join(directory, name)
        with open(cls.RULES, "w") as f:
            f.write(text)

    @classmethod
    def prepare_flood_lab(cls):
        lb = cls.lab
        server, fw = lb.ns["server"], lb.ns["fw"]
        # The lab's raw-socket probe would log every flood packet, competing for the CPU.
        lab.REGISTRY.kill_proc(lb.probe.proc, grace=1.0)
        lab.ns_run(server, ["sysctl", "-qw", "net.ipv4.tcp_syncookies=0"])
        for ns in (lb.ns["client"], server):
            for knob in ("tcp_window_scaling", "tcp_sack", "tcp_timestamps"):
                lab.ns_run(ns, ["sysctl", "-qw", f"net.ipv4.{knob}=1"])
        # Spoofed IPv4 sources arrive on out0, which routes nowhere near them.
        lab.allow_spoofed_sources(fw, "out0")
        lab.ns_run(server, ["nft", "-f", "-"], input=SERVER_COUNTERS)
        log = os.path.join(lb.workdir, "synserver.stderr")
        cls.syn_server = lab.spawn(server, [lab.PY, "-c", SYN_SERVER, f"{OPEN_PORT},{BULK_PORT},{PLAIN_BULK_PORT}",
                                            str(BACKLOG)], log)
        line = lab.LineReader(cls.syn_server.stdout).readline(10)
        if line != "ready":
            raise RuntimeError(f"SYN_SERVER did not start: {line!r}")

    # -- counters --

    def server_counters(self):
        server = self.lab.ns["server"]
        out = lab.ns_run(server, ["nft", "-j", "list", "counters", "table", "inet", COUNTER_TABLE]).stdout
        counters = {c["counter"]["name"]: c["counter"]["packets"]
                    for c in json.loads(out)["nftables"] if "counter" in c}
        return dict(counters,
                    passive_opens=lab.proc_net_counter(server, "/proc/net/snmp", "Tcp", "PassiveOpens"),
                    listen_drops=lab.proc_net_counter(server, "/proc/net/netstat", "TcpExt", "ListenDrops"),
                    req_q_full_drops=lab.proc_net_counter(server, "/proc/net/netstat", "TcpExt",
                                                          "TCPReqQFullDrop"))

    # -- traffic --

    def start_flood(self, family):
        lb = self.lab
        client = lb.ns["client"]
        log = os.path.join(lb.workdir, f"flood{family}.log")
        if family == 4:
            pace = ["--flood"] if FLOOD_INTERVAL_US == 0 else ["-i", f"u{FLOOD_INTERVAL_US}"]
            argv = ["timeout", str(FLOOD_SECONDS), "hping3", "-S", "--rand-source", *pace,
                    "-c", str(FLOOD_COUNT), "-p", str(OPEN_PORT), "-q", lb.server4]
        else:
            rate = 0 if FLOOD_INTERVAL_US == 0 else 1e6 / FLOOD_INTERVAL_US
            argv = ["timeout", str(FLOOD_SECONDS + 5), lab.PY, "-c", SPOOF6, lb.server6,
                    str(OPEN_PORT), str(FLOOD_COUNT), str(FLOOD_SECONDS), str(rate)]
        return lab.spawn(client, argv, log, stdout=False)

    def legit_clients(self, family, count=LEGIT):
        lb = self.lab
        argv = [lab.PY, "-c", LEGIT_CLIENTS, lb.server_addr(family), str(OPEN_PORT), str(count),
                str(CLIENT_STAGGER), str(CONNECT_TIMEOUT)]
        cp = lab.ns_run(lb.ns["client"], argv, timeout=count * CLIENT_STAGGER + CONNECT_TIMEOUT + 60)
        return json.loads(cp.stdout.strip().splitlines()[-1])

    def flood_with_clients(self, family, name):
        """The flood, and the real clients from its second second on; returns the figures
        (also printed)."""
        if family == 4:
            problem = hping3_problem()
            if problem:
                self.skipTest(problem)
        client = self.lab.ns["client"]
        before = self.server_counters()
        tx_before = tx_packets(client, "eth0")
        flood = self.start_flood(family)
        started = time.monotonic()
        try:
            lab.wait_for(lambda: tx_packets(client, "eth0") - tx_before >= 1000 or
                         flood.poll() is not None, 5, 0.05)
            time.sleep(1.0)
            legit_started = time.monotonic() - started
            results = self.legit_clients(family)
            legit_done = time.monotonic() - started
            flood_running = flood.poll() is None
        finally:
            lab.REGISTRY.kill_proc(flood)
        flood_seconds = time.monotonic() - started
        time.sleep(0.5)
        after = self.server_counters()
        sent = tx_packets(client, "eth0") - tx_before
        delta = {k: after[k] - before[k] for k in after}
        ok = sum(1 for r in results if r["ok"])
        errors = {}
        for r in results:
            if not r["ok"]:
                errors[r["error"]] = errors.get(r["error"], 0) + 1
        figures = {
            "family": family, "legit_ok": ok, "legit_total": len(results),
            "success_rate": round(ok / len(results), 4),
            "legit_connect_p50_s": sorted(r["connect"] for r in results)[len(results) // 2],
            "legit_errors": errors, "legit_window_s": [round(legit_started, 2), round(legit_done, 2)],
            "client_packets_sent": sent, "flood_seconds": round(flood_seconds, 2),
            "flood_pps": round(sent / flood_seconds), "flood_outlived_clients": flood_running,
            "server_spoofed_syns": delta[f"spoofed{family}"], "server_legit_syns": delta[f"legit{family}"],
            "server_passive_opens": delta["passive_opens"], "server_listen_drops": delta["listen_drops"],
            "server_req_q_full_drops": delta["req_q_full_drops"],
        }
        figures_line(name, figures)
        self.assertEqual(len(results), LEGIT, figures)
        self.assertGreater(sent, 10 * LEGIT, f"the flood hardly ran: {figures}")
        return figures

    def bulk(self, family, direction, port=BULK_PORT, size=BULK_SIZE):
        lb = self.lab
        cp = lab.ns_run(lb.ns["client"], [lab.PY, "-c", BULK_CLIENT, lb.server_addr(family),
                                          str(port), direction, str(size)], timeout=180)
        return json.loads(cp.stdout.strip().splitlines()[-1])

    def bulk_transfers_with_loss(self, name):
        """BULK_SIZE up and down per family, losing LOSS_PER_MILLE of the bulk port's segments
        (see LOSS_TABLE); each exact by SHA-256, with timestamps, SACK and window scaling on
        both ends."""
        ends = (self.lab.ns["client"], self.lab.ns["server"])
        for ns in ends:
            lab.ns_run(ns, ["nft", "-f", "-"], input=LOSS_TABLE)
        try:
            for family in (4, 6):
                for direction in ("up", "down"):
                    out = self.bulk(family, direction)
                    figures_line(name, {"family": family, "direction": direction, "bytes": BULK_SIZE,
                                        "loss_per_mille_per_end": LOSS_PER_MILLE, **out})
                    self.assertTrue(out["ok"], f"IPv{family} {direction}: {out}")
                    options, snd_wscale, rcv_wscale = out["client"]
                    self.assertEqual(options & 7, 7, f"IPv{family} {direction}: client options {out}")
                    self.assertGreater(snd_wscale, 0, out)
                    self.assertGreater(rcv_wscale, 0, out)
                    if direction == "up":
                        self.assertEqual(out["server"][0] & 7, 7, f"IPv{family}: server options {out}")
            lost = [self.lost_segments(ns) for ns in ends]
            figures_line(name, {"segments_lost_at_client_and_server": lost})
            self.assertTrue(all(n > 0 for n in lost), f"no segment was lost: {lost}")
        finally:
            for ns in ends:
                lab.ns_run(ns, ["nft", "delete", "table", "inet", LOSS_TABLE_NAME], check=False)

    @staticmethod
    def lost_segments(ns):
        out = lab.ns_run(ns, ["nft", "-j", "list", "counters", "table", "inet", LOSS_TABLE_NAME]).stdout
        return sum(c["counter"]["packets"] for c in json.loads(out)["nftables"] if "counter" in c)

    def closed_port(self, family):
        lb = self.lab
        cp = lab.ns_run(lb.ns["client"], [lab.PY, "-c", CLOSED_CLIENT, lb.server_addr(family),
                                          str(CLOSED_PORT)], timeout=30)
        return cp.stdout.strip()

    def nmap_scans(self, name):
        """nmap's SYN scan of SCAN_PORTS from the client: {family: {port: state}} (printed)."""
        if shutil.which("nmap") is None:
            self.skipTest("nmap is not installed (make deps)")
        scans = {family: self.nmap_states(family) for family in (4, 6)}
        for family, states in scans.items():
            figures_line(name, {"family": family, "states": states})
        return scans

    def nmap_states(self, family):
        lb = self.lab
        argv = ["timeout", "60", "nmap", "-sS", "-Pn", "-n", "--max-retries", "2", "-oX", "-",
                "-p", ",".join(map(str, SCAN_PORTS))]
        argv += (["-6"] if family == 6 else []) + [lb.server_addr(family)]
        cp = lab.ns_run(lb.ns["client"], argv, timeout=90)
        root = ET.fromstring(cp.stdout)
        return {int(p.get("portid")): p.find("state").get("state") for p in root.iter("port")}


class SeqwallFloodHarness(SynFloodHarness):
    """The harness with seqwall in the firewall namespace, running the class's RULE_TEXT."""

    RULE_TEXT = None

    @classmethod
    def setUpClass(cls):
        cls.write_rules(f"{cls.__name__}.rules", cls.RULE_TEXT)
        super().setUpClass()
        try:
            cls.prepare_flood_lab()
        except BaseException:
            cls.lab.destroy()
            raise


# What a scan must see without any proxy: the ports the server listens on are open, the others
# closed (the server answers their SYN with a RST, and every rule of these classes passes them).
UNPROXIED_SCAN = {OPEN_PORT: "open", BULK_PORT: "open", CLOSED_PORT: "closed", PLAIN_CLOSED_PORT: "closed",
                  ECHO_PORT: "open"}


class NoProtectionTest(SeqwallFloodHarness, lab.LabTestCase):
    MODE = lab.GATEWAY
    RULE_TEXT = f"""# test_synproxy.py, NoProtectionTest: the flooded server behind a plain pass rule.
inside 203.0.113.0/24, 2001:db8:2::/64
default in block
default out pass
pass in tcp to port {OPEN_PORT}, {BULK_PORT}, {CLOSED_PORT}, {PLAIN_CLOSED_PORT}, {ECHO_PORT}
limit states 65536
set pickup grace 0
"""

    def test_1_flood_ipv4(self):
        fig = self.flood_with_clients(4, "no-protection")
        # Sanity: the flood reached the server and filled its SYN queue.
        self.assertGreater(fig["server_spoofed_syns"], BACKLOG, fig)
        self.assertGreater(fig["server_req_q_full_drops"], 0, fig)

    def test_2_flood_ipv6(self):
        fig = self.flood_with_clients(6, "no-protection")
        self.assertGreater(fig["server_spoofed_syns"], BACKLOG, fig)
        self.assertGreater(fig["server_req_q_full_drops"], 0, fig)

    def test_0_nmap_scan_without_proxy(self):
        for family, states in self.nmap_scans("nmap-no-proxy").items():
            self.assertEqual(states, UNPROXIED_SCAN, f"IPv{family}")


NFT_SYNPROXY = lab.nft_synproxy_rules("synproxyref", (OPEN_PORT, BULK_PORT, CLOSED_PORT))


class NftSynproxyReferenceTest(SynFloodHarness, lab.LabTestCase):
    """The reference: no seqwall at all, the kernel's nft synproxy in the firewall namespace."""

    MODE = lab.GATEWAY
    RULES = os.path.join(lab.HERE, "rules", "gateway.rules")  # never loaded: no seqwall here

    @classmethod
    def make_lab(cls):
        return lab.Lab(cls.MODE, cls.RULES, server_ports=cls.SERVER_PORTS,
                       client_ports=cls.CLIENT_PORTS, divert=False)

    @classmethod
    def setUpClass(cls):
        problem = lab.environment_problem()
        if problem:
            raise unittest.SkipTest(problem)
        cls.lab = cls.make_lab()
        cls.lab.build()
        try:
            fw = cls.lab.ns["fw"]
            lab.ns_run(fw, ["nft", "-f", "-"], input=NFT_SYNPROXY)
            lab.ns_run(fw, ["sysctl", "-qw", "net.ipv4.tcp_syncookies=2"])
            lab.ns_run(fw, ["sysctl", "-qw", "net.ipv4.tcp_timestamps=1"])
            lab.ns_run(fw, ["sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0"])
            cls.prepare_flood_lab()
        except BaseException:
            cls.lab.destroy()
            raise

    def setUp(self):
        pass  # no seqwall to (re)start

    def test_0_closed_port(self):
        for family in (4, 6):
            outcome = self.closed_port(family)
            figures_line("closed-port-nft-synproxy", {"family": family, "outcome": outcome})
            self.assertIn(outcome, ("refused", "reset"), f"IPv{family}")

    def test_1_flood_ipv4(self):
        fig = self.flood_with_clients(4, "nft-synproxy")
        self.assertEqual(fig["server_spoofed_syns"], 0, fig)

    def test_2_flood_ipv6(self):
        fig = self.flood_with_clients(6, "nft-synproxy")
        self.assertEqual(fig["server_spoofed_syns"], 0, fig)

    def test_0_nmap_scan(self):
        """A figure: what a SYN scan sees through the kernel's synproxy."""
        self.nmap_scans("nmap-nft-synproxy")


# The queues of SeqwallSynproxyTest: the synproxy rule's ports (both directions) go to a queue
# of their own, bound copying whole packets; everything else to the general queue, bound with
# the normal copy range (docs/synproxy.md, Whole packets: the copy range).
GENERAL_QUEUE, SYNPROXY_QUEUE = 0, 1
SYNPROXY_PORTS = (OPEN_PORT, BULK_PORT, CLOSED_PORT)


class SeqwallSynproxyTest(SeqwallFloodHarness, lab.LabTestCase):
    """`pass in tcp to port P synproxy`: the flood costs the server nothing. The rule's ports
    have a queue of their own (`--synproxy-queue`)."""

    MODE = lab.GATEWAY

    @classmethod
    def make_lab(cls):
        directory = tempfile.mkdtemp(prefix="seqwall-synproxy-divert-")
        lab.REGISTRY.install()
        lab.REGISTRY.add_tmp(directory)
        diversion = os.path.join(directory, "gateway-synproxy.iptables")
        with open(os.path.join(lab.IPTABLES_DIR, "gateway.iptables")) as f:
            text = f.read()
        with open(diversion, "w") as f:
            f.write(lab.with_synproxy_queue(text, SYNPROXY_PORTS, SYNPROXY_QUEUE))
        return lab.Lab(cls.MODE, cls.RULES, server_ports=cls.SERVER_PORTS, client_ports=cls.CLIENT_PORTS,
                       queue=GENERAL_QUEUE, iptables=diversion,
                       daemon_extra=["--synproxy-queue", str(SYNPROXY_QUEUE)])
    RULE_TEXT = f"""# test_synproxy.py, SeqwallSynproxyTest: the flooded server behind seqwall's SYN proxy.
inside 203.0.113.0/24, 2001:db8:2::/64
default in block
default out pass
pass in tcp to port {OPEN_PORT}, {BULK_PORT}, {CLOSED_PORT}, {MISDIVERTED_PORT} synproxy
pass in tcp to port {PLAIN_CLOSED_PORT}, {ECHO_PORT}, {PLAIN_BULK_PORT}
limit states 65536
set pickup grace 0
"""

    SYNPROXY_COUNTERS = ("cookies_sent", "valid_acks", "invalid_acks", "connections", "server_refused",
                         "segments_lost", "send_failures", "unroutable", "closed_ports_passed")

    def synproxy_stats(self, after_activity=True):
        """`seqwall stats`' synproxy figures and drop counts. The figures appear once the proxy
        has done something; before, they are all zero."""
        stats = self.lab.daemon.stats()
        figures = stats.get("synproxy")
        if figures is None:
            self.assertFalse(after_activity, f"`seqwall stats -o json` has no synproxy figures: {sorted(stats)}")
            figures = dict.fromkeys(self.SYNPROXY_COUNTERS, 0)
        return figures, stats["drops"]

    def queue_packets(self):
        return {q["queue"]: q["seen"] for q in self.lab.daemon.stats()["queues"]}

    def test_0_only_the_synproxy_queue_copies_whole_packets(self):
        """The general queue is bound with the normal copy range (and carries a bulk transfer
        to a port outside the synproxy rule, exact, not proxied); the synproxy queue copies
        whole packets and carries the proxied one. What the kernel says it copies:
        /proc/net/netfilter/nfnetlink_queue in the firewall's namespace."""
        ranges = lab.nfqueue_copy_ranges(self.lab.fw_ns)
        # seqwall asks for 65,535; the kernel caps a copy range at what fits in one netlink
        # attribute, 65,535 less its header (nfqnl_set_mode: NFQNL_MAX_COPY_RANGE).
        self.assertEqual(ranges, {GENERAL_QUEUE: 256, SYNPROXY_QUEUE: 65531}, ranges)
        before, drops_before = self.synproxy_stats(after_activity=False)
        # 1 MiB is at least 16 packets on the general queue (GSO aggregates of up to 64 KiB)
        # and at least 1 MiB / 1,460 on the synproxy queue (GSO off: the kernel segments them);
        # the idle queue sees at most the odd stray packet of another test's connection.
        size = 1 << 20
        for port, busy, idle, least in ((PLAIN_BULK_PORT, GENERAL_QUEUE, SYNPROXY_QUEUE, size >> 16),
                                        (BULK_PORT, SYNPROXY_QUEUE, GENERAL_QUEUE, size // 1460)):
            packets_before = self.queue_packets()
            out = self.bulk(4, "down", port=port, size=size)
            packets = {q: n - packets_before[q] for q, n in self.queue_packets().items()}
            figures_line("queues-seqwall-synproxy", {"port": port, "packets": packets, **out})
            self.assertTrue(out["ok"], f"port {port}: {out}")
            self.assertGreaterEqual(packets[busy], least, (port, packets))
            self.assertLess(packets[idle], 10, (port, packets))
        after, drops = self.synproxy_stats()
        self.assertEqual(after["connections"] - before["connections"], 1, (before, after))
        for reason in ("synproxy-short-copy", "synproxy-wrong-queue"):
            self.assertEqual(drops[reason], drops_before[reason], (reason, drops_before, drops))

    def test_0_a_synproxy_port_on_the_general_queue_is_dropped_unanswered(self):
        """A diversion mistake: MISDIVERTED_PORT is behind the synproxy rule but reaches the
        general queue, which copies headers only. Its SYNs are dropped as
        `synproxy-wrong-queue`, neither answered with a cookie nor passed to the server."""
        lb = self.lab
        probe_log = lab.Probe(lb.ns["server"], lb.workdir, "wrongqueueprobe")
        try:
            before, drops_before = self.synproxy_stats(after_activity=False)
            packets = [{"family": family, "dst": lb.server_addr(family), "sport": 41000 + i,
                        "dport": MISDIVERTED_PORT, "flags": "S", "seq": 1000 + i}
                       for family in (4, 6) for i in range(5)]
            self.assertEqual(lb.craft(packets), 10)
            counted = lab.wait_for(lambda: self.synproxy_stats(after_activity=False)[1]["synproxy-wrong-queue"]
                                   - drops_before["synproxy-wrong-queue"] >= 10, 10, 0.1)
            after, drops_after = self.synproxy_stats(after_activity=False)
            time.sleep(0.5)
            arrived = probe_log.segments(dport=MISDIVERTED_PORT, sports=set(range(41000, 41005)))
        finally:
            lab.REGISTRY.kill_proc(probe_log.proc, grace=1.0)
        self.assertTrue(counted, (drops_before, drops_after))
        self.assertEqual(drops_after["synproxy-wrong-queue"] - drops_before["synproxy-wrong-queue"], 10)
        self.assertEqual(after["cookies_sent"], before["cookies_sent"], (before, after))
        self.assertEqual(arrived, [], "a misdiverted SYN reached the server")

    def test_0_a_lost_first_ack_still_opens_the_connection(self):
        """The client's first ACK to the cookie SYN-ACK is lost (FIRST_ACK_LOSS): it then sends
        only zero-window probes, whose sequence number is its ISN; seqwall takes one for the
        handshake's ACK and the transfer completes, exact."""
        client = self.lab.ns["client"]
        lab.ns_run(client, ["nft", "-f", "-"], input=FIRST_ACK_LOSS)
        try:
            before, _ = self.synproxy_stats(after_activity=False)
            for family in (4, 6):
                out = self.bulk(family, "up", size=64 << 10)
                figures_line("lost-first-ack-seqwall-synproxy", {"family": family, **out})
                self.assertTrue(out["ok"], f"IPv{family}: {out}")
            out = lab.ns_run(client, ["nft", "-j", "list", "counters", "table", "inet", FIRST_ACK_TABLE]).stdout
            lost = {c["counter"]["name"]: c["counter"]["packets"] for c in json.loads(out)["nftables"] if "counter" in c}
        finally:
            lab.ns_run(client, ["nft", "delete", "table", "inet", FIRST_ACK_TABLE], check=False)
        after, _ = self.synproxy_stats()
        self.assertEqual(lost, {"lost4": 1, "lost6": 1}, lost)
        self.assertEqual(after["connections"] - before["connections"], 2, (before, after))

    def test_0_a_lost_server_syn_is_sent_again(self):
        """The SYN seqwall sends the server once the client's cookie is proved is lost
        (FIRST_SYN_LOSS, in the server's namespace): the client, facing the cookie SYN-ACK's
        zero window, sends window probes, and seqwall sends the SYN again on each until the
        server answers; the transfer completes, exact, well within the client's timeout."""
        server = self.lab.ns["server"]
        lab.ns_run(server, ["nft", "-f", "-"], input=FIRST_SYN_LOSS)
        try:
            before, _ = self.synproxy_stats(after_activity=False)
            for family in (4, 6):
                started = time.monotonic()
                out = self.bulk(family, "up", size=64 << 10)
                out["seconds"] = round(time.monotonic() - started, 2)
                figures_line("lost-server-syn-seqwall-synproxy", {"family": family, **out})
                self.assertTrue(out["ok"], f"IPv{family}: {out}")
            out = lab.ns_run(server, ["nft", "-j", "list", "counters", "table", "inet", FIRST_SYN_TABLE]).stdout
            lost = {c["counter"]["name"]: c["counter"]["packets"] for c in json.loads(out)["nftables"] if "counter" in c}
        finally:
            lab.ns_run(server, ["nft", "delete", "table", "inet", FIRST_SYN_TABLE], check=False)
        after, _ = self.synproxy_stats()
        self.assertEqual(lost, {"lost4": 1, "lost6": 1}, lost)
        self.assertEqual(after["connections"] - before["connections"], 2, (before, after))

    def test_0_closed_port_is_refused(self):
        before, _ = self.synproxy_stats(after_activity=False)
        for family in (4, 6):
            outcome = self.closed_port(family)
            figures_line("closed-port-seqwall-synproxy", {"family": family, "outcome": outcome})
            self.assertIn(outcome, ("refused", "reset"), f"IPv{family}")
        after, _ = self.synproxy_stats()
        self.assertGreaterEqual(after["server_refused"] - before["server_refused"], 2, (before, after))

    def test_0_bulk_transfers_with_loss(self):
        before, _ = self.synproxy_stats(after_activity=False)
        self.bulk_transfers_with_loss("bulk-seqwall-synproxy")
        after, _ = self.synproxy_stats()
        self.assertGreaterEqual(after["connections"] - before["connections"], 4, (before, after))

    def test_0_acks_with_bad_cookies_are_dropped(self):
        """ACKs for no connection on a synproxy port (an ACK flood, or a forged cookie) are
        dropped as `synproxy-bad-cookie` and never reach the server."""
        lb = self.lab
        probe_log = lab.Probe(lb.ns["server"], lb.workdir, "ackprobe")
        try:
            before, drops_before = self.synproxy_stats(after_activity=False)
            packets = [{"family": family, "dst": lb.server_addr(family), "sport": 40000 + i,
                        "dport": OPEN_PORT, "flags": "A", "seq": 1000 + i, "ack": 123456789 + 7919 * i}
                       for family in (4, 6) for i in range(10)]
            self.assertEqual(lb.craft(packets), 20)
            counted = lab.wait_for(lambda: self.synproxy_stats(after_activity=False)[0]["invalid_acks"]
                                   - before["invalid_acks"] >= 20, 10, 0.1)
            after, drops_after = self.synproxy_stats()
            time.sleep(0.5)
            arrived = probe_log.segments(dport=OPEN_PORT, sports=set(range(40000, 40010)))
        finally:
            lab.REGISTRY.kill_proc(probe_log.proc, grace=1.0)
        self.assertTrue(counted, (before, after))
        self.assertEqual(after["invalid_acks"] - before["invalid_acks"], 20, (before, after))
        self.assertEqual(drops_after["synproxy-bad-cookie"] - drops_before["synproxy-bad-cookie"], 20)
        self.assertEqual(arrived, [], "ACKs with bad cookies reached the server")

    def test_0_nmap_scan(self):
        """nmap's SYN scan sees every port as without the proxy, the closed port behind the
        synproxy rule too. A client is refused there first (its own attempt, whatever ran
        before): the server's RST to that proxied handshake marks the port closed
        (docs/synproxy.md, "Closed ports"), so the scan's SYNs to it go to the server, whose
        own RST answers them, instead of being answered with a cookie SYN-ACK."""
        before, _ = self.synproxy_stats(after_activity=False)
        for family in (4, 6):
            outcome = self.closed_port(family)
            self.assertIn(outcome, ("refused", "reset"), f"IPv{family}")
        for family, states in self.nmap_scans("nmap-seqwall-synproxy").items():
            self.assertEqual(states, UNPROXIED_SCAN, f"IPv{family}")
        after, _ = self.synproxy_stats()
        # Each scan's SYN to the closed port, at least, went to the server unproxied.
        self.assertGreaterEqual(after["closed_ports_passed"] - before["closed_ports_passed"], 2, (before, after))

    def check_flood(self, family):
        before, _ = self.synproxy_stats(after_activity=False)
        fig = self.flood_with_clients(family, "seqwall-synproxy")
        after, _ = self.synproxy_stats()
        counts = {k: after[k] - before[k] for k in after}
        figures_line("seqwall-synproxy-stats", {"family": family, **counts})
        self.assertGreaterEqual(fig["legit_ok"], 0.99 * LEGIT, fig)
        self.assertEqual(fig["server_spoofed_syns"], 0, fig)
        self.assertEqual(fig["server_req_q_full_drops"], 0, fig)
        self.assertLessEqual(fig["server_legit_syns"], 2 * LEGIT, fig)
        # Every SYN seqwall saw was answered with a cookie: the flood's and the clients'.
        self.assertGreater(counts["cookies_sent"], fig["client_packets_sent"] // 2, (counts, fig))
        self.assertGreaterEqual(counts["valid_acks"], fig["legit_ok"], counts)
        self.assertGreaterEqual(counts["connections"], fig["legit_ok"], counts)
        # The spoofed sources have no route in the lab: their cookie SYN-ACKs are unroutable,
        # not failures.
        self.assertGreater(counts["unroutable"], fig["client_packets_sent"] // 2, counts)
        self.assertEqual(counts["send_failures"], 0, counts)

    def test_1_flood_ipv4(self):
        self.check_flood(4)

    def test_2_flood_ipv6(self):
        self.check_flood(6)


class SeqwallAdaptiveSynproxyTest(SeqwallFloodHarness, lab.LabTestCase):
    """`set synproxy adaptive` with no flood: half-open connections stay far below the start
    share (25% of `limit states`), the proxy is not engaged and every SYN goes to the server,
    so nmap's SYN scan sees exactly what it sees without a proxy, the closed port behind the
    rule closed on first contact. Every queue copies whole packets (no `--synproxy-queue`)."""

    MODE = lab.GATEWAY
    RULE_TEXT = f"""# test_synproxy.py, SeqwallAdaptiveSynproxyTest: the SYN proxy engaged only under pressure.
inside 203.0.113.0/24, 2001:db8:2::/64
default in block
default out pass
pass in tcp to port {OPEN_PORT}, {BULK_PORT}, {CLOSED_PORT} synproxy
pass in tcp to port {PLAIN_CLOSED_PORT}, {ECHO_PORT}
limit states 65536
set synproxy adaptive
set pickup grace 0
"""

    def test_nmap_scan_while_not_engaged(self):
        for family, states in self.nmap_scans("nmap-seqwall-synproxy-adaptive").items():
            self.assertEqual(states, UNPROXIED_SCAN, f"IPv{family}")
        figures = self.lab.daemon.stats().get("synproxy") or {}
        self.assertEqual(figures.get("cookies_sent", 0), 0, figures)


class SynProxyQueueOptionTest(unittest.TestCase):
    """`seqwall run --synproxy-queue`, in a bare namespace of its own: the copy range each queue
    is bound with (the kernel's /proc/net/netfilter/nfnetlink_queue), the warning without the
    option, and a queue given twice refused."""

    WARNING = "no --synproxy-queue is given"

    @classmethod
    def setUpClass(cls):
        problem = lab.environment_problem()
        if problem:
            raise unittest.SkipTest(problem)
        directory = tempfile.mkdtemp(prefix="seqwall-synproxy-option-")
        lab.REGISTRY.install()
        lab.REGISTRY.add_tmp(directory)
        cls.dir = directory
        cls.rules = os.path.join(directory, "synproxy.rules")
        with open(cls.rules, "w") as f:
            f.write(f"default in block\ndefault out pass\npass in tcp to port {OPEN_PORT} synproxy\n")

    def run_daemon(self, queues, extra):
        ns = bare_namespace()
        self.addCleanup(lab.REGISTRY.del_ns, ns)
        daemon = lab.Daemon(ns, self.rules, os.path.join(self.dir, f"{ns}.sock"),
                            os.path.join(self.dir, f"{ns}.log"), queues=queues,
                            extra=["--idle-warning", "0"] + extra)
        daemon.start()
        self.addCleanup(daemon.stop)
        return ns, daemon

    def test_without_the_option_every_queue_copies_whole_packets_and_it_is_said_once(self):
        ns, daemon = self.run_daemon((0, 1), [])
        self.assertEqual(lab.nfqueue_copy_ranges(ns), {0: 65531, 1: 65531})
        self.assertEqual(daemon.log_text().count(self.WARNING), 1, daemon.log_tail())
        self.assertIn("--synproxy-queue", daemon.log_text())

    def test_with_the_option_only_its_queue_copies_whole_packets(self):
        ns, daemon = self.run_daemon((0,), ["--synproxy-queue", "1"])
        self.assertEqual(lab.nfqueue_copy_ranges(ns), {0: 256, 1: 65531})
        self.assertNotIn(self.WARNING, daemon.log_text())

    def test_a_synproxy_queue_given_twice_is_refused(self):
        cp = lab.run([lab.SEQWALL_BIN, "run", "--rules", self.rules, "--synproxy-queue", "1",
                      "--synproxy-queue", "1"], check=False)
        self.assertEqual(cp.returncode, 1, cp.stderr)
        self.assertIn("a --synproxy-queue is given twice", cp.stderr)


if __name__ == "__main__":
    unittest.main()
