"""UDP, ICMP echo and ICMP errors through seqwall, with real packets
(docs/design.md, UDP and ICMP flows, ICMP errors).

- Path MTU discovery through seqwall in gateway mode, IPv4 and IPv6: a router namespace sits
  between the client and the firewall, and its link toward the client has MTU 1280 on its own
  side only (the client keeps 1500 and so advertises an MSS of 1460). The server sends 1 MB
  to the client with large writes; its full-size segments cross seqwall, the router answers
  each with fragmentation-needed / packet-too-big, and the transfer completes only if seqwall
  lets those errors back in to the server (inbound: nothing but their relation to the
  connection lets them pass).
- Forged ICMP errors to the server: one for a connection that does not exist and one with a
  sequence number outside the real connection's window are dropped (`icmp-unrelated`) and
  never arrive; one quoting the real connection's next sequence number arrives.
- A DNS-like UDP request/response passes by rule (`pass in udp to port 5353`) and is blocked
  by rule (5354); the flow shows in `conntrack list` in the kernel's layout.
- Ping passes by `pass in icmp echo` / `pass in icmp6 echo` and is blocked once a reload
  takes those rules away.
- Host mode: a `reject`ed UDP datagram is answered with a port unreachable that seqwall lets
  out, and never reaches its listener.
- IPv6 neighbour discovery keeps working in host mode: the neighbour caches are flushed and
  TCP and ping work again, with the shipped host.iptables (which leaves ND out of the queue)
  and with ND queued to seqwall (which passes it without state).

Rules: rules/icmp-udp.rules (gateway) and rules/icmp-udp-host.rules (host).

This file is also the agent program run inside namespaces:

  /usr/bin/python3 test_icmp_udp.py udp-serve PORTS LOG      answer each datagram, log it
  /usr/bin/python3 test_icmp_udp.py udp-ask ADDR PORT        one query, exit 0 if answered
  /usr/bin/python3 test_icmp_udp.py icmp-log LOG             log every ICMP(v6) error received
  /usr/bin/python3 test_icmp_udp.py bulk-serve PORT BYTES    send BYTES to each client, close
  /usr/bin/python3 test_icmp_udp.py bulk-fetch ADDR PORT     read to EOF, print the byte count
"""

import json
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import lab  # noqa: E402

AGENT = os.path.abspath(__file__)
GATEWAY_RULES = os.path.join(HERE, "rules", "icmp-udp.rules")
HOST_RULES = os.path.join(HERE, "rules", "icmp-udp-host.rules")

TCP_PORT = 8080
BULK_PORT = 8090
UDP_OPEN = 5353      # passed by the rules
UDP_CLOSED = 5354    # served, but no rule passes it
UDP_REJECTED = 5355  # served, and `reject`ed by the host-mode rules
BULK_BYTES = 1 << 20
SMALL_MTU = 1280


# ---------------------------------------------------------------------------------------------
# Agents
# ---------------------------------------------------------------------------------------------

def _listeners(kind, port):
    """Sockets of `kind` bound to `port` on every IPv4 and every IPv6 address."""
    return lab.dual_stack_sockets(kind, port, backlog=8)


def _agent_udp_serve(ports, log_path):
    logf = open(log_path, "a")
    socks = [(s, port) for port in ports for s in _listeners(socket.SOCK_DGRAM, port)]
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select([s for s, _ in socks], [], [], 1.0)
        for s in ready:
            port = next(p for sock, p in socks if sock is s)
            data, peer = s.recvfrom(4096)
            logf.write(json.dumps({"port": port, "peer": peer[0], "data": data.hex()}) + "\n")
            logf.flush()
            s.sendto(b"answer:" + data, peer)


def _agent_udp_ask(addr, port, timeout=2.0):
    """One query on a connected socket: an ICMP port unreachable shows as ECONNREFUSED."""
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    query = b"query-%d" % os.getpid()
    s.connect((addr, port))
    s.send(query)
    s.settimeout(timeout)
    result = {"answer": None, "refused": False, "sport": s.getsockname()[1]}
    try:
        data = s.recv(4096)
        result["answer"] = data.decode(errors="replace")
    except socket.timeout:
        pass
    except ConnectionRefusedError:
        result["refused"] = True
    print(json.dumps(result), flush=True)
    return 0 if result["answer"] == "answer:" + query.decode() else 1


def _agent_icmp_log(log_path):
    """Logs each ICMP/ICMPv6 error this namespace's stack is handed (raw sockets get their copy
    after the LOCAL_IN hook): its type and code, and the quoted packet's ports and sequence."""
    logf = open(log_path, "a")
    s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select([s4, s6], [], [], 1.0)
        for s in ready:
            data, peer = s.recvfrom(65535)
            if s is s4:
                icmp = data[(data[0] & 0x0F) * 4:]
                if len(icmp) < 8 or icmp[0] not in (3, 4, 5, 11, 12):
                    continue
                inner = icmp[8:]
                if len(inner) < 28:
                    continue
                l4 = inner[(inner[0] & 0x0F) * 4:]
                fam = 4
            else:
                icmp = data
                if len(icmp) < 8 or icmp[0] >= 128:
                    continue
                inner = icmp[8:]
                if len(inner) < 48:
                    continue
                l4 = inner[40:]
                fam = 6
            rec = {"family": fam, "src": peer[0], "type": icmp[0], "code": icmp[1],
                   "sport": int.from_bytes(l4[0:2], "big"), "dport": int.from_bytes(l4[2:4], "big"),
                   "seq": int.from_bytes(l4[4:8], "big")}
            logf.write(json.dumps(rec) + "\n")
            logf.flush()


def _agent_bulk_serve(port, size):
    socks = _listeners(socket.SOCK_STREAM, port)
    chunk = bytes(range(256)) * 256   # 64 KiB writes

    def serve(conn):
        try:
            conn.settimeout(120)
            left = size
            while left > 0:
                n = min(left, len(chunk))
                conn.sendall(chunk[:n])
                left -= n
            conn.shutdown(socket.SHUT_WR)
            conn.recv(1)
        except OSError:
            pass
        finally:
            conn.close()

    print("ready", flush=True)
    while True:
        ready, _, _ = select.select(socks, [], [], 1.0)
        for s in ready:
            conn, _ = s.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()


def _agent_bulk_fetch(addr, port, timeout=90.0):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    got = 0
    try:
        s.connect((addr, port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = s.recv(1 << 16)
            if not data:
                break
            got += len(data)
    except OSError as e:
        print(json.dumps({"bytes": got, "error": f"{type(e).__name__}: {e}"}), flush=True)
        return 1
    print(json.dumps({"bytes": got}), flush=True)
    return 0


def agent_main(argv):
    signal.signal(signal.SIGALRM, lambda *a: os._exit(3))
    signal.alarm(lab.AGENT_LIFETIME)
    role, args = argv[0], argv[1:]
    if role == "udp-serve":
        _agent_udp_serve([int(p) for p in args[0].split(",")], args[1])
    elif role == "udp-ask":
        return _agent_udp_ask(args[0], int(args[1]))
    elif role == "icmp-log":
        _agent_icmp_log(args[0])
    elif role == "bulk-serve":
        _agent_bulk_serve(int(args[0]), int(args[1]))
    elif role == "bulk-fetch":
        return _agent_bulk_fetch(args[0], int(args[1]))
    else:
        print(f"unknown agent {role!r}", file=sys.stderr)
        return 2
    return 0


# ---------------------------------------------------------------------------------------------
# Helpers on the parent side
# ---------------------------------------------------------------------------------------------

def start_agent(ns, workdir, name, args):
    proc = lab.spawn(ns, [lab.PY, AGENT] + list(args), os.path.join(workdir, f"{name}.stderr"))
    line = lab.LineReader(proc.stdout).readline(15)
    if line != "ready":
        raise RuntimeError(f"agent {name} in {ns} did not start: {line!r}")
    return proc


def read_json_lines(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def ping(ns, addr):
    return lab.ns_run(ns, [lab.PY, lab.LAB_FILE, "ping", addr], check=False, timeout=15).returncode == 0


def udp_ask(ns, addr, port):
    cp = lab.ns_run(ns, [lab.PY, AGENT, "udp-ask", addr, str(port)], check=False, timeout=15)
    try:
        return cp.returncode == 0, json.loads(cp.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(f"udp-ask printed nothing useful: {cp.stdout!r} {cp.stderr!r}")


def stats_delta(before, after, reason):
    return lab.drops(after, reason) - lab.drops(before, reason)


def scapy_send(ns, script, timeout=60):
    """Runs a scapy snippet (with `from scapy.all import *` done) in ns."""
    prologue = ("import logging\nlogging.getLogger('scapy.runtime').setLevel(logging.ERROR)\n"
                "from scapy.all import *\nconf.verb = 0\n")
    lab.ns_run(ns, [lab.PY, "-c", prologue + script], timeout=timeout)


def family_addr(fam, v4, v6):
    return v4 if fam == 4 else v6


# ---------------------------------------------------------------------------------------------
# Gateway mode: UDP, ping, forged errors
# ---------------------------------------------------------------------------------------------

class GatewayDatagramTests(lab.LabTestCase):
    MODE = lab.GATEWAY
    SERVER_PORTS = (TCP_PORT,)
    CLIENT_PORTS = ()

    @classmethod
    def setUpClass(cls):
        # The daemon reads a copy of the rules, which the ping test rewrites and reloads.
        cls.rules_dir = tempfile.mkdtemp(prefix="seqwall-icmpudp-")
        lab.REGISTRY.install()
        lab.REGISTRY.add_tmp(cls.rules_dir)
        cls.RULES = os.path.join(cls.rules_dir, "icmp-udp.rules")
        shutil.copyfile(GATEWAY_RULES, cls.RULES)
        super().setUpClass()
        try:
            L = cls.lab
            cls.udp_log = os.path.join(L.workdir, "udp.log")
            cls.udp_server = start_agent(L.ns["server"], L.workdir, "udp-serve",
                                         ["udp-serve", f"{UDP_OPEN},{UDP_CLOSED}", cls.udp_log])
            cls.icmp_log = os.path.join(L.workdir, "icmp.log")
            cls.icmp_logger = start_agent(L.ns["server"], L.workdir, "icmp-log", ["icmp-log", cls.icmp_log])
        except BaseException:
            cls.tearDownClass()
            raise

    def received(self, port):
        return [r for r in read_json_lines(self.udp_log) if r["port"] == port]

    # -- UDP --

    def check_udp(self, fam):
        L = self.lab
        server = L.server_addr(fam)
        before = L.daemon.stats()
        ok, answer = udp_ask(L.ns["client"], server, UDP_OPEN)
        self.assertTrue(ok, f"no answer from {server}:{UDP_OPEN} through seqwall: {answer}")
        entries = [e for e in L.daemon.conntrack()
                   if e["proto"] == "udp" and e["orig"]["sport"] == answer["sport"]
                   and lab.addr_eq(e["orig"]["dst"], server)]
        self.assertEqual(len(entries), 1, f"seqwall does not track the UDP flow: {L.daemon.conntrack()}")
        entry = entries[0]
        self.assertEqual((entry["orig"]["dport"], entry["unreplied"], entry["packets"]),
                         (UDP_OPEN, False, {"orig": 1, "reply": 1}), entry)
        self.assertLessEqual(entry["timeout"], 30, entry)
        # The conntrack layout, filtered by protocol and port.
        cp = L.daemon.cli(["conntrack", "list", "-p", "udp", "--sport", str(answer["sport"])])
        lines = cp.stdout.strip().splitlines()
        self.assertEqual(len(lines), 1, cp.stdout)
        self.assertRegex(lines[0], r"^udp      17 (29|30) src=\S+ dst=\S+ sport=%d dport=%d src=\S+ dst=\S+ "
                                   r"sport=%d dport=%d use=1$" % (answer["sport"], UDP_OPEN, UDP_OPEN,
                                                                  answer["sport"]))
        cp = L.daemon.cli(["conntrack", "list", "-p", "icmp", "--sport", str(answer["sport"])])
        self.assertEqual(cp.stdout.strip(), "", "-p icmp listed a UDP flow")

        # 5354 is served too, but no rule passes it: dropped by seqwall, never received.
        seen_closed = len(self.received(UDP_CLOSED))
        ok, answer = udp_ask(L.ns["client"], server, UDP_CLOSED)
        self.assertFalse(ok, f"{server}:{UDP_CLOSED} answered through seqwall: {answer}")
        after = L.daemon.stats()
        self.assertGreaterEqual(stats_delta(before, after, "rule"), 1, after["drops"])
        time.sleep(0.5)
        self.assertEqual(len(self.received(UDP_CLOSED)), seen_closed,
                         f"a datagram to {UDP_CLOSED} reached the server")

    def test_udp_ipv4(self):
        self.check_udp(4)

    def test_udp_ipv6(self):
        self.check_udp(6)

    # -- ping --

    def test_ping_by_rule(self):
        L = self.lab
        for fam in (4, 6):
            with self.subTest(family=fam):
                before = L.daemon.stats()
                self.assertTrue(ping(L.ns["client"], L.server_addr(fam)),
                                f"ping {L.server_addr(fam)} failed with `pass in icmp echo`")
                proto = "icmp" if fam == 4 else "icmpv6"
                cp = L.daemon.cli(["conntrack", "list", "-p", proto])
                request, reply = (8, 0) if fam == 4 else (128, 129)
                self.assertRegex(cp.stdout, r"(?m)^%s +%d \d+ src=\S+ dst=\S+ type=%d code=0 id=\d+ src=\S+ "
                                            r"dst=\S+ type=%d code=0 id=\d+ use=1$"
                                 % (proto, 1 if fam == 4 else 58, request, reply))
                after = L.daemon.stats()
                self.assertGreaterEqual(after["packets"]["accepted"] - before["packets"]["accepted"], 2)

        # Without the echo rules, ping is blocked by `default in block`. The flows of the pings
        # above go first, so that a new ping cannot reuse one (the agent's identifier is its pid).
        for proto in ("icmp", "icmpv6"):
            L.daemon.cli(["conntrack", "delete", "-p", proto])
        with open(self.RULES) as f:
            text = f.read()
        try:
            with open(self.RULES, "w") as f:
                f.write("\n".join(ln for ln in text.splitlines() if "echo" not in ln) + "\n")
            L.daemon.cli(["reload"])
            for fam in (4, 6):
                with self.subTest(family=fam, rules="no echo"):
                    before = L.daemon.stats()
                    self.assertFalse(ping(L.ns["client"], L.server_addr(fam)),
                                     f"ping {L.server_addr(fam)} passed without an echo rule")
                    after = L.daemon.stats()
                    self.assertGreaterEqual(stats_delta(before, after, "rule"), 1, after["drops"])
        finally:
            with open(self.RULES, "w") as f:
                f.write(text)
            L.daemon.cli(["reload"])
        self.assertTrue(ping(L.ns["client"], L.server_addr(4)), "ping failed after the rules came back")

    # -- forged errors --

    def forged_errors(self, fam, conn, entry):
        """Three errors to the server from the client's side: for a connection that does not
        exist, for the real one out of window, and for the real one in window."""
        L = self.lab
        client, server = L.client_addr(fam), L.server_addr(fam)
        next_seq = entry["window"]["reply"]["end"]
        far = (next_seq + (1 << 30)) % (1 << 32)
        quotes = [(conn.sport + 1, next_seq), (conn.sport, far), (conn.sport, next_seq)]
        if fam == 4:
            build = ("p = IP(src={c!r}, dst={s!r}) / ICMP(type=3, code=0) / "
                     "Raw(bytes(IP(src={s!r}, dst={c!r}) / TCP(sport={sp}, dport={dp}, seq={seq}, flags='A'))[:28])")
        else:
            build = ("p = IPv6(src={c!r}, dst={s!r}) / ICMPv6DestUnreach(code=0) / "
                     "Raw(bytes(IPv6(src={s!r}, dst={c!r}) / TCP(sport={sp}, dport={dp}, seq={seq}, flags='A'))[:48])")
        script = ""
        for dport, seq in quotes:
            script += build.format(c=client, s=server, sp=TCP_PORT, dp=dport, seq=seq) + "\nsend(p)\ntime.sleep(0.2)\n"
        scapy_send(L.ns["client"], "import time\n" + script)
        return quotes

    def check_forged(self, fam):
        if lab.scapy_problem():
            self.skipTest(lab.scapy_problem())
        L = self.lab
        with L.connect("client", L.server_addr(fam), TCP_PORT, timeout=10) as conn:
            self.assertTrue(conn.connected, conn.error)
            self.assertEqual(conn.send(b"x" * 100), b"echo:" + b"x" * 100)
            entry = next(e for e in L.daemon.conntrack()
                         if e["proto"] == "tcp" and e["orig"]["sport"] == conn.sport)
            before = L.daemon.stats()
            quotes = self.forged_errors(fam, conn, entry)
            def arrived():
                return [r for r in read_json_lines(self.icmp_log) if r["family"] == fam
                        and r["sport"] == TCP_PORT and r["dport"] in (conn.sport, conn.sport + 1)]
            lab.wait_for(arrived, 10)
            time.sleep(1.0)   # let any wrongly passed error arrive too
            got = [(r["dport"], r["seq"]) for r in arrived()]
            after = L.daemon.stats()
            conn.close()
        self.assertEqual(got, [quotes[2]], "only the error quoting the real connection in window may arrive")
        self.assertEqual(stats_delta(before, after, "icmp-unrelated"), 2, after["drops"])

    def test_forged_error_ipv4(self):
        self.check_forged(4)

    def test_forged_error_ipv6(self):
        self.check_forged(6)


# ---------------------------------------------------------------------------------------------
# Gateway mode with a router on the outside: path MTU discovery
# ---------------------------------------------------------------------------------------------

class RoutedLab(lab.Lab):
    """client -- router -- fw (seqwall, gateway mode) -- server. The router's interface toward
    the client has MTU 1280, the client's own 1500: the router is where full-size segments from
    the server stop fitting, and its errors go back through seqwall to the server.

    Addresses (all in the outside documentation ranges): client 198.51.100.130 and
    2001:db8:1::1:10 behind router 198.51.100.129 / 2001:db8:1::1:1; router to fw on
    198.51.100.0/25 (router .2, fw .1) and 2001:db8:1::/112 (router ::2, fw ::1)."""

    def __init__(self, rules):
        super().__init__(lab.GATEWAY, rules, server_ports=(TCP_PORT,), client_ports=())
        self.client4, self.client6 = "198.51.100.130", "2001:db8:1::1:10"

    def _build(self):
        c = self._new_ns("client")
        r = self._new_ns("router")
        f = self._new_ns("fw")
        s = self._new_ns("server")
        self._veth(c, "eth0", r, "c0")
        self._veth(r, "f0", f, "out0")
        self._veth(f, "in0", s, "eth0")
        lab.run(["ip", "-n", r, "link", "set", "c0", "mtu", str(SMALL_MTU)])
        for ns, dev, cidr in ((c, "eth0", "198.51.100.130/25"), (c, "eth0", "2001:db8:1::1:10/112"),
                              (r, "c0", "198.51.100.129/25"), (r, "c0", "2001:db8:1::1:1/112"),
                              (r, "f0", "198.51.100.2/25"), (r, "f0", "2001:db8:1::2/112"),
                              (f, "out0", "198.51.100.1/25"), (f, "out0", "2001:db8:1::1/112"),
                              (f, "in0", "203.0.113.1/24"), (f, "in0", "2001:db8:2::1/64"),
                              (s, "eth0", "203.0.113.10/24"), (s, "eth0", "2001:db8:2::10/64")):
            self._addr(ns, dev, cidr)
        for ns in (r, f):
            lab.ns_run(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            lab.ns_run(ns, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
        # The errors come from the router's own address: spare them the rate limit, so that
        # each of the two families' first segments is answered at once.
        lab.ns_run(r, ["sysctl", "-qw", "net.ipv4.icmp_ratelimit=0"])
        lab.ns_run(r, ["sysctl", "-qw", "net.ipv6.icmp.ratelimit=0"])
        for ns, v4, v6 in ((c, "198.51.100.129", "2001:db8:1::1:1"), (r, "198.51.100.1", "2001:db8:1::1"),
                           (s, "203.0.113.1", "2001:db8:2::1")):
            lab.run(["ip", "-n", ns, "route", "add", "default", "via", v4])
            lab.run(["ip", "-n", ns, "-6", "route", "add", "default", "via", v6])
        lab.run(["ip", "-n", f, "route", "add", "198.51.100.128/25", "via", "198.51.100.2"])
        lab.run(["ip", "-n", f, "-6", "route", "add", "2001:db8:1::1:0/112", "via", "2001:db8:1::2"])
        for tool in ("iptables-restore", "ip6tables-restore"):
            with open(self.iptables) as fh:
                cp = lab.ns_run(f, [tool, "--noflush"], input=fh.read(), check=False)
            if cp.returncode != 0:
                raise RuntimeError(f"{tool} < {self.iptables} failed: {cp.stderr.strip()}")
        # Counts the errors that cross the firewall (ahead of the jump to seqwall's chain).
        lab.ns_run(f, ["iptables", "-I", "FORWARD", "1", "-p", "icmp", "--icmp-type", "fragmentation-needed"])
        lab.ns_run(f, ["ip6tables", "-I", "FORWARD", "1", "-p", "ipv6-icmp", "--icmpv6-type", "packet-too-big"])
        self.server = lab.Server(s, self.server_ports, self.workdir, "server")
        self.probe = lab.Probe(s, self.workdir, "probe")
        self.daemon = lab.Daemon(f, self.rules, os.path.join(self.workdir, "control.sock"),
                                 os.path.join(self.workdir, "seqwall.log"), queues=(self.queue,))
        self.wait_reachable()

    def destroy(self):
        router = self.ns.pop("router", None)
        super().destroy()
        if router:
            lab.REGISTRY.del_ns(router)

    def errors_forwarded(self, fam):
        tool, match = ("iptables", "fragmentation-needed") if fam == 4 else ("ip6tables", "packet-too-big")
        out = lab.ns_run(self.ns["fw"], [tool, "-vnxL", "FORWARD"]).stdout
        for line in out.splitlines():
            if match in line or ("ipv6-icmptype 2" in line and fam == 6) or ("icmptype 3 code 4" in line and fam == 4):
                return int(line.split()[0])
        raise AssertionError(f"no counting rule in {tool} FORWARD:\n{out}")


class PathMTUDiscoveryTests(lab.LabTestCase):
    MODE = lab.GATEWAY
    RULES = GATEWAY_RULES

    @classmethod
    def make_lab(cls):
        return RoutedLab(cls.RULES)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.bulk = start_agent(cls.lab.ns["server"], cls.lab.workdir, "bulk-serve",
                                   ["bulk-serve", str(BULK_PORT), str(BULK_BYTES)])
        except BaseException:
            cls.tearDownClass()
            raise

    def check_pmtu(self, fam):
        L = self.lab
        server = L.server_addr(fam)
        errors_before = L.errors_forwarded(fam)
        before = L.daemon.stats()
        cp = lab.ns_run(L.ns["client"], [lab.PY, AGENT, "bulk-fetch", server, str(BULK_PORT)],
                        check=False, timeout=120)
        after = L.daemon.stats()
        try:
            result = json.loads(cp.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise AssertionError(f"bulk-fetch printed nothing useful: {cp.stdout!r} {cp.stderr!r}")
        self.assertEqual(result.get("bytes"), BULK_BYTES,
                         f"the 1 MB transfer from {server} did not complete through a {SMALL_MTU}-byte link: "
                         f"{result}; drops {after['drops']}")
        # It completed because errors crossed seqwall: the router sent some, the server
        # learned the path MTU, and seqwall judged the transfer (and dropped no error).
        self.assertGreater(L.errors_forwarded(fam) - errors_before, 0,
                           "no fragmentation-needed / packet-too-big crossed the firewall")
        route = lab.ns_run(L.ns["server"], ["ip", "-%d" % fam, "route", "get", L.client_addr(fam)]).stdout
        self.assertIn(f"mtu {SMALL_MTU}", route, f"the server learned no path MTU: {route}")
        self.assertEqual(stats_delta(before, after, "icmp-unrelated"), 0, after["drops"])
        # seqwall tracked the transfer itself (its byte counters, GSO packets and all).
        fetched = [e for e in L.daemon.conntrack() if e["proto"] == "tcp" and e["orig"]["dport"] == BULK_PORT
                   and lab.addr_eq(e["orig"]["src"], L.client_addr(fam))]
        self.assertTrue(fetched, "seqwall has no entry for the transfer")
        self.assertGreaterEqual(max(e["bytes"]["reply"] for e in fetched), BULK_BYTES, fetched)

    def test_pmtu_ipv4(self):
        self.check_pmtu(4)

    def test_pmtu_ipv6(self):
        self.check_pmtu(6)


# ---------------------------------------------------------------------------------------------
# Host mode: IPv6 neighbour discovery
# ---------------------------------------------------------------------------------------------

class NeighbourDiscoveryTests:
    """Mixed into a LabTestCase: flush both neighbour caches, then TCP and ping over IPv6."""

    MODE = lab.HOST
    RULES = HOST_RULES
    SERVER_PORTS = (TCP_PORT,)
    CLIENT_PORTS = ()

    @classmethod
    def make_lab(cls):
        return lab.Lab(cls.MODE, cls.RULES, server_ports=cls.SERVER_PORTS, client_ports=(),
                       iptables=cls.iptables_file())

    @classmethod
    def iptables_file(cls):
        return None

    def nd_queue_counters(self):
        """Packets of the u32 ND rules in seqwall's chain (RETURN in the shipped file)."""
        out = lab.ns_run(self.lab.fw_ns, ["ip6tables", "-vnxL", "SEQWALL"]).stdout
        return sum(int(line.split()[0]) for line in out.splitlines() if "u32" in line)

    def test_neighbour_discovery_after_flush(self):
        L = self.lab
        server, client = L.server_addr(6), L.client_addr(6)
        nd_before = self.nd_queue_counters()
        before = L.daemon.stats()
        for ns in (L.ns["client"], L.ns["server"]):
            lab.ns_run(ns, ["ip", "-6", "neigh", "flush", "dev", "eth0"])
        neigh = lab.ns_run(L.ns["client"], ["ip", "-6", "neigh", "show", server]).stdout
        self.assertNotIn("REACHABLE", neigh, "the neighbour cache was not flushed")
        self.assertTrue(lab.wait_for(lambda: ping(L.ns["client"], server), 10, 0.5),
                        "ping over IPv6 failed after the neighbour caches were flushed")
        with L.connect("client", server, TCP_PORT, timeout=10) as conn:
            self.assertTrue(conn.connected, conn.error)
            self.assertEqual(conn.send(b"nd"), b"echo:nd")
            conn.close()
        neigh = lab.ns_run(L.ns["server"], ["ip", "-6", "neigh", "show", client]).stdout
        self.assertRegex(neigh, r"lladdr \S+", f"the server has no neighbour entry for the client: {neigh}")
        after = L.daemon.stats()
        self.assertEqual(after["packets"]["dropped"] - before["packets"]["dropped"], 0, after["drops"])
        self.check_nd_path(self.nd_queue_counters() - nd_before, before, after)

    def check_nd_path(self, nd_matched, before, after):
        raise NotImplementedError


class HostNeighbourDiscoveryShippedTests(NeighbourDiscoveryTests, lab.LabTestCase):
    """The shipped host.iptables: ND never reaches the queue (its u32 rules RETURN it)."""

    def check_nd_path(self, nd_matched, before, after):
        self.assertGreater(nd_matched, 0, "no neighbour discovery matched the shipped file's u32 rules")

    def test_udp_reject_answers_port_unreachable(self):
        """`reject in udp to port 5355`: seqwall answers with a port unreachable, which leaves
        through OUTPUT, where seqwall lets it out as related to the refusal. A listener on
        5355 shows the datagram never arrived."""
        L = self.lab
        log = os.path.join(L.workdir, "udp-host.log")
        start_agent(L.ns["server"], L.workdir, "udp-serve-host", ["udp-serve", str(UDP_REJECTED), log])
        for fam in (4, 6):
            with self.subTest(family=fam):
                before = L.daemon.stats()
                ok, answer = udp_ask(L.ns["client"], L.server_addr(fam), UDP_REJECTED)
                after = L.daemon.stats()
                self.assertFalse(ok, f"the rejected port answered: {answer}")
                self.assertTrue(answer["refused"], f"no port unreachable came back: {answer}")
                self.assertEqual(stats_delta(before, after, "rule"), 1, after["drops"])
                self.assertEqual(stats_delta(before, after, "icmp-unrelated"), 0, after["drops"])
                self.assertEqual(read_json_lines(log), [], "a rejected datagram reached the server")


class HostNeighbourDiscoveryQueuedTests(NeighbourDiscoveryTests, lab.LabTestCase):
    """The shipped file without its ND exclusions: ND goes to seqwall, which passes it."""

    @classmethod
    def iptables_file(cls):
        with open(os.path.join(lab.IPTABLES_DIR, "host.iptables")) as f:
            text = f.read()
        kept = [ln for ln in text.splitlines() if "-m u32" not in ln]
        assert len(kept) < len(text.splitlines()), "host.iptables has no u32 ND rules to take out"
        # Count (without deciding) what is ND, ahead of the NFQUEUE rule.
        nfqueue = next(i for i, ln in enumerate(kept) if ln.startswith("-A SEQWALL -j NFQUEUE"))
        kept.insert(nfqueue, '-A SEQWALL -p ipv6-icmp -m u32 --u32 "4&0xFFFF=0x3AFF&&40>>24=133:137"')
        directory = tempfile.mkdtemp(prefix="seqwall-icmpudp-")
        lab.REGISTRY.install()
        lab.REGISTRY.add_tmp(directory)
        path = os.path.join(directory, "host-nd-queued.iptables")
        with open(path, "w") as f:
            f.write("\n".join(kept) + "\n")
        return path

    def check_nd_path(self, nd_matched, before, after):
        self.assertGreater(nd_matched, 0, "no neighbour discovery went to the queue")
        self.assertGreaterEqual(after["packets"]["accepted"] - before["packets"]["accepted"], nd_matched,
                                "seqwall did not pass the neighbour discovery it was given")


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        sys.exit(agent_main(sys.argv[1:]))
    unittest.main(verbosity=2)
