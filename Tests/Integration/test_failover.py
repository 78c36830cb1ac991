"""Two seqwall firewalls with keepalived: a failover cuts no connection.

  client -- [outside switch] -- fw A (master), fw B -- [inside switch] -- server
                                 \\__ sync link __/

Both firewalls run seqwall in gateway mode on the same rules (strict: no pickup, no grace, no
queue bypass, so that a node forwards only what its table holds) and keepalived, configured
from the shipped dist/keepalived/keepalived.conf.example (VRRP for the outside and inside virtual addresses in one
sync group, tracking `seqwall sync status --check`). The seqwall nodes sync their tables over
a direct link. The client and the server route through the virtual addresses.

Each test runs 50 interactive connections (a line each way every 0.5 s, IPv4 and IPv6 half and
half) and a paced bulk transfer per family through the master, takes the master out (kill -9
of its seqwall, or its links down), lets VRRP move to the other node, then brings the first
node back and lets it take over again (failback). What must hold:
- no connection is reset or stalls: every interactive connection still answers at the end,
  and each bulk transfer arrives whole and exact (SHA-256);
- the node that took over dropped no segment of them as `no-connection`, `seq-above-window`
  or `ack-above-sent` (its own counters), on failover and on failback.
A third test starts node B while the connections run through A: B takes the bulk sync, says
it is in sync, and takes over cleanly when A's seqwall is killed. A fourth makes B take over
with a copy seconds old (the sync to it cut) just after the client's ACKs of the bulk transfers
were lost at A: the server's first segment through B retransmits data B has never seen while
the client acknowledges more than that, and B must let those ACKs through.

This file is also the agent program for the endpoints:
  /usr/bin/python3 test_failover.py serve INTERACTIVE_PORT BULK_PORT
  /usr/bin/python3 test_failover.py clients JSON
"""

import hashlib
import json
import os
import re
import selectors
import signal
import socket
import sys
import threading
import time
import unittest

INTERACTIVE_PORT = 8080
BULK_PORT = 8083
CONNECTIONS = 50
TICK = 0.5            # seconds between lines, each way, on an interactive connection
BULK_RATE = 1 << 20   # bytes per second of each bulk transfer


def pattern(length):
    """The bytes a bulk transfer carries: a function of the length alone."""
    block = hashlib.sha256(f"bulk {length}".encode()).digest() * 2048
    return (block * (length // len(block) + 1))[:length]


# ---------------------------------------------------------------------------------------------
# Agents
# ---------------------------------------------------------------------------------------------

def listener(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(128)
    return s


def serve(interactive_port, bulk_port):
    """Interactive: echoes each line `c N` as `e N`, and sends `s N` every TICK on its own.
    Bulk: reads `LENGTH\\n`, sends pattern(LENGTH) at BULK_RATE, closes."""

    def interactive(conn):
        conn.settimeout(TICK)
        buffered, sent = b"", 0
        next_tick = time.monotonic() + TICK
        try:
            while True:
                try:
                    data = conn.recv(4096)
                    if not data:
                        break
                    buffered += data
                    while b"\n" in buffered:
                        line, buffered = buffered.split(b"\n", 1)
                        if line.startswith(b"c "):
                            conn.sendall(b"e " + line[2:] + b"\n")
                except socket.timeout:
                    pass
                if time.monotonic() >= next_tick:
                    sent += 1
                    conn.sendall(f"s {sent}\n".encode())
                    next_tick += TICK
        except OSError:
            pass
        finally:
            conn.close()

    def bulk(conn):
        try:
            conn.settimeout(120)
            request = b""
            while not request.endswith(b"\n"):
                data = conn.recv(64)
                if not data:
                    return
                request += data
            body = pattern(int(request))
            started, chunk = time.monotonic(), 16384
            for offset in range(0, len(body), chunk):
                conn.sendall(body[offset:offset + chunk])
                ahead = (offset + chunk) / BULK_RATE - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        except OSError:
            pass
        finally:
            conn.close()

    def acceptor(sock, handler):
        while True:
            conn, _ = sock.accept()
            threading.Thread(target=handler, args=(conn,), daemon=True).start()

    sockets = [(listener(interactive_port), interactive), (listener(bulk_port), bulk)]
    for sock, handler in sockets:
        threading.Thread(target=acceptor, args=(sock, handler), daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()   # until the test closes our stdin (or dies)


def clients(spec):
    """Opens spec["connections"] interactive connections and one bulk transfer per family,
    prints `connected`, keeps them busy until it reads `finish` on stdin, then checks each
    interactive connection with a last round trip, waits for the bulk transfers, and prints
    one JSON line with what it saw."""
    addresses = spec["servers"]
    selector = selectors.DefaultSelector()
    conns = []
    for number in range(spec["connections"]):
        addr = addresses[number % len(addresses)]
        s = socket.create_connection((addr, spec["interactive_port"]), timeout=10)
        s.setblocking(False)
        record = {"number": number, "addr": addr, "sport": s.getsockname()[1], "sock": s,
                  "buffer": b"", "sent": 0, "echoed": 0, "server_lines": 0,
                  "last_heard": time.monotonic(), "longest_silence": 0.0, "error": None}
        conns.append(record)
        selector.register(s, selectors.EVENT_READ, record)

    bulks = []

    def fetch(addr, length):
        result = {"addr": addr, "length": length, "received": 0, "exact": False, "error": None}
        bulks.append(result)
        digest = hashlib.sha256()
        try:
            s = socket.create_connection((addr, spec["bulk_port"]), timeout=10)
            s.settimeout(spec["stall_limit"])
            s.sendall(f"{length}\n".encode())
            while True:
                data = s.recv(65536)
                if not data:
                    break
                digest.update(data)
                result["received"] += len(data)
            s.close()
            result["exact"] = (result["received"] == length
                               and digest.digest() == hashlib.sha256(pattern(length)).digest())
        except OSError as e:
            result["error"] = f"{type(e).__name__}: {e}"

    threads = [threading.Thread(target=fetch, args=(addr, spec["bulk_length"]), daemon=True)
               for addr in addresses]
    for t in threads:
        t.start()
    print("connected", flush=True)

    def drain(record, now):
        try:
            data = record["sock"].recv(4096)
        except BlockingIOError:
            return
        except OSError as e:
            record["error"] = record["error"] or f"{type(e).__name__}: {e}"
            return
        if not data:
            record["error"] = record["error"] or "closed by the server"
            return
        record["longest_silence"] = max(record["longest_silence"], now - record["last_heard"])
        record["last_heard"] = now
        record["buffer"] += data
        while b"\n" in record["buffer"]:
            line, record["buffer"] = record["buffer"].split(b"\n", 1)
            if line.startswith(b"e "):
                record["echoed"] = max(record["echoed"], int(line[2:]))
            elif line.startswith(b"s "):
                record["server_lines"] += 1

    stdin_closed = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stdin_closed.set()), daemon=True).start()
    next_tick = time.monotonic()
    while not stdin_closed.is_set():
        now = time.monotonic()
        if now >= next_tick:
            for record in conns:
                if record["error"] is None:
                    record["sent"] += 1
                    try:
                        record["sock"].send(f"c {record['sent']}\n".encode())
                    except BlockingIOError:
                        pass
                    except OSError as e:
                        record["error"] = f"{type(e).__name__}: {e}"
            next_tick += TICK
        for key, _ in selector.select(timeout=max(0.0, min(0.1, next_tick - now))):
            drain(key.data, time.monotonic())

    # The last round trip: every connection must answer its last line.
    deadline = time.monotonic() + spec["stall_limit"]
    while time.monotonic() < deadline and any(
            r["error"] is None and r["echoed"] < r["sent"] for r in conns):
        for key, _ in selector.select(timeout=0.1):
            drain(key.data, time.monotonic())
    for t in threads:
        t.join(spec["stall_limit"] + spec["bulk_length"] / BULK_RATE)
    end = time.monotonic()
    for record in conns:
        record["longest_silence"] = max(record["longest_silence"], end - record["last_heard"])
    report = {"connections": [{k: v for k, v in r.items()
                               if k not in ("sock", "buffer", "last_heard")}
                              for r in conns],
              "bulk": bulks}
    for record in conns:
        record["sock"].close()
    print(json.dumps(report), flush=True)


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] in ("serve", "clients"):
    # Agents die with the test: a lab namespace outlives no test.
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), int(sys.argv[3]))
    else:
        clients(json.loads(sys.argv[2]))
    sys.exit(0)

# ---------------------------------------------------------------------------------------------
# The lab
# ---------------------------------------------------------------------------------------------

import lab  # noqa: E402 (the agents above run without the lab module's set-up)

THIS = os.path.abspath(__file__)
KEEPALIVED_CONF = os.path.join(lab.REPO, "dist", "keepalived", "keepalived.conf.example")
SYNC_PORT = 7400

RULES = """\
# The failover lab: the server side is inside; the outside may reach ports 8080 and 8083 there.
inside 203.0.113.0/24, 2001:db8:2::/64

default in block
default out pass

pass in tcp to port 8080
pass in tcp to port 8083

# Strict: a node forwards only what its table holds, so only the synced table can carry a
# connection across a failover.
set pickup off
set pickup grace 0
"""

# The diversion, without --queue-bypass: a node whose seqwall is gone forwards nothing (and
# keepalived moves the addresses away from it) rather than forwarding without its table.
DIVERSION = """\
*filter
:SEQWALL - [0:0]
-A FORWARD -p tcp -j SEQWALL
-A SEQWALL -j NFQUEUE --queue-num 0
COMMIT
"""

NODES = {
    # name: (outside IPv4, IPv6, inside IPv4, IPv6, sync address, keepalived priority)
    "a": ("198.51.100.2", "2001:db8:1::2", "203.0.113.2", "2001:db8:2::2", "192.0.2.1", 110),
    "b": ("198.51.100.3", "2001:db8:1::3", "203.0.113.3", "2001:db8:2::3", "192.0.2.2", 100),
}
VIP_OUTSIDE = "198.51.100.1"
VIP_INSIDE = "203.0.113.1"


class FailoverLab(lab.Lab):
    """client, server, two switches (bridges in namespaces of their own) and two firewalls."""

    def __init__(self, workdir_rules):
        super().__init__(lab.GATEWAY, workdir_rules, server_ports=(), client_ports=(),
                         divert=False)
        self.daemons = {}
        self.keepalived = {}

    def fw(self, node):
        return self.ns["fw" + node]

    def _switch(self, role):
        ns = self._new_ns(role)
        lab.run(["ip", "-n", ns, "link", "add", "br0", "type", "bridge"])
        lab.run(["ip", "-n", ns, "link", "set", "br0", "up"])
        return ns

    def _plug(self, ns, ifname, switch, port):
        self._veth(ns, ifname, switch, port)
        lab.run(["ip", "-n", switch, "link", "set", port, "master", "br0"])

    def _build(self):
        c = self._new_ns("client")
        s = self._new_ns("server")
        outside = self._switch("swout")
        inside = self._switch("swin")
        self._plug(c, "eth0", outside, "client")
        self._plug(s, "eth0", inside, "server")
        self._addr(c, "eth0", "198.51.100.10/24")
        self._addr(c, "eth0", "2001:db8:1::10/64")
        self._addr(s, "eth0", "203.0.113.10/24")
        self._addr(s, "eth0", "2001:db8:2::10/64")
        lab.run(["ip", "-n", c, "route", "add", "default", "via", VIP_OUTSIDE])
        lab.run(["ip", "-n", c, "-6", "route", "add", "default", "via", "2001:db8:1::1"])
        lab.run(["ip", "-n", s, "route", "add", "default", "via", VIP_INSIDE])
        lab.run(["ip", "-n", s, "-6", "route", "add", "default", "via", "2001:db8:2::1"])
        for node in NODES:
            self._new_ns("fw" + node)
        self._veth(self.fw("a"), "eth2", self.fw("b"), "eth2")
        for node, (out4, out6, in4, in6, sync4, _) in NODES.items():
            f = self.fw(node)
            self._plug(f, "out0", outside, "fw" + node + "out")
            self._plug(f, "in0", inside, "fw" + node + "in")
            self._addr(f, "out0", out4 + "/24")
            self._addr(f, "out0", out6 + "/64")
            self._addr(f, "in0", in4 + "/24")
            self._addr(f, "in0", in6 + "/64")
            self._addr(f, "eth2", sync4 + "/24")
            lab.ns_run(f, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            lab.ns_run(f, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
            for tool in ("iptables-restore", "ip6tables-restore"):
                lab.ns_run(f, [tool, "--noflush"], input=DIVERSION)
            self.daemons[node] = lab.Daemon(
                f, self.rules, os.path.join(self.workdir, f"control-{node}.sock"),
                os.path.join(self.workdir, f"seqwall-{node}.log"),
                extra=self.sync_options(node))
        self.daemon = self.daemons["a"]

    def sync_options(self, node):
        peer = "b" if node == "a" else "a"
        return ["--sync-listen", f"{NODES[node][4]}:{SYNC_PORT}",
                "--sync-peer", f"{NODES[peer][4]}:{SYNC_PORT}",
                "--sync-key", os.path.join(self.workdir, "sync.key")]

    def write_sync_key(self):
        path = os.path.join(self.workdir, "sync.key")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))

    def keepalived_conf(self, node):
        """The shipped example with this lab's names: the seqwall under test and its control
        socket in the health checks, node B's lower priority. Two lines go: the notify hook
        (installed by make install, not present here) and enable_script_security (the
        seqwall under test may live below /tmp, which keepalived then refuses to run)."""
        with open(KEEPALIVED_CONF) as f:
            text = f.read()
        daemon = self.daemons[node]
        text = re.sub(r'script "/usr/bin/seqwall ([^"]*)"',
                      lambda m: f'script "{lab.SEQWALL_BIN} {m.group(1)} --control {daemon.control}"',
                      text)
        text = re.sub(r"\n\s*notify /usr/libexec/seqwall/keepalived-notify", "", text)
        text = re.sub(r"\n\s*enable_script_security", "", text)
        if node == "b":
            text = text.replace("priority 110", "priority 100")
        path = os.path.join(self.workdir, f"keepalived-{node}.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_keepalived(self, node):
        conf = self.keepalived_conf(node)
        run = os.path.join(self.workdir, f"keepalived-{node}")
        os.makedirs(run, exist_ok=True)
        argv = ["keepalived", "--dont-fork", "--log-console", "--log-detail", "--no-syslog",
                "--vrrp", "--use-file", conf, "--pid", os.path.join(run, "keepalived.pid"),
                "--vrrp_pid", os.path.join(run, "vrrp.pid")]
        self.keepalived[node] = lab.spawn(self.fw(node), argv,
                                          os.path.join(self.workdir, f"keepalived-{node}.log"),
                                          stdout=False)

    def master(self):
        """The node holding both virtual addresses, or None (also while they move)."""
        holders = []
        for node in NODES:
            out = lab.ns_run(self.fw(node), ["ip", "-o", "addr", "show"], check=False).stdout
            if f" {VIP_OUTSIDE}/" in out and f" {VIP_INSIDE}/" in out:
                holders.append(node)
        return holders[0] if len(holders) == 1 else None

    def start_daemon(self):
        self.write_sync_key()
        for node in NODES:
            self.daemons[node].start()
        for node in NODES:
            self.start_keepalived(node)

    def destroy(self):
        for proc in self.keepalived.values():
            lab.REGISTRY.kill_proc(proc, grace=2.0)
        self.keepalived = {}
        for daemon in self.daemons.values():
            if daemon.running():
                daemon.stop()
        for name in list(self.ns.values()):
            lab.REGISTRY.del_ns(name)
        self.ns = {}
        if self.workdir and not os.environ.get("SEQWALL_LAB_KEEP_LOGS"):
            import shutil
            shutil.rmtree(self.workdir, ignore_errors=True)


class FailoverTest(lab.LabTestCase):
    MODE = lab.GATEWAY
    RULE_TEXT = RULES

    @classmethod
    def make_lab(cls):
        import tempfile
        rules = tempfile.NamedTemporaryFile("w", prefix="seqwall-failover-", suffix=".rules",
                                            delete=False)
        rules.write(cls.RULE_TEXT)
        rules.close()
        lab.REGISTRY.add_tmp(rules.name)
        return FailoverLab(rules.name)

    @classmethod
    def setUpClass(cls):
        if not os.path.exists("/usr/sbin/keepalived"):
            raise unittest.SkipTest("keepalived is not installed (make deps installs it)")
        super().setUpClass()
        try:
            cls.server_agent = lab.spawn(cls.lab.ns["server"],
                                         [lab.PY, THIS, "serve", str(INTERACTIVE_PORT), str(BULK_PORT)],
                                         os.path.join(cls.lab.workdir, "server.stderr"), stdin=True)
            if lab.LineReader(cls.server_agent.stdout).readline(10) != "ready":
                raise RuntimeError("the server agent did not start")
            if not lab.wait_for(lambda: cls.lab.master() == "a", 30, 0.2):
                raise RuntimeError(f"node A did not become master; keepalived-a.log:\n"
                                   + cls.tail("keepalived-a.log"))
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        agent = getattr(cls, "server_agent", None)
        if agent is not None:
            lab.REGISTRY.kill_proc(agent, grace=1.0)
        super().tearDownClass()

    @classmethod
    def tail(cls, name, lines=40):
        try:
            with open(os.path.join(cls.lab.workdir, name), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError as e:
            return f"({e})"

    def setUp(self):
        for daemon in self.lab.daemons.values():
            if not daemon.running():
                daemon.start()
        if not lab.wait_for(lambda: self.lab.master() == "a", 30, 0.2):
            self.fail("node A is not master before the test")

    def lost_segments(self, node, before):
        after = self.lab.daemons[node].stats()
        return {reason: lab.drops(after, reason) - lab.drops(before, reason)
                for reason in ("no-connection", "seq-above-window", "ack-above-sent")}

    def wait_master(self, node, why):
        if not lab.wait_for(lambda: self.lab.master() == node, 30, 0.1):
            self.fail(f"{why}: node {node.upper()} did not become master; "
                      f"keepalived-a.log:\n{self.tail('keepalived-a.log')}\n"
                      f"keepalived-b.log:\n{self.tail('keepalived-b.log')}")

    def start_clients(self):
        """The interactive connections and the bulk transfers, connected through the master."""
        spec = {"servers": [self.lab.server_addr(4), self.lab.server_addr(6)],
                "interactive_port": INTERACTIVE_PORT, "bulk_port": BULK_PORT,
                "connections": CONNECTIONS, "bulk_length": 16 * BULK_RATE, "stall_limit": 20}
        agent = lab.spawn(self.lab.ns["client"], [lab.PY, THIS, "clients", json.dumps(spec)],
                          os.path.join(self.lab.workdir, "clients.stderr"), stdin=True)
        self.addCleanup(lab.REGISTRY.kill_proc, agent, 1.0)
        reader = lab.LineReader(agent.stdout)
        self.assertEqual(reader.readline(30), "connected",
                         f"the client did not connect:\n{self.tail('clients.stderr')}")
        return agent, reader

    def finish_clients(self, agent, reader, lost):
        """Ends the traffic and checks it: every connection whole, and no segment lost by a
        node that took over (lost: what each phase's new master dropped, by phase)."""
        agent.stdin.write(b"finish\n")
        agent.stdin.flush()
        line = reader.readline(60)
        self.assertIsNotNone(line, f"the client reported nothing:\n{self.tail('clients.stderr')}")
        report = json.loads(line)
        broken = [c for c in report["connections"] if c["error"] or c["echoed"] < c["sent"]]
        longest = max(c["longest_silence"] for c in report["connections"])
        summary = (f"{len(report['connections'])} interactive connections, longest silence "
                   f"{longest:.1f} s; bulk {report['bulk']}; segments lost by the new master: "
                   f"{lost}")
        sys.stderr.write(f"\n{summary}\n")
        self.assertEqual(len(broken), 0, f"{len(broken)} connections reset or stalled (the "
                                         f"first: {broken[:3]}): {summary}")
        self.assertEqual([b for b in report["bulk"] if not b["exact"]], [],
                         f"bulk transfers not exact: {summary}")
        for phase, counts in lost.items():
            self.assertEqual(counts, dict.fromkeys(counts, 0), f"{phase}: {summary}")

    def take_over(self, node, action, why, lost):
        """action() makes node the master; then a few seconds of traffic through it, whose
        lost segments go into lost[why]."""
        action()
        # Counted from just after the action (a node whose seqwall it restarted has new
        # counters): VRRP takes a second or more to move, so nothing is missed.
        before = self.lab.daemons[node].stats()
        self.wait_master(node, why)
        time.sleep(4)
        lost[why] = self.lost_segments(node, before)

    def run_through(self, take_out, bring_back):
        """Connections through A; take_out() makes B take over, bring_back() makes A take over
        again."""
        agent, reader = self.start_clients()
        lost = {}
        time.sleep(3)
        self.take_over("b", take_out, "failover", lost)
        self.take_over("a", bring_back, "failback", lost)
        self.finish_clients(agent, reader, lost)

    def test_master_seqwall_killed(self):
        """kill -9 of the master's seqwall; failback when it is started again and in sync."""
        daemon = self.lab.daemons["a"]
        self.run_through(lambda: daemon.stop(signal.SIGKILL), daemon.start)

    def test_master_links_down(self):
        """The master's links go down; failback when they come up again."""
        fw = self.lab.fw("a")

        def links(state):
            for ifname in ("out0", "in0"):
                lab.run(["ip", "-n", fw, "link", "set", ifname, state])
        self.run_through(lambda: links("down"), lambda: links("up"))


    def test_late_node(self):
        """B starts while connections run through A: it takes the bulk sync, says it is in
        sync, and then takes over from A cleanly."""
        late = self.lab.daemons["b"]
        late.stop()
        agent, reader = self.start_clients()
        lost = {}
        time.sleep(2)
        late.start()
        in_sync = lambda: late.cli(["sync", "status", "--check"], check=False).returncode == 0
        self.assertTrue(lab.wait_for(in_sync, 30, 0.2),
                        "node B, started late, never said it was in sync:\n"
                        + late.cli(["sync", "status"], check=False).stdout)
        time.sleep(2)
        first = self.lab.daemons["a"]
        self.take_over("b", lambda: first.stop(signal.SIGKILL), "takeover by the late node", lost)
        self.finish_clients(agent, reader, lost)

    def test_takeover_behind_lost_acks(self):
        """B takes over with a copy seconds old while the server holds data unacknowledged
        that the client has received: B's first segment of each bulk transfer from the server
        is a retransmission from its oldest unacknowledged byte, far above B's copy and below
        what the client acknowledges, and those ACKs must pass (docs/ha.md, What is synced).
        Made so in A's namespace by an nft table of the test's own: the sync to B is cut, so
        that B's copy falls behind, and then the client's ACKs of the bulk transfers are lost
        at A for a moment before A's seqwall is killed."""
        fw = self.lab.fw("a")
        table = "seqwall_lab_behind"
        # Ahead of the diversion (iptables' FORWARD filter, priority 0), so that A's seqwall
        # never sees the ACKs it loses; the sync is A's own output.
        lab.ns_run(fw, ["nft", "-f", "-"], input=f"""
table inet {table} {{
    chain output {{
        type filter hook output priority filter; policy accept;
    }}
    chain forward {{
        type filter hook forward priority filter - 10; policy accept;
    }}
}}
""")
        self.addCleanup(lab.ns_run, fw, ["nft", "delete", "table", "inet", table], check=False)

        def drop(chain, match, comment):
            lab.ns_run(fw, ["nft", "add", "rule", "inet", table, chain, *match.split(),
                            "counter", "drop", "comment", f'"{comment}"'])

        def dropped():
            listing = json.loads(lab.ns_run(fw, ["nft", "-j", "list", "table", "inet", table]).stdout)
            return {item["rule"]["comment"]: expr["counter"]["packets"]
                    for item in listing["nftables"] if "rule" in item
                    for expr in item["rule"]["expr"] if "counter" in expr}

        backup = self.lab.daemons["b"]
        first = self.lab.daemons["a"]
        agent, reader = self.start_clients()
        lost = {}
        time.sleep(2)
        drop("output", f"ip daddr {NODES['b'][4]} udp dport {SYNC_PORT}", "sync")
        applied = backup.stats()["sync"]["entries_applied"]
        time.sleep(3)
        for family in ("ipv4", "ipv6"):
            drop("forward", f'meta nfproto {family} iifname "out0" tcp dport {BULK_PORT}',
                 f"{family} acks")
        time.sleep(1)
        self.take_over("b", lambda: first.stop(signal.SIGKILL), "takeover behind lost ACKs", lost)
        counts = dropped()
        lab.ns_run(fw, ["nft", "delete", "table", "inet", table])
        # The case happened: the sync was cut (B applied nothing from A after the cut) and
        # the client's ACKs of both transfers (one a family) were lost at A.
        self.assertGreater(counts["sync"], 0, counts)
        self.assertEqual(backup.stats()["sync"]["entries_applied"], applied,
                         "node B applied records sent after the sync was cut")
        self.assertGreater(counts["ipv4 acks"], 0, counts)
        self.assertGreater(counts["ipv6 acks"], 0, counts)
        self.finish_clients(agent, reader, lost)


if __name__ == "__main__":
    unittest.main()
