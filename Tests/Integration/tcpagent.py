"""A scapy TCP endpoint for the lab: injects hand-made segments and observes what arrives.

Used by test_tracking.py and test_kernel_differential.py. One agent runs in one endpoint
namespace for a whole test class, so scapy is imported once, not once per packet:

  /usr/bin/python3 tcpagent.py IFACE

It reads one JSON command a line on stdin and answers one JSON line on stdout:

  {"op": "send", "pkt": PKT}           build PKT with scapy and send it (raw IP socket)
  {"op": "wait", "tag": N, "sport": P, "dport": Q, "timeout": S}
                                       did a segment with this tag and these ports arrive
                                       (within S seconds)? Each arrival answers one wait.
  {"op": "arrivals", "sport": P, "dport": Q}   every segment seen for these ports
  {"op": "quit"}

PKT: family (4|6), src, dst, sport, dport, flags (scapy letters), seq, ack, win, len
(payload bytes of a fixed pattern) or data (the payload, hex), ext (IPv6 extension headers
"hbh", "dest", "frag" in order, or "nop" for IPv4 header options), opts (scapy TCP option
list, as JSON lists), tag. The tag goes into the IPv4 identification or the IPv6 flow label,
fields neither firewall looks at, so that the observer on the other side can tell which
hand-made segment arrived even when two carry the same TCP header (a retransmission).

The observer is an AF_PACKET socket on IFACE: it sees every segment the interface receives,
also those that the namespace's own iptables raw table then drops. The tests drop incoming
TCP there so that the endpoint's kernel never answers the hand-made segments (no RST for a
connection it does not know): the segments are both ends' business, decided by the tests.
"""

import json
import os
import signal
import socket
import sys
import threading
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
LIFETIME = 1800  # seconds; the agent exits by itself after this, even if orphaned


def parse_frame(frame):
    """(family, src, dst, tag, tcp fields) of an Ethernet frame carrying TCP, or None."""
    if len(frame) < 14:
        return None
    ethertype = int.from_bytes(frame[12:14], "big")
    ip = frame[14:]
    if ethertype == 0x0800 and len(ip) >= 20 and ip[9] == 6:
        ihl = (ip[0] & 0x0F) * 4
        total = int.from_bytes(ip[2:4], "big")
        tcp = ip[ihl:total]
        fam, tag = 4, int.from_bytes(ip[4:6], "big")
        src = socket.inet_ntop(socket.AF_INET, ip[12:16])
        dst = socket.inet_ntop(socket.AF_INET, ip[16:20])
    elif ethertype == 0x86DD and len(ip) >= 40:
        payload = int.from_bytes(ip[4:6], "big")
        nxt, off = ip[6], 40
        while nxt in (0, 43, 44, 60) and off + 8 <= len(ip):  # walk extension headers
            nxt, off = ip[off], off + (8 if nxt == 44 else (ip[off + 1] + 1) * 8)
        if nxt != 6:
            return None
        tcp = ip[off:40 + payload]
        fam, tag = 6, int.from_bytes(ip[1:4], "big") & 0xFFFFF
        src = socket.inet_ntop(socket.AF_INET6, ip[8:24])
        dst = socket.inet_ntop(socket.AF_INET6, ip[24:40])
    else:
        return None
    if len(tcp) < 20:
        return None
    doff = (tcp[12] >> 4) * 4
    return {"family": fam, "src": src, "dst": dst, "tag": tag,
            "sport": int.from_bytes(tcp[0:2], "big"), "dport": int.from_bytes(tcp[2:4], "big"),
            "seq": int.from_bytes(tcp[4:8], "big"), "ack": int.from_bytes(tcp[8:12], "big"),
            "flags": tcp[13], "win": int.from_bytes(tcp[14:16], "big"),
            "len": max(0, len(tcp) - doff)}


class Observer:
    def __init__(self, iface):
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind((iface, 0))
        self.cond = threading.Condition()
        self.seen = []  # every incoming TCP segment, in order, with a "used" mark
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            frame, addr = self.sock.recvfrom(65535)
            if addr[2] == PACKET_OUTGOING:
                continue
            rec = parse_frame(frame)
            if rec is None:
                continue
            rec["used"] = False
            with self.cond:
                self.seen.append(rec)
                self.cond.notify_all()

    def wait(self, tag, sport, dport, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for rec in self.seen:
                    if (not rec["used"] and rec["tag"] == tag and rec["sport"] == sport
                            and rec["dport"] == dport):
                        rec["used"] = True
                        return rec
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def arrivals(self, sport, dport):
        with self.cond:
            return [dict(r) for r in self.seen if r["sport"] == sport and r["dport"] == dport]


def options(spec):
    out = []
    for name, value in spec or []:
        if isinstance(value, list):
            value = tuple(value)
        if name == "SAckOK":
            value = b""
        out.append((name, value))
    return out


class Injector:
    def __init__(self):
        import logging
        logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
        from scapy.all import (IP, IPv6, TCP, Raw, IPOption_NOP, IPv6ExtHdrHopByHop,  # noqa
                               IPv6ExtHdrDestOpt, IPv6ExtHdrFragment)
        self.IP, self.IPv6, self.TCP, self.Raw = IP, IPv6, TCP, Raw
        self.IPOption_NOP = IPOption_NOP
        self.ext6 = {"hbh": lambda tag: IPv6ExtHdrHopByHop(),
                     "dest": lambda tag: IPv6ExtHdrDestOpt(),
                     # An atomic fragment: offset 0, no more fragments (RFC 6946).
                     "frag": lambda tag: IPv6ExtHdrFragment(offset=0, m=0, id=tag)}
        # IPPROTO_RAW: we write the whole IP header; the kernel routes and resolves neighbours.
        self.s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)

    def build(self, p):
        tag = int(p.get("tag", 0))
        ext = p.get("ext") or []
        if p.get("family", 4) == 6:
            l3 = self.IPv6(src=p["src"], dst=p["dst"], fl=tag & 0xFFFFF, hlim=64)
            for name in ext:  # extension headers, in the order given
                l3 = l3 / self.ext6[name](tag)
        else:
            # "nop": the IPv4 header grows by four NOP options (IHL 6).
            opts = [self.IPOption_NOP()] * 4 if "nop" in ext else []
            l3 = self.IP(src=p["src"], dst=p["dst"], id=tag & 0xFFFF, ttl=64, options=opts)
        seg = self.TCP(sport=p["sport"], dport=p["dport"], flags=p.get("flags", ""),
                       seq=p.get("seq", 0) & 0xFFFFFFFF, ack=p.get("ack", 0) & 0xFFFFFFFF,
                       window=p.get("win", 8192), options=options(p.get("opts")))
        pkt = l3 / seg
        if p.get("data"):
            pkt = pkt / self.Raw(load=bytes.fromhex(p["data"]))
        elif p.get("len"):
            pkt = pkt / self.Raw(load=bytes((i * 7 + 13) & 0xFF for i in range(p["len"])))
        return pkt

    def send(self, p):
        raw = bytes(self.build(p))
        if p.get("family", 4) == 6:
            self.s6.sendto(raw, (p["dst"], 0))
        else:
            self.s4.sendto(raw, (p["dst"], 0))
        return len(raw)


def main(argv):
    signal.signal(signal.SIGALRM, lambda *a: os._exit(3))
    signal.alarm(LIFETIME)
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    observer = Observer(argv[0])
    injector = Injector()
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            cmd = json.loads(line)
            op = cmd.get("op")
            if op == "send":
                reply = {"sent": injector.send(cmd["pkt"])}
            elif op == "wait":
                rec = observer.wait(cmd["tag"], cmd["sport"], cmd["dport"], cmd["timeout"])
                reply = {"arrived": rec is not None, "pkt": rec}
            elif op == "arrivals":
                reply = {"arrivals": observer.arrivals(cmd["sport"], cmd["dport"])}
            elif op == "quit":
                return 0
            else:
                reply = {"error": f"unknown op {op!r}"}
        except Exception as e:  # report, keep serving
            reply = {"error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


# ---------------------------------------------------------------------------------------------
# The parent side
# ---------------------------------------------------------------------------------------------

HERE = os.path.dirname(os.path.abspath(__file__))
AGENT_FILE = os.path.abspath(__file__)


class Agent:
    """Handle on a tcpagent.py process in a namespace (started with lab.spawn, so the lab's
    REGISTRY ends it)."""

    def __init__(self, lab_module, ns, iface, log_path):
        self.lab = lab_module
        self.ns = ns
        self.proc = lab_module.spawn(ns, [lab_module.PY, AGENT_FILE, iface], log_path,
                                     stdin=True)
        self.reader = lab_module.LineReader(self.proc.stdout)
        self.lock = threading.Lock()
        line = self.reader.readline(60)
        if line is None or '"ready"' not in line:
            raise RuntimeError(f"tcpagent in {ns} did not start: {line!r}; "
                               f"stderr in {log_path}")

    def call(self, cmd, timeout=30):
        with self.lock:
            try:
                self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError) as e:
                raise RuntimeError(f"tcpagent in {self.ns} gone: {e}") from e
            line = self.reader.readline(timeout)
        if line is None:
            raise RuntimeError(f"tcpagent in {self.ns}: no answer to {cmd}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"tcpagent in {self.ns}: {reply['error']} (command {cmd})")
        return reply

    def send(self, pkt):
        return self.call({"op": "send", "pkt": pkt})

    def wait(self, tag, sport, dport, timeout):
        return self.call({"op": "wait", "tag": tag, "sport": sport, "dport": dport,
                          "timeout": timeout}, timeout=timeout + 30)

    def arrivals(self, sport, dport):
        return self.call({"op": "arrivals", "sport": sport, "dport": dport})["arrivals"]

    def stop(self):
        self.lab.REGISTRY.kill_proc(self.proc, grace=1.0)


def silence_kernel(lab_module, ns):
    """Incoming TCP never reaches this namespace's stack (no RST or ACK from its kernel for
    segments of connections that only scapy plays); AF_PACKET still sees it."""
    for tool in ("iptables", "ip6tables"):
        lab_module.ns_run(ns, [tool, "-t", "raw", "-A", "PREROUTING", "-p", "tcp", "-j", "DROP"])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
