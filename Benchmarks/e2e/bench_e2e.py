#!/usr/bin/python3
"""seqwall end-to-end benchmark (`make bench-e2e`): real traffic through a lab of namespaces
(client -- fw -- server, gateway mode, Tests/Integration/lab.py), each case measured side by
side in one run against

  none       no queue at all: the ceiling;
  conntrack  the kernel's own stateful filtering (iptables conntrack rules in fw), for reference;
  C          Benchmarks/e2e/accept_all.c, an accept-all NFQUEUE consumer on libmnl with
             seqwall's queue settings: the physical limit of the NFQUEUE path;
  seqwall    the release build, `seqwall run --fail-open` on the same iptables rules as C.

Cases (each a few seconds, bounded; the whole run a few minutes):

  bulk-1, bulk-4   iperf3 throughput, offloads on, 1 and 4 streams (Gbit/s)
  small-pps        offloads off on every veth, MSS 88, 4 streams: data packets per second
                   forwarded toward the server (fw's interface counter)
  latency          sockperf ping-pong (TCP, 14-byte messages): p50 and p99 of the one-way
                   latency sockperf reports (round trip / 2), in microseconds
  conn-rate        connrate.c: connect, send 64 bytes, close, read to EOF; 4 threads (conn/s)
  queues           iperf3 4 streams through 2 queues (--queue-balance 0:1) and through 1 queue,
                   for C and seqwall
  sync             each seqwall (--seqwall) with state sync off and on (a backup node on a
                   sync link, restarted empty before each run with sync on), alternated each
                   round: bulk-1 and conn-rate, the master's CPU per connection (all threads,
                   the workers, the sync thread), and the sync's bytes per second of the busy
                   connection, per new connection and per idle second; each for
                   --sync-seconds (10: a connection rate's steady state, in which the
                   client reuses ports still in TIME_WAIT, begins after about 2.3 s here)
  failover         after the rounds, --failovers times: kill -9 of the master's seqwall in
                   test_failover.py's keepalived lab, to the first packet the backup forwards
                   (Benchmarks/e2e/bench_sync.py)
  spoofed-syn      hping3 -S --rand-source --flood (bounded by count and time) at a connrate
                   server that has no SYN cookies (tcp_syncookies=0) and a listen backlog of
                   16 (somaxconn), while connrate's client
                   connects to it: packets per second each consumer judges, spoofed SYNs per
                   second offered (counted as they reach fw) and reaching the server (counted
                   there), legitimate connections per second; for none, C, the kernel's nft
                   synproxy, seqwall and seqwall with `synproxy` on the port (docs/synproxy.md)
  proxied          bulk-1 and conn-rate through the SYN proxies (nft synproxy and seqwall's)
                   beside the same without one, and bulk-1 to a port outside the proxies'
                   rules (what a policy with a SYN proxy costs the connections it does not
                   proxy); seqwall's SYN proxy ports go to a queue of their own
                   (--synproxy-queue), the others to the general queue

Usage: bench_e2e.py [--seconds S] [--rounds N] [--cases a,b,...] [--json FILE] [--failovers N]
                   [--sync-seconds S] [--seqwall NAME=PATH]... [--profile CMD]
  SEQWALL_BIN   the seqwall binary (default <repo>/.build/release/seqwall)

A/B: `--seqwall old=/tmp/seqwall-old --seqwall new=.build/release/seqwall` measures two seqwall
binaries as two variants in the same rounds (one table per binary against C, then new/old per
round); options after the path go to `seqwall run` (`--seqwall 'rt=PATH --realtime-priority 10'`). `--profile 'strace -c -f -p {pid}'` attaches a profiler to each consumer (C and seqwall)
for the length of each measurement and prints what it wrote to stderr. `--c-variant
'Cmmsg=--recvmmsg'` adds accept_all with those options as one more variant (reported against C).
Needs root, iperf3, sockperf, ethtool, cc, libmnl and libnetfilter_queue headers (`make
bench-e2e` installs what is missing).
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
os.environ.setdefault("SEQWALL_BIN", os.path.join(REPO, ".build", "release", "seqwall"))
sys.path.insert(0, os.path.join(REPO, "Tests", "Integration"))
import lab  # noqa: E402  (the integration lab: namespaces, REGISTRY cleanup, spawn, Daemon)
from lab import REGISTRY, LineReader, ns_run, run, spawn  # noqa: E402
import bench_sync  # noqa: E402

BASE_VARIANTS = ("none", "conntrack", "C")
CASES = ("bulk-1", "bulk-4", "small-pps", "latency", "conn-rate", "queues", "sync", "failover", "spoofed-syn",
         "proxied")
SERVER4 = "203.0.113.10"
CLIENT4 = "198.51.100.10"
IPERF_PORT, SOCKPERF_PORT, CONNRATE_PORT, SYN_PORT = 5201, 11111, 9100, 9200
# A second iperf3 server, never behind a SYN proxy: what a policy with `synproxy` rules costs
# the connections it does not proxy.
PLAIN_IPERF_PORT = 5202

# The SYN proxy cases' variants: the kernel's nft synproxy, and the first seqwall binary with
# SYNPROXY_RULES (named after it with this suffix).
NFT_SYNPROXY = "nft-synproxy"
SYNPROXY_SUFFIX = "-synproxy"
# The flood: as fast as hping3 goes, at most this many SYNs a second of the case (it reaches
# well under that here), ended by `timeout` a second after the case's time in any event.
FLOOD_PER_SECOND_BOUND = 200000

# seqwall's policy for the benchmark: the bench ports are open inbound, nothing else.
RULES = f"""# seqwall e2e benchmark policy (gateway mode)
inside 203.0.113.0/24, 2001:db8:2::/64
default in block
default out pass
pass in tcp to port {IPERF_PORT}, {SOCKPERF_PORT}, {CONNRATE_PORT}, {SYN_PORT}, {PLAIN_IPERF_PORT}
"""

# The same with seqwall's SYN proxy on the ports of the SYN proxy cases.
SYNPROXY_RULES = f"""# seqwall e2e benchmark policy (gateway mode), SYN proxy cases
inside 203.0.113.0/24, 2001:db8:2::/64
default in block
default out pass
pass in tcp to port {IPERF_PORT}, {CONNRATE_PORT}, {SYN_PORT} synproxy
pass in tcp to port {SOCKPERF_PORT}, {PLAIN_IPERF_PORT}
"""

# The SYN proxy's ports (both directions) go to a queue of their own, after the general ones,
# which seqwall is told with --synproxy-queue: only that queue copies whole packets
# (docs/synproxy.md, Whole packets: the copy range).
SYNPROXY_PORTS = (IPERF_PORT, CONNRATE_PORT, SYN_PORT)

# The kernel's SYN proxy on the same ports (lab.nft_synproxy_rules: nft's documented ruleset).
NFT_SYNPROXY_TABLE = "benchsynproxy"
NFT_SYNPROXY_RULES = lab.nft_synproxy_rules(NFT_SYNPROXY_TABLE, SYNPROXY_PORTS)

# Spoofed SYNs to SYN_PORT (any source but the client's), counted where they arrive: in fw
# before anything else sees them, and in the server.
SYN_COUNTER_TABLE = "benchsyns"


def syn_counter_rules(hook, priority):
    return f"""
table inet {SYN_COUNTER_TABLE} {{
    counter spoofed {{ }}
    chain count {{
        type filter hook {hook} priority {priority}; policy accept;
        tcp dport {SYN_PORT} tcp flags & (syn | ack) == syn ip saddr != {CLIENT4} counter name spoofed
    }}
}}
"""

# What seqwall ships for gateway mode (rules/gateway.iptables), used for C and seqwall alike;
# QUEUE_TARGET is "--queue-num 0" or "--queue-balance 0:1".
QUEUE_RULES = """*filter
:SEQWALL - [0:0]
-A FORWARD -p tcp -j SEQWALL
-A SEQWALL -j NFQUEUE QUEUE_TARGET --queue-bypass
COMMIT
"""

# The kernel's stateful filter doing seqwall's job: established flows pass, INVALID is dropped,
# new connections only to the open ports.
CONNTRACK_RULES = f"""*filter
-A FORWARD -m conntrack --ctstate INVALID -j DROP
-A FORWARD -p tcp -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
-A FORWARD -p tcp --syn -m conntrack --ctstate NEW -m multiport --dports {IPERF_PORT},{SOCKPERF_PORT},{CONNRATE_PORT},{PLAIN_IPERF_PORT} -j ACCEPT
-A FORWARD -p tcp -j DROP
COMMIT
"""

EMPTY_RULES = "*filter\nCOMMIT\n"


def log(message):
    sys.stderr.write(f"bench-e2e: {message}\n")
    sys.stderr.flush()


def cpu_nanoseconds(pid):
    """CPU time process pid's threads have had (user and system), from each thread's
    /proc/PID/task/TID/schedstat (nanoseconds on a CPU)."""
    return sum(thread_cpu_nanoseconds(pid).values())


def machine_cpu_nanoseconds():
    """(busy, idle) nanoseconds of all this machine's CPUs since boot, from /proc/stat's cpu
    line (proc(5): user nice system idle iowait irq softirq steal ..., in USER_HZ ticks): the
    busy part counts what no process is charged for too (softirq, interrupts)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    tick = 1e9 / os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]
    busy = sum(fields[:8]) - idle
    return busy * tick, idle * tick


def thread_wakeups(pid):
    """Voluntary context switches of process pid's threads, summed by thread name: how often
    they slept and were woken (a poll that returned, a mailbox job), /proc/PID/task/TID/status."""
    totals = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                switches = next(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches:"))
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
        except (OSError, ValueError, IndexError, StopIteration):
            continue
        totals[name] = totals.get(name, 0) + switches
    return totals


def thread_cpu_nanoseconds(pid):
    """CPU time (ns) of process pid's threads, summed by thread name (/proc/PID/task/TID/comm:
    seqwall-q0, seqwall-sync, ...), so a cost can be told apart by the thread that pays it."""
    totals = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                used = int(f.read().split()[0])
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = f.read().strip()
        except (OSError, ValueError, IndexError):
            continue
        totals[name] = totals.get(name, 0) + used
    return totals


class BenchLab(lab.Lab):
    """The integration lab's gateway topology without its test agents (echo server, raw-socket
    probe): they would only take CPU from the measurement."""

    def __init__(self, workdir):
        empty = os.path.join(workdir, "empty.iptables")
        with open(empty, "w") as f:
            f.write(EMPTY_RULES)
        super().__init__(lab.GATEWAY, os.path.join(workdir, "bench.rules"), server_ports=(8080,),
                         client_ports=(), iptables=empty)

    def build(self):
        super().build()
        for agent in (self.server, self.probe):
            REGISTRY.kill_proc(agent.proc, grace=1.0)
        self.server = self.probe = None
        # Room for tens of thousands of short connections per second from one client.
        ns_run(self.ns["client"], ["sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535"])
        ns_run(self.ns["client"], ["sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1"])
        # The spoofed-syn case's sources arrive on out0, which routes nowhere near them.
        lab.allow_spoofed_sources(self.fw_ns, "out0")
        return self

    def veths(self):
        return [(self.ns["client"], "eth0"), (self.fw_ns, "out0"), (self.fw_ns, "in0"),
                (self.ns["server"], "eth0")]

    def set_offloads(self, on):
        state = "on" if on else "off"
        for ns, dev in self.veths():
            ns_run(ns, ["ethtool", "-K", dev, "tso", state, "gso", state, "gro", state], check=False)

    def load_filter(self, text):
        """Replaces fw's filter table (IPv4 and IPv6) with `text`."""
        for tool in ("iptables-restore", "ip6tables-restore"):
            ns_run(self.fw_ns, [tool], input=text)

    def forwarded_to_server(self):
        """Packets fw has sent toward the server (in0's transmit counter)."""
        cp = ns_run(self.fw_ns, ["cat", "/sys/class/net/in0/statistics/tx_packets"])
        return int(cp.stdout.strip())

    def queue_counters(self):
        """/proc/net/netfilter/nfnetlink_queue in fw: queue -> (id_sequence, queue_dropped,
        user_dropped). id_sequence counts every packet handed to the queue, also those that
        fail-open let pass because the queue was full."""
        cp = ns_run(self.fw_ns, ["cat", "/proc/net/netfilter/nfnetlink_queue"], check=False)
        out = {}
        for line in cp.stdout.splitlines():
            f = line.split()
            if len(f) >= 8:
                out[int(f[0])] = (int(f[7]), int(f[5]), int(f[6]))
        return out


class Refused(Exception):
    """The consumer would not start (seqwall refusing a policy it cannot carry out)."""


class Consumer:
    """Whatever sits on the queue (or not) for one variant, for one measurement."""

    def __init__(self, bench, variant, queues=1, options=()):
        self.bench, self.variant, self.queues = bench, variant, queues
        self.options = list(options)
        self.proc = None
        self.profiler = None
        self.daemon = None
        self.judged = None

    def __enter__(self):
        b = self.bench
        target = "--queue-num 0" if self.queues == 1 else f"--queue-balance 0:{self.queues - 1}"
        proxied = self.variant == b.synproxy_seqwall
        # seqwall with the SYN proxy: its ports on the queue after the general ones.
        synproxy_queue = self.queues
        if self.variant in ("none", NFT_SYNPROXY):
            b.lab.load_filter(EMPTY_RULES)
        elif self.variant == "conntrack":
            b.lab.load_filter(CONNTRACK_RULES)
        elif proxied:
            b.lab.load_filter(lab.with_synproxy_queue(QUEUE_RULES.replace("QUEUE_TARGET", target), SYNPROXY_PORTS,
                                                      synproxy_queue))
        else:
            b.lab.load_filter(QUEUE_RULES.replace("QUEUE_TARGET", target))
        if self.variant == NFT_SYNPROXY:
            ns_run(b.lab.fw_ns, ["nft", "-f", "-"], input=NFT_SYNPROXY_RULES)
            for knob in ("net.ipv4.tcp_syncookies=2", "net.ipv4.tcp_timestamps=1",
                         "net.netfilter.nf_conntrack_tcp_loose=0"):
                ns_run(b.lab.fw_ns, ["sysctl", "-qw", knob])
        if self.variant == "C" or self.variant in b.c_variants:
            argv = [b.accept_all] + b.c_variants.get(self.variant, [])
            for q in range(self.queues):
                argv += ["--queue", str(q)]
            self.proc = spawn(b.lab.fw_ns, argv, os.path.join(b.workdir, "accept_all.log"))
            line = LineReader(self.proc.stdout).readline(10)
            if line != "ready":
                raise RuntimeError(f"accept_all did not start: {line!r}")
        elif self.variant in b.seqwalls or self.variant == b.synproxy_seqwall:
            # lab.Daemon runs (and its CLI talks through) the module's SEQWALL_BIN.
            lab.SEQWALL_BIN, options = b.seqwalls[self.variant[:-len(SYNPROXY_SUFFIX)] if proxied else self.variant]
            own_queue = ["--synproxy-queue", str(synproxy_queue)] if proxied else []
            self.daemon = lab.Daemon(b.lab.fw_ns, b.synproxy_rules if proxied else b.rules,
                                     os.path.join(b.workdir, "control.sock"),
                                     os.path.join(b.workdir, "seqwall.log"), queues=range(self.queues),
                                     extra=["--fail-open", "--log-level", "warning"] + own_queue + options
                                     + self.options)
            try:
                self.daemon.start(ready_timeout=20)
            except RuntimeError as e:
                if not proxied:
                    raise
                # A build whose daemon does not carry out `synproxy` refuses the policy: the
                # row says so instead of ending the whole run.
                self.daemon = None
                b.lab.load_filter(EMPTY_RULES)
                raise Refused(str(e).splitlines()[-1]) from e
        self.before = b.lab.queue_counters()
        self.cpu_before = self.cpu_nanoseconds()
        if b.args.profile and self.pid() is not None:
            argv = b.args.profile.replace("{pid}", str(self.pid())).split()
            self.profile_log = os.path.join(b.workdir, "profile.log")
            with open(self.profile_log, "w"):
                pass
            self.profiler = subprocess.Popen(argv, stdout=open(self.profile_log, "ab"), stderr=subprocess.STDOUT,
                                             start_new_session=True)
            REGISTRY.add_proc(self.profiler)
        return self

    def pid(self):
        """The consumer's process id (`ip netns exec` execs the command, so it is Popen's)."""
        if self.proc is not None:
            return self.proc.pid
        if self.daemon is not None and self.daemon.proc is not None:
            return self.daemon.proc.pid
        return None

    def stop_profiler(self, label):
        if self.profiler is None:
            return
        self.profiler.send_signal(signal.SIGINT)
        try:
            self.profiler.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        REGISTRY.kill_proc(self.profiler, grace=1.0)
        with open(self.profile_log, errors="replace") as f:
            log(f"profile of {label}:\n{f.read()}")
        self.profiler = None

    def cpu_nanoseconds(self):
        """CPU time the consumer's threads have had (user and system), from each thread's
        /proc/PID/task/TID/schedstat (nanoseconds on a CPU); None without a consumer. The
        verdicts' sendto() carries each packet on through the kernel's stack, so this is the
        consumer's whole share of a packet's cost, not only its own code."""
        pid = self.pid()
        return None if pid is None else cpu_nanoseconds(pid)

    def handled(self):
        """Packets the consumer gave a verdict for, packets the queue was handed, and the
        consumer's CPU time meanwhile (ns), so far."""
        after = self.bench.lab.queue_counters()
        offered = sum(v[0] for v in after.values())
        cpu = self.cpu_nanoseconds()
        cpu = cpu - self.cpu_before if cpu is not None and self.cpu_before is not None else None
        if self.daemon is not None:
            stats = self.daemon.stats()
            return stats["packets"]["seen"], offered, cpu
        return None, offered, cpu

    def __exit__(self, *exc):
        result = None
        self.stop_profiler(f"{self.variant} ({self.queues} queue(s))")
        if self.daemon is not None:
            self.daemon.stop()
        if self.variant == NFT_SYNPROXY:
            ns_run(self.bench.lab.fw_ns, ["nft", "delete", "table", "inet", NFT_SYNPROXY_TABLE], check=False)
            ns_run(self.bench.lab.fw_ns, ["sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=1"], check=False)
        if self.proc is not None:
            # accept_all prints how many packets it judged when it stops.
            self.proc.send_signal(signal.SIGTERM)
            try:
                out, _ = self.proc.communicate(timeout=5)
                self.judged = sum(int(n) for n in re.findall(r"packets (\d+)", out.decode(errors="replace")))
            except subprocess.TimeoutExpired:
                pass
            REGISTRY.kill_proc(self.proc, grace=1.0)
        self.bench.lab.load_filter(EMPTY_RULES)
        return result


class Bench:
    def __init__(self, args):
        self.args = args
        self.seconds = args.seconds
        self.workdir = tempfile.mkdtemp(prefix="seqwall-bench-")
        REGISTRY.add_tmp(self.workdir)
        self.seqwalls = dict(args.seqwall)   # variant name -> (binary, run options), in the order given
        self.c_variants = dict(args.c_variant)   # variant name -> accept_all options
        self.variants = BASE_VARIANTS + tuple(self.c_variants) + tuple(self.seqwalls)
        self.rules = os.path.join(self.workdir, "bench.rules")
        with open(self.rules, "w") as f:
            f.write(RULES)
        self.synproxy_rules = os.path.join(self.workdir, "bench-synproxy.rules")
        with open(self.synproxy_rules, "w") as f:
            f.write(SYNPROXY_RULES)
        first = next(iter(self.seqwalls))
        self.synproxy_seqwall = first + SYNPROXY_SUFFIX
        self.synproxy_variants = ("none", "C", NFT_SYNPROXY, first, self.synproxy_seqwall)
        self.accept_all = self.compile("accept_all.c", ["-lpthread"], pkg=("libnetfilter_queue", "libmnl"))
        self.connrate = self.compile("connrate.c", ["-lpthread"])
        self.lab = BenchLab(self.workdir).build()
        self.results = {}    # (case, variant, metric) -> [values over rounds]
        self.notes = {}      # (case, variant) -> text (queue pass-through, failures)
        self.sync_peer = None
        self.start_servers()

    def compile(self, source, libs, pkg=()):
        out = os.path.join(self.workdir, source[:-2])
        flags = run(["pkg-config", "--cflags", "--libs"] + list(pkg)).stdout.split() if pkg else []
        run(["cc", "-O2", "-Wall", "-o", out, os.path.join(HERE, source)] + flags + libs, timeout=120)
        return out

    def start_servers(self):
        s = self.lab.ns["server"]
        REGISTRY.install()
        for port in (IPERF_PORT, PLAIN_IPERF_PORT):
            spawn(s, ["iperf3", "-s", "-p", str(port)], os.path.join(self.workdir, f"iperf3-{port}.log"),
                  stdout=False)
        spawn(s, ["sockperf", "server", "--tcp", "-i", SERVER4, "-p", str(SOCKPERF_PORT)],
              os.path.join(self.workdir, "sockperf.log"), stdout=False)
        proc = spawn(s, [self.connrate, "server", str(CONNRATE_PORT), "4"], os.path.join(self.workdir, "connrate.log"))
        if LineReader(proc.stdout).readline(10) != "ready":
            raise RuntimeError("connrate server did not start")
        time.sleep(1.0)

    def record(self, case, variant, metric, value):
        self.results.setdefault((case, variant, metric), []).append(value)

    def note(self, case, variant, text):
        self.notes.setdefault((case, variant), []).append(text)

    # -- measurements (run inside a Consumer context) --

    def iperf(self, streams, mss=None, port=IPERF_PORT, seconds=None):
        seconds = seconds or self.seconds
        argv = ["iperf3", "-c", SERVER4, "-p", str(port), "-t", str(seconds), "-P", str(streams),
                "-J", "--connect-timeout", "3000"]
        if mss:
            argv += ["-M", str(mss)]
        cp = ns_run(self.lab.ns["client"], argv, timeout=seconds + 30, check=False)
        try:
            data = json.loads(cp.stdout)
            return data["end"]["sum_received"]["bits_per_second"]
        except (ValueError, KeyError) as e:
            raise RuntimeError(f"iperf3 failed: {cp.stdout[-400:]} {cp.stderr[-400:]}") from e

    def sockperf(self):
        cp = ns_run(self.lab.ns["client"], ["sockperf", "ping-pong", "--tcp", "-i", SERVER4, "-p", str(SOCKPERF_PORT),
                                            "-t", str(self.seconds)], timeout=self.seconds + 30, check=False)
        text = cp.stdout + cp.stderr
        found = {}
        for pct in ("50.000", "99.000"):
            m = re.search(r"percentile\s+" + re.escape(pct) + r"\s*=\s*([0-9.]+)", text)
            if not m:
                raise RuntimeError(f"sockperf printed no {pct} percentile:\n{text[-800:]}")
            found[pct] = float(m.group(1))
        return found["50.000"], found["99.000"]

    def connections(self, with_count=False, seconds=None):
        seconds = seconds or self.seconds
        cp = ns_run(self.lab.ns["client"], [self.connrate, "client", SERVER4, str(CONNRATE_PORT), str(seconds), "4"],
                    timeout=seconds + 30)
        m = re.search(r"connections (\d+) failures (\d+) seconds ([0-9.]+)", cp.stdout)
        if not m:
            raise RuntimeError(f"connrate printed {cp.stdout!r}")
        rate, failures = int(m.group(1)) / float(m.group(3)), int(m.group(2))
        return (rate, failures, int(m.group(1))) if with_count else (rate, failures)

    def spoofed_syns(self, consumer, variant):
        """The spoofed-syn case inside a Consumer: a connrate server of its own on SYN_PORT
        (a fresh listener, so no SYN queue is left over from the variant before) without SYN
        cookies, the flood, connrate's client meanwhile."""
        lb = self.lab
        client, server, fw = lb.ns["client"], lb.ns["server"], lb.fw_ns
        # A backlog of 16 (listen() takes the smaller of its own and somaxconn), as the lab's
        # test_synproxy.py: with connrate's 4096 the SYN queue never fills, because from 3/4
        # of tcp_max_syn_backlog on, without cookies, the kernel drops only SYNs of peers it
        # has no RTT for (tcp_conn_request, tcp_peer_is_proven) and the client is known.
        ns_run(server, ["sysctl", "-qw", "net.ipv4.tcp_syncookies=0"])
        somaxconn = ns_run(server, ["sysctl", "-n", "net.core.somaxconn"]).stdout.strip()
        ns_run(server, ["sysctl", "-qw", "net.core.somaxconn=16"])
        ns_run(fw, ["nft", "-f", "-"], input=syn_counter_rules("prerouting", -400))
        ns_run(server, ["nft", "-f", "-"], input=syn_counter_rules("input", 0))
        listener = spawn(server, [self.connrate, "server", str(SYN_PORT), "2"],
                         os.path.join(self.workdir, "connrate-syn.log"))
        flood = None
        try:
            if LineReader(listener.stdout).readline(10) != "ready":
                raise RuntimeError("connrate server for the spoofed-syn case did not start")
            seen_before, _, _ = consumer.handled()
            cookies_before = self.cookies_sent(consumer)
            flood = spawn(client, ["timeout", str(self.seconds + 1), "hping3", "-S", "--rand-source", "--flood",
                                   "-c", str(FLOOD_PER_SECOND_BOUND * self.seconds), "-p", str(SYN_PORT), "-q",
                                   SERVER4], os.path.join(self.workdir, "hping3.log"), stdout=False)
            started = time.monotonic()
            time.sleep(0.5)
            cp = ns_run(client, [self.connrate, "client", SERVER4, str(SYN_PORT), str(self.seconds - 0.5), "4"],
                        timeout=self.seconds + 30)
            m = re.search(r"connections (\d+) failures (\d+) seconds ([0-9.]+)", cp.stdout)
            if not m:
                raise RuntimeError(f"connrate printed {cp.stdout!r}")
            flood.wait(timeout=self.seconds + 10)
            elapsed = time.monotonic() - started
            seen_after, _, _ = consumer.handled()
            cookies_after = self.cookies_sent(consumer)
        finally:
            if flood is not None:
                REGISTRY.kill_proc(flood)
            REGISTRY.kill_proc(listener, grace=1.0)
            offered = self.spoofed_counter(fw)
            at_server = self.spoofed_counter(server)
            ns_run(server, ["sysctl", "-qw", "net.ipv4.tcp_syncookies=1"])
            ns_run(server, ["sysctl", "-qw", f"net.core.somaxconn={somaxconn}"])
        self.record("spoofed-syn", variant, "spoofed kSYN/s offered", offered / elapsed / 1e3)
        self.record("spoofed-syn", variant, "spoofed SYN/s at server", at_server / elapsed)
        self.record("spoofed-syn", variant, "legit conn/s", int(m.group(1)) / float(m.group(3)))
        if seen_after is not None:
            self.record("spoofed-syn", variant, "kpps judged", (seen_after - seen_before) / elapsed / 1e3)
        # What each consumer did with the SYNs: forwarded them to the server, or (seqwall's
        # proxy) answered each with a cookie.
        handled = cookies_after - cookies_before if variant == self.synproxy_seqwall else at_server
        if variant != NFT_SYNPROXY:
            self.record("spoofed-syn", variant, "kSYN/s forwarded or answered", handled / elapsed / 1e3)
        consumer.elapsed = elapsed
        if int(m.group(2)):
            self.note("spoofed-syn", variant, f"{m.group(2)} failed legitimate connections")

    @staticmethod
    def cookies_sent(consumer):
        """seqwall's cookie SYN-ACKs so far (0 before the proxy has done anything, or for
        another consumer)."""
        if consumer.daemon is None:
            return 0
        return consumer.daemon.stats().get("synproxy", {}).get("cookies_sent", 0)

    def spoofed_counter(self, ns):
        """SYN_COUNTER_TABLE's count in ns, the table then removed."""
        out = ns_run(ns, ["nft", "-j", "list", "counters", "table", "inet", SYN_COUNTER_TABLE], check=False).stdout
        ns_run(ns, ["nft", "delete", "table", "inet", SYN_COUNTER_TABLE], check=False)
        try:
            return sum(c["counter"]["packets"] for c in json.loads(out)["nftables"] if "counter" in c)
        except (ValueError, KeyError):
            return 0

    def measure(self, case, variant, queues=1):
        try:
            self.measure_with(case, variant, queues)
        except Refused as e:
            self.note(case, variant, f"not measured: {e}")

    def measure_with(self, case, variant, queues):
        with Consumer(self, variant, queues) as consumer:
            if case == "spoofed-syn":
                self.spoofed_syns(consumer, variant)
            elif case == "proxied":
                self.record(case, variant, "bulk-1 Gbit/s", self.iperf(1) / 1e9)
                self.record(case, variant, "bulk-1 Gbit/s, unproxied port", self.iperf(1, port=PLAIN_IPERF_PORT) / 1e9)
                rate, failures = self.connections()
                self.record(case, variant, "conn/s", rate)
                if failures:
                    self.note(case, variant, f"{failures} failed connections")
            elif case in ("bulk-1", "bulk-4", "queues"):
                streams = 1 if case == "bulk-1" else 4
                metric = "Gbit/s" if case != "queues" else f"Gbit/s {queues}q"
                self.record(case, variant, metric, self.iperf(streams) / 1e9)
            elif case == "small-pps":
                before = self.lab.forwarded_to_server()
                started = time.monotonic()
                self.iperf(4, mss=88)
                elapsed = time.monotonic() - started
                self.record(case, variant, "kpps", (self.lab.forwarded_to_server() - before) / elapsed / 1e3)
            elif case == "latency":
                p50, p99 = self.sockperf()
                self.record(case, variant, "p50 us", p50)
                self.record(case, variant, "p99 us", p99)
            elif case == "conn-rate":
                rate, failures = self.connections()
                self.record(case, variant, "conn/s", rate)
                if failures:
                    self.note(case, variant, f"{failures} failed connections")
            seen, offered, cpu = consumer.handled()
        if variant == "C" or variant in self.c_variants:
            seen = consumer.judged
            if case == "spoofed-syn" and seen is not None:
                # accept_all counts only as it stops: nothing but the flood and connrate's
                # client passed it meanwhile.
                self.record(case, variant, "kpps judged", seen / consumer.elapsed / 1e3)
        if (variant == "C" or variant in self.c_variants or variant in self.seqwalls
                or variant == self.synproxy_seqwall) and offered:
            # With fail-open, packets that find the queue full pass unjudged: a consumer that
            # falls behind would look faster than it is. Show the share it really judged.
            label = case if case != "queues" else f"queues {queues}q"
            share = f"{100.0 * seen / offered:.1f}%" if seen is not None else "?"
            self.note(label, variant, f"judged {share} of {offered} queued packets")
            if cpu is not None:
                metric = "cpu us/packet" if case != "queues" else f"cpu us/packet {queues}q"
                self.record(case, variant, metric, cpu / 1e3 / offered)

    def run(self):
        cases = [c for c in CASES if c in self.args.cases]
        for round_number in range(self.args.rounds):
            # Alternate the order each round, so that a drift in the machine's load does not
            # always favour the same variant.
            order = list(self.variants) if round_number % 2 == 0 else list(reversed(self.variants))
            for case in cases:
                if case == "small-pps":
                    self.lab.set_offloads(False)
                try:
                    if case == "sync":
                        self.measure_sync(round_number)
                    elif case == "failover":
                        pass
                    elif case in ("spoofed-syn", "proxied"):
                        variants = self.synproxy_variants if case == "spoofed-syn" else \
                            [v for v in self.synproxy_variants if v != "C"]
                        for variant in (variants if round_number % 2 == 0 else list(reversed(variants))):
                            log(f"round {round_number + 1}: {case} {variant}")
                            self.measure(case, variant)
                    elif case == "queues":
                        for variant in [v for v in order if v == "C" or v in self.c_variants or v in self.seqwalls]:
                            for queues in (1, 2):
                                log(f"round {round_number + 1}: {case} {variant} {queues}q")
                                self.measure(case, variant, queues)
                    else:
                        for variant in order:
                            log(f"round {round_number + 1}: {case} {variant}")
                            self.measure(case, variant)
                finally:
                    if case == "small-pps":
                        self.lab.set_offloads(True)
        if "failover" in cases:
            self.measure_failover()

    def measure_sync(self, round_number):
        """The first seqwall with sync off and on, in alternating order (BENCHMARKS.md, State
        sync end to end)."""
        if self.sync_peer is None:
            self.sync_peer = bench_sync.SyncPeer(self.lab, self.workdir, self.rules)
        # Every seqwall binary (--seqwall), each with sync off and on, the order of the binaries
        # and of off/on alternating by round: an A/B of the sync's cost in the same rounds.
        variants = list(self.seqwalls)
        if round_number % 2:
            variants.reverse()
        modes = ("sync off", "sync on") if round_number % 2 == 0 else ("sync on", "sync off")
        for variant, mode in [(v, m) for v in variants for m in modes]:
            self.measure_sync_mode(round_number, variant, mode)

    def sync_label(self, variant, mode):
        """The results' variant for one binary's sync mode: the mode alone with one binary."""
        return mode if len(self.seqwalls) == 1 else f"{variant}: {mode}"

    def measure_sync_mode(self, round_number, variant, mode):
        """One binary with sync off or on: throughput, connections per second, CPU per
        connection by thread, and the sync's bytes."""
        label = self.sync_label(variant, mode)
        log(f"round {round_number + 1}: sync {variant} {mode}")
        on = mode == "sync on"
        if on:
            # A backup that kept its table would hand every earlier run's connections (those in
            # TIME_WAIT last two minutes) to this master in its bulk: the master's table, and
            # with it the sweep's work every 2 s, would then grow round by round. A fresh backup
            # leaves the master this run's connections only.
            # The backup runs the binary measured as the master: an A/B of a change to the
            # receiving side would otherwise give each master the backup of whichever binary
            # ran before it.
            self.sync_peer.daemon.stop()
            self.sync_peer.daemon.binary = self.seqwalls[variant][0]
            self.sync_peer.daemon.start(ready_timeout=20)
        with Consumer(self, variant, options=self.sync_peer.master_options if on else ()) as consumer:
            master = consumer.daemon
            if on and not lab.wait_for(lambda: bench_sync.in_sync(master), 60, 0.2):
                raise RuntimeError(f"the master never got in sync: {bench_sync.sync_status(master)}")
            # The backup asks the new master for a bulk of its table too: measured before the
            # backup has it all, the master would be sending it meanwhile, a cost that is not
            # the one measured here.
            if on and not lab.wait_for(lambda: bench_sync.in_sync(self.sync_peer.daemon)
                                       and bench_sync.sync_status(master).get("bulk_remaining", 0) == 0, 60, 0.2):
                raise RuntimeError(f"the backup never got in sync: {bench_sync.sync_status(self.sync_peer.daemon)}")
            sent = lambda: bench_sync.sync_status(master)["bytes_sent"] if on else 0
            before, started = sent(), time.monotonic()
            self.record("sync", label, "Gbit/s", self.iperf(1, seconds=self.args.sync_seconds) / 1e9)
            busy = (sent() - before) / (time.monotonic() - started)
            before = sent()
            cpu = (cpu_nanoseconds(master.proc.pid), cpu_nanoseconds(self.sync_peer.daemon.proc.pid))
            threads = thread_cpu_nanoseconds(master.proc.pid)
            backup_pid = self.sync_peer.daemon.proc.pid
            backup_threads, backup_wakeups = thread_cpu_nanoseconds(backup_pid), thread_wakeups(backup_pid)
            machine = machine_cpu_nanoseconds()
            rate, failures, count = self.connections(with_count=True, seconds=self.args.sync_seconds)
            machine = [after - before for after, before in zip(machine_cpu_nanoseconds(), machine)]
            self.record("sync", label, "conn/s", rate)
            # The whole machine: master, backup, client, server and the kernel's work that no
            # process is charged for; with idle time left, connections a second are bounded by
            # latency, not by CPU.
            self.record("sync", label, "machine busy cpu us/connection", machine[0] / 1e3 / count)
            self.record("sync", label, "machine idle %", 100 * machine[1] / (machine[0] + machine[1]))
            # Where a connection's sync costs CPU: the master (events, the sync thread) and
            # the backup applying it, which shares this machine's CPUs with the benchmark.
            self.record("sync", label, "master cpu us/connection",
                        (cpu_nanoseconds(master.proc.pid) - cpu[0]) / 1e3 / count)
            after = thread_cpu_nanoseconds(master.proc.pid)
            spent = {name: after[name] - threads.get(name, 0) for name in after}
            self.record("sync", label, "master workers cpu us/connection",
                        sum(v for k, v in spent.items() if k.startswith("seqwall-q")) / 1e3 / count)
            if on:
                self.record("sync", label, "master sync thread cpu us/connection",
                            spent.get("seqwall-sync", 0) / 1e3 / count)
            self.record("sync", label, "backup cpu us/connection",
                        (cpu_nanoseconds(self.sync_peer.daemon.proc.pid) - cpu[1]) / 1e3 / count)
            # The backup by thread: its sync thread (receiving, opening, decoding) and its
            # workers (applying), and how often each was woken, per 100 connections.
            after, woken = thread_cpu_nanoseconds(backup_pid), thread_wakeups(backup_pid)
            for thread, prefix in (("sync thread", "seqwall-sync"), ("workers", "seqwall-q")):
                used = sum(v - backup_threads.get(k, 0) for k, v in after.items() if k.startswith(prefix))
                wakes = sum(v - backup_wakeups.get(k, 0) for k, v in woken.items() if k.startswith(prefix))
                self.record("sync", label, f"backup {thread} cpu us/connection", used / 1e3 / count)
                self.record("sync", label, f"backup {thread} wakeups/100 connections", 100 * wakes / count)
            if failures:
                self.note("sync", label, f"{failures} failed connections")
            if on:
                # Coalesced records go within 50 ms, the last closes' as well.
                time.sleep(0.5)
                per_connection = (sent() - before) / count
                before, started = sent(), time.monotonic()
                time.sleep(2)
                idle = (sent() - before) / (time.monotonic() - started)
                self.record("sync", label, "sync B/s busy", busy)
                self.record("sync", label, "sync B/s idle", idle)
                self.record("sync", label, "sync B/connection", per_connection)

    def measure_failover(self):
        gap = bench_sync.FailoverGap(bench_sync.failover_workdir())
        try:
            for run_number in range(self.args.failovers):
                log(f"failover {run_number + 1}")
                first, connection, moved = gap.measure()
                for metric, value in (("first forwarded s", first), ("connection resumed s", connection),
                                      ("VIP moved s", moved)):
                    if value is not None:
                        self.record("failover", "seqwall", metric, value)
        finally:
            gap.destroy()

    # -- report --

    def value(self, case, variant, metric):
        values = self.results.get((case, variant, metric))
        return statistics.median(values) if values else None

    def report(self):
        for name in self.seqwalls:
            if len(self.seqwalls) > 1:
                print(f"seqwall = {name} ({' '.join([self.seqwalls[name][0]] + self.seqwalls[name][1])})")
            self.report_against_c(name)
        if len(self.seqwalls) > 1:
            for name in list(self.seqwalls)[1:]:
                self.report_ab(list(self.seqwalls)[0], name)
        for name in self.c_variants:
            self.report_ab("C", name)
        self.report_sync()
        if any(case in self.args.cases for case in ("spoofed-syn", "proxied")):
            self.report_synproxy()
        sys.stdout.flush()
        if self.args.json:
            with open(self.args.json, "w") as f:
                json.dump({"|".join(k): v for k, v in self.results.items()}, f, indent=1)

    def report_sync(self):
        """Sync on against off, paired within each round (target: on/off >= 0.95), the sync's
        bytes, and the failover gaps; per seqwall binary."""
        for name in self.seqwalls:
            self.report_sync_of(name)

    def report_sync_of(self, name):
        def values(variant, metric):
            if variant == "failover":
                return self.results.get(("failover", "seqwall", metric), []) if name == next(iter(self.seqwalls)) else []
            return self.results.get(("sync", self.sync_label(name, variant), metric), [])
        rows = []
        for metric in ("Gbit/s", "conn/s"):
            off, on = values("sync off", metric), values("sync on", metric)
            if off and on:
                ratios = [b / a for a, b in zip(off, on) if a]
                rows.append(f"{metric:<22} off {statistics.median(off):10.2f}  on {statistics.median(on):10.2f}"
                            f"  on/off {statistics.median(ratios):.3f} (rounds: {', '.join(f'{r:.3f}' for r in ratios)})"
                            f"  {'met' if statistics.median(ratios) >= 0.95 else 'NOT met'} (>= 0.95)")
        for metric in ("master cpu us/connection", "master workers cpu us/connection", "backup cpu us/connection",
                       "machine busy cpu us/connection", "machine idle %"):
            off, on = values("sync off", metric), values("sync on", metric)
            if off and on:
                ratios = [b / a for a, b in zip(off, on) if a]
                rows.append(f"{metric:<32} off {statistics.median(off):6.1f}  on {statistics.median(on):6.1f}"
                            f"  on/off {statistics.median(ratios):.3f} (rounds: {', '.join(f'{r:.2f}' for r in ratios)})")
        found = values("sync on", "master sync thread cpu us/connection")
        if found:
            rows.append(f"{'master sync thread cpu us/connection':<32} on {statistics.median(found):6.1f}"
                        f"  (rounds: {', '.join(f'{v:.1f}' for v in found)})")
        for metric in ("backup sync thread cpu us/connection", "backup workers cpu us/connection",
                       "backup sync thread wakeups/100 connections", "backup workers wakeups/100 connections"):
            off, on = values("sync off", metric), values("sync on", metric)
            if off and on:
                rows.append(f"{metric:<32} off {statistics.median(off):6.1f}  on {statistics.median(on):6.1f}"
                            f"  (rounds on: {', '.join(f'{v:.1f}' for v in on)})")
        for metric in ("sync B/s busy", "sync B/s idle", "sync B/connection"):
            found = values("sync on", metric)
            if found:
                rows.append(f"{metric:<22} {statistics.median(found):10.1f}  (rounds: {', '.join(f'{v:.1f}' for v in found)})")
        for metric in ("first forwarded s", "connection resumed s", "VIP moved s"):
            found = values("failover", metric)
            if found:
                rows.append(f"failover {metric:<22} median {statistics.median(found):.3f}  "
                            f"(runs: {', '.join(f'{v:.3f}' for v in found)})")
        if rows:
            print(f"\nState sync end to end ({self.args.sync_seconds} s a stream and a connection rate; sync bytes: "
                  "UDP payload the master's sync socket sent)"
                  + (f", seqwall = {name}" if len(self.seqwalls) > 1 else ""))
            for row in rows:
                print("  " + row)
        for key, texts in self.notes.items():
            if key[0] == "sync" and key[1].startswith(self.sync_label(name, "")):
                print(f"  note {key[1]}: {'; '.join(texts)}")

    def report_ab(self, old, new):
        """One variant against another (two seqwall binaries, or two C consumers), per round
        (same round, minutes apart at most): new/old for rates, and for latency the added
        latency over no queue."""

        def median(values):
            return f"{statistics.median(values):.2f}" if values else "-"

        print(f"A/B: {new} / {old}, per round (rates: higher is better; added latency and CPU per packet: "
              f"lower is better)")
        keys = sorted({(case, metric) for (case, variant, metric) in self.results if variant == new})
        for case, metric in keys:
            a, b = self.results.get((case, old, metric), []), self.results.get((case, new, metric), [])
            if case == "latency" and metric.endswith(" us"):
                none = self.results.get((case, "none", metric), [])
                a = [x - n for x, n in zip(a, none)]
                b = [x - n for x, n in zip(b, none)]
                metric = f"added {metric}"
            ratios = [y / x for x, y in zip(a, b) if x > 0]
            print(f"  {case} {metric}: {old} {median(a)}, {new} {median(b)}, {new}/{old} median {median(ratios)} "
                  f"(per round " + ", ".join(f"{r:.2f}" for r in ratios) + ")")
        print()

    def report_synproxy(self):
        """The SYN proxy cases: one column per variant (medians over the rounds), and the
        ratios the issue's targets are about, per round."""
        variants = self.synproxy_variants
        sw, proxied = variants[3], variants[4]

        def fmt(x, digits):
            return "-" if x is None else f"{x:.{digits}f}"

        def ratios(case, metric, top, bottom):
            a, b = self.results.get((case, top, metric), []), self.results.get((case, bottom, metric), [])
            return [x / y for x, y in zip(a, b) if y]

        rows = []
        for case, metric, digits in (("spoofed-syn", "spoofed kSYN/s offered", 1),
                                     ("spoofed-syn", "kpps judged", 1),
                                     ("spoofed-syn", "kSYN/s forwarded or answered", 1),
                                     ("spoofed-syn", "spoofed SYN/s at server", 0),
                                     ("spoofed-syn", "legit conn/s", 0),
                                     ("proxied", "bulk-1 Gbit/s", 2), ("proxied", "bulk-1 Gbit/s, unproxied port", 2),
                                     ("proxied", "conn/s", 0)):
            if case not in self.args.cases:
                continue
            if metric in ("kpps judged", "kSYN/s forwarded or answered"):
                r, against = ratios(case, metric, proxied, "C"), f"{proxied}/C"
            elif case == "proxied":
                r, against = ratios(case, metric, proxied, sw), f"{proxied}/{sw}"
            else:
                r, against = [], ""
            rows.append([f"{case}: {metric}"] + [fmt(self.value(case, v, metric), digits) for v in variants]
                        + [against, ", ".join(f"{x:.2f}" for x in r) or "-"])
        header = ["case"] + list(variants) + ["ratio", "per round"]
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
        print("SYN proxy cases")
        print("| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |")
        print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for r in rows:
            print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |")
        notes = {k: v for k, v in self.notes.items() if k[0] in ("spoofed-syn", "proxied")}
        for (case, variant), texts in sorted(notes.items()):
            print(f"  {case} {variant}: " + "; ".join(texts))
        print()

    def report_against_c(self, sw):
        """One row per figure: the median of each variant over the rounds, and seqwall's ratio to
        C as the median of the per-round ratios (each round measures C and seqwall minutes
        apart at most, so a ratio within a round is the fairer comparison on a loaded machine)."""
        rows = []
        variants = BASE_VARIANTS + (sw,)

        def fmt(x, digits=2):
            return "-" if x is None else f"{x:.{digits}f}"

        def paired(a, b, combine):
            return [combine(x, y) for x, y in zip(a, b) if x is not None and y is not None and combine(x, y) is not None]

        def add_row(name, cells, ratios, target, met_if, digits):
            ratio = statistics.median(ratios) if ratios else None
            met = "-" if ratio is None or met_if is None else ("yes" if met_if(ratio) else "NO")
            rows.append([name] + [fmt(x, digits) for x in cells]
                        + [fmt(ratio), ", ".join(f"{r:.2f}" for r in ratios), target, met])

        def series(case, variant, metric):
            return self.results.get((case, variant, metric), [])

        for case, metric, target, digits in (("bulk-1", "Gbit/s", 0.95, 2), ("bulk-4", "Gbit/s", 0.95, 2),
                                             ("small-pps", "kpps", 0.9, 1), ("conn-rate", "conn/s", 0.95, 0)):
            if (case, "C", metric) in self.results:
                ratios = paired(series(case, sw, metric), series(case, "C", metric),
                                lambda s, c: s / c if c else None)
                add_row(f"{case} ({metric})", [self.value(case, v, metric) for v in variants], ratios,
                        f">= {target}", lambda r, t=target: r >= t, digits)
        for metric in ("p50 us", "p99 us"):
            if ("latency", "C", metric) in self.results:
                none, c, s = (series("latency", v, metric) for v in ("none", "C", sw))
                # Latency each adds over no queue, in the same round.
                added_c = paired(c, none, lambda x, base: x - base)
                added_s = paired(s, none, lambda x, base: x - base)
                ratios = paired(added_s, added_c, lambda s, c: s / c if c > 0 else None)
                add_row(f"latency {metric} (added: seqwall/C)", [self.value("latency", v, metric) for v in variants],
                        ratios, "<= 1.2", lambda r: r <= 1.2, 1)
        for case in CASES:
            if (case, "C", "cpu us/packet") in self.results:
                ratios = paired(series(case, sw, "cpu us/packet"), series(case, "C", "cpu us/packet"),
                                lambda s, c: s / c if c else None)
                add_row(f"{case}: consumer CPU (us/packet)",
                        [None, None, self.value(case, "C", "cpu us/packet"), self.value(case, sw, "cpu us/packet")],
                        ratios, "", None, 2)
        if ("queues", "C", "Gbit/s 1q") in self.results:
            for queues in (1, 2):
                metric = f"Gbit/s {queues}q"
                ratios = paired(series("queues", sw, metric), series("queues", "C", metric),
                                lambda s, c: s / c if c else None)
                add_row(f"queues: {queues}q, 4 streams (Gbit/s)",
                        [None, None, self.value("queues", "C", metric), self.value("queues", sw, metric)],
                        ratios, "", None, 2)
            scaling = {v: paired(series("queues", v, "Gbit/s 2q"), series("queues", v, "Gbit/s 1q"),
                                 lambda two, one: two / one if one else None) for v in ("C", sw)}
            add_row("queues: 2q / 1q (C's, seqwall's)",
                    [None, None] + [statistics.median(scaling[v]) if scaling[v] else None for v in ("C", sw)],
                    scaling[sw], "seqwall >= 1.6", lambda r: r >= 1.6, 2)
            rows[-1][5] = "-"   # no seqwall/C ratio here: the seqwall column is the scaling itself
        header = ["case", "none", "conntrack", "C", "seqwall", "seqwall/C", "per round", "target", "met"]
        widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
        lines = ["| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths)) + " |",
                 "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
        print("\n".join(lines))
        print()
        print(f"{self.args.rounds} round(s) of {self.seconds} s per case. Variant columns: medians over the "
              f"rounds; seqwall/C: median of the per-round ratios (per round: each round's).")
        bypassed = {k: v for k, v in self.notes.items() if k[1] in variants and any("judged 100.0%" not in t for t in v)}
        if bypassed:
            print("Notes (fail-open lets packets pass unjudged when a queue is full):")
            for (case, variant), texts in sorted(bypassed.items()):
                print(f"  {case} {variant}: " + "; ".join(texts))
        else:
            print("Every queued packet was judged by its consumer (fail-open never let one pass unjudged).")
        print()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sync-seconds", type=int, default=10,
                        help="the sync case's stream and connection rate, each (default 10: with 3 s a "
                             "connection rate is measured before the client reuses ports in TIME_WAIT)")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--json")
    parser.add_argument("--failovers", type=int, default=3,
                        help="failover measurements (case failover), each with its failback")
    parser.add_argument("--seqwall", action="append", default=[], metavar="NAME=PATH",
                        help="a seqwall binary (and `seqwall run` options after it, space-separated) to measure "
                             "as variant NAME (repeatable; default seqwall=$SEQWALL_BIN)")
    parser.add_argument("--c-variant", action="append", default=[], metavar="NAME=OPTIONS",
                        help="accept_all with these options (space-separated) as one more variant, "
                             "e.g. 'Cmmsg=--recvmmsg' (repeatable)")
    parser.add_argument("--profile", metavar="CMD",
                        help="profiler attached to each consumer, {pid} replaced, e.g. 'strace -c -f -p {pid}'")
    args = parser.parse_args()
    args.cases = args.cases.split(",")
    problem = lab.environment_problem()
    if problem:
        sys.exit(f"bench-e2e: {problem}")
    for tool in ("iperf3", "sockperf", "ethtool", "cc", "pkg-config", "nft") + \
            (("hping3",) if "spoofed-syn" in args.cases else ()):
        if shutil.which(tool) is None:
            sys.exit(f"bench-e2e: {tool} not found (make bench-e2e installs it)")
    seqwalls = []
    for spec in args.seqwall or [f"seqwall={os.environ['SEQWALL_BIN']}"]:
        name, _, rest = spec.partition("=")
        path, *options = rest.split() or [""]
        if not name or not path or name in BASE_VARIANTS or name in dict(seqwalls):
            sys.exit(f"bench-e2e: --seqwall wants NAME=PATH [OPTION...] with a new name, not {spec!r}")
        if not os.path.exists(path):
            sys.exit(f"bench-e2e: no seqwall binary at {path} (swift build -c release)")
        seqwalls.append((name, (os.path.abspath(path), options)))
    args.seqwall = seqwalls
    c_variants = []
    for spec in args.c_variant:
        name, _, options = spec.partition("=")
        if not name or name in BASE_VARIANTS or name in dict(seqwalls) or name in dict(c_variants):
            sys.exit(f"bench-e2e: --c-variant wants NAME=OPTIONS with a new name, not {spec!r}")
        c_variants.append((name, options.split()))
    args.c_variant = c_variants
    lab.SEQWALL_BIN = seqwalls[0][1][0]
    REGISTRY.install()
    started = time.monotonic()
    try:
        bench = Bench(args)
        bench.run()
        bench.report()
    finally:
        REGISTRY.cleanup_all()
    log(f"done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
