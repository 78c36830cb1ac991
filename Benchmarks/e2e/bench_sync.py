"""State sync end to end, for bench_e2e.py (cases `sync` and `failover`; docs/ha.md).

sync      the bench lab's firewall with a second firewall namespace joined by a sync link,
          running seqwall as the backup; the master measured with sync off and on, alternated
          within each round: one iperf3 stream (Gbit/s) and connrate (conn/s), and the bytes its
          sync socket sent (SyncStatus.bytes_sent, UDP payload) per second of the busy
          connection, per new connection and per idle second.
failover  Tests/Integration/test_failover.py's lab (two firewalls, keepalived from the shipped
          example, VRRP advert_int 1 s); a connection sending a line every 10 ms and a new
          connection attempt every 10 ms through the master; the master's seqwall killed with
          SIGKILL; the gap is the time from the kill to the first TCP packet the backup forwards
          toward the server (an AF_PACKET capture on its inside link), for any packet and for
          the established connection's own segments.
"""

import json
import os
import signal
import tempfile
import time

import lab
from lab import REGISTRY, LineReader, ns_run, spawn

SYNC_PORT = 7946
MASTER_SYNC, BACKUP_SYNC = "192.0.2.1", "192.0.2.2"


def sync_options(mine, peer, key):
    return ["--sync-listen", f"{mine}:{SYNC_PORT}", "--sync-peer", f"{peer}:{SYNC_PORT}", "--sync-key", key]


def sync_status(daemon):
    return json.loads(daemon.cli(["sync", "status", "-o", "json"]).stdout)


def in_sync(daemon):
    return daemon.cli(["sync", "status", "--check"], check=False).returncode == 0


class SyncPeer:
    """A backup firewall namespace on a sync link to the bench lab's firewall, running seqwall
    with sync: the master's sync, when on, has a real peer to bulk with and send to."""

    def __init__(self, bench_lab, workdir, rules):
        backup = bench_lab._new_ns("fwb")
        bench_lab._veth(bench_lab.fw_ns, "sync0", backup, "sync0")
        bench_lab._addr(bench_lab.fw_ns, "sync0", MASTER_SYNC + "/24")
        bench_lab._addr(backup, "sync0", BACKUP_SYNC + "/24")
        key = os.path.join(workdir, "sync.key")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(32))
        self.master_options = sync_options(MASTER_SYNC, BACKUP_SYNC, key)
        self.daemon = lab.Daemon(backup, rules, os.path.join(workdir, "control-backup.sock"),
                                 os.path.join(workdir, "seqwall-backup.log"),
                                 extra=["--log-level", "warning"] + sync_options(BACKUP_SYNC, MASTER_SYNC, key))
        self.daemon.start(ready_timeout=20)


# Runs in the client namespace: one interactive connection (a line every 10 ms, replies read)
# and a new connection attempt every 10 ms (closed after a second), until stdin closes.
PROBER = r"""
import collections, select, socket, sys, time
server, port = sys.argv[1], int(sys.argv[2])
live = socket.create_connection((server, port), timeout=5)
live.setblocking(False)
print(live.getsockname()[1], flush=True)
attempts = collections.deque()
n = 0
while not select.select([sys.stdin], [], [], 0.01)[0]:
    n += 1
    try:
        live.send(b"c %d\n" % n)
    except (BlockingIOError, OSError):
        pass
    try:
        while live.recv(65536):
            pass
    except (BlockingIOError, OSError):
        pass
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect((server, port))
    except (BlockingIOError, OSError):
        pass
    attempts.append((time.monotonic(), s))
    while attempts and time.monotonic() - attempts[0][0] > 1.0:
        attempts.popleft()[1].close()
"""

# Runs in the backup's namespace: prints the wall time of the first TCP packet it sends toward
# SERVER on IFACE, and of the first one from port SPORT (the established connection).
FIRST_FORWARDED = r"""
import json, socket, struct, sys, time
iface, server, sport = sys.argv[1], socket.inet_aton(sys.argv[2]), int(sys.argv[3])
# ETH_P_ALL: a packet socket bound to one protocol is not shown what the host sends.
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
s.bind((iface, 0))
s.settimeout(0.5)
print("listening", flush=True)
first = {}
deadline = time.time() + float(sys.argv[4])
while len(first) < 2 and time.time() < deadline:
    try:
        frame, address = s.recvfrom(2048)
    except socket.timeout:
        continue
    now = time.time()
    if (address[2] != 4 or len(frame) < 38 or frame[12:14] != b"\x08\x00" or frame[23] != 6
            or frame[30:34] != server):
        continue
    first.setdefault("any", now)
    offset = 14 + (frame[14] & 0x0F) * 4
    if struct.unpack("!H", frame[offset:offset + 2])[0] == sport:
        first.setdefault("connection", now)
print(json.dumps(first), flush=True)
"""


class FailoverGap:
    """test_failover.py's lab, measured: kill -9 of the master's seqwall, then the first packet
    the backup forwards."""

    def __init__(self, workdir):
        import test_failover
        self.tf = test_failover
        rules = os.path.join(workdir, "failover.rules")
        with open(rules, "w") as f:
            f.write(test_failover.RULES)
        self.lab = test_failover.FailoverLab(rules).build()
        self.lab.start_daemon()
        self.server = spawn(self.lab.ns["server"], [lab.PY, test_failover.THIS, "serve",
                                                     str(test_failover.INTERACTIVE_PORT), str(test_failover.BULK_PORT)],
                            os.path.join(self.lab.workdir, "server.stderr"), stdin=True)
        if LineReader(self.server.stdout).readline(10) != "ready":
            raise RuntimeError("the failover server agent did not start")
        self.wait_master_in_sync("a")

    def wait_master_in_sync(self, node):
        if not lab.wait_for(lambda: self.lab.master() == node, 60, 0.2):
            raise RuntimeError(f"node {node} did not become master")
        for daemon in self.lab.daemons.values():
            if not lab.wait_for(lambda: in_sync(daemon), 60, 0.2):
                raise RuntimeError(f"{daemon.ns} not in sync")

    def measure(self):
        """(seconds to the first forwarded packet, to the established connection's first,
        to the backup holding both virtual addresses)."""
        master, backup = self.lab.daemons["a"], self.lab.daemons["b"]
        server = "203.0.113.10"
        prober = spawn(self.lab.ns["client"], [lab.PY, "-c", PROBER, server, str(self.tf.INTERACTIVE_PORT)],
                       os.path.join(self.lab.workdir, "prober.stderr"), stdin=True)
        capture = None
        try:
            line = LineReader(prober.stdout).readline(10)
            if line is None or not line.strip().isdigit():
                raise RuntimeError(f"the prober did not connect: {line!r}")
            sport = int(line)
            # Long enough for the connection to be synced (coalescing, 50 ms) to the backup.
            time.sleep(2)
            capture = spawn(backup.ns, [lab.PY, "-c", FIRST_FORWARDED, "in0", server, str(sport), "30"],
                            os.path.join(self.lab.workdir, "capture.stderr"))
            reader = LineReader(capture.stdout)
            if reader.readline(10) != "listening":
                raise RuntimeError("the capture did not start")
            killed = time.time()
            master.stop(signal.SIGKILL)
            moved = None
            while moved is None and time.time() - killed < 30:
                if self.lab.master() == "b":
                    moved = time.time() - killed
                time.sleep(0.05)
            first = json.loads(reader.readline(40) or "{}")
        finally:
            for proc in (prober, capture):
                if proc is not None:
                    REGISTRY.kill_proc(proc, grace=1.0)
        gap_any = first["any"] - killed if "any" in first else None
        gap_connection = first["connection"] - killed if "connection" in first else None
        # Failback, for the next run: the master again, once in sync.
        master.start()
        self.wait_master_in_sync("a")
        return gap_any, gap_connection, moved

    def destroy(self):
        REGISTRY.kill_proc(self.server, grace=1.0)
        self.lab.destroy()


def failover_workdir():
    path = tempfile.mkdtemp(prefix="seqwall-bench-failover-")
    REGISTRY.add_tmp(path)
    return path
