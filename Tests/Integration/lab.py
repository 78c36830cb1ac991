"""seqwall integration-test lab: network namespaces, the daemon, traffic helpers.

Used by Tests/Integration/test_*.py and scripts/demo.py. Standard library only, except the
`craft` agent, which imports scapy (Debian's python3-scapy, for /usr/bin/python3).

Topologies (every name unique per run, every address from the documentation ranges, nothing
outside the lab's own namespaces is touched):

  gateway:  client 198.51.100.10, 2001:db8:1::10
              -- veth -- fw 198.51.100.1, 2001:db8:1::1 | 203.0.113.1, 2001:db8:2::1
              -- veth -- server 203.0.113.10, 2001:db8:2::10
            seqwall runs in fw; rules/gateway.iptables queues FORWARD.
  host:     client 198.51.100.10, 2001:db8:1::10 -- veth -- server 198.51.100.20, 2001:db8:1::20
            seqwall runs in server; rules/host.iptables queues INPUT/OUTPUT.

The same file is also the agent program that runs inside namespaces:

  /usr/bin/python3 lab.py serve --ports 8080,8081 --log FILE   echo server (all ports, v4+v6)
  /usr/bin/python3 lab.py probe --log FILE                     raw-socket TCP arrival log
  /usr/bin/python3 lab.py client ADDR PORT                     interactive TCP client
  /usr/bin/python3 lab.py brief ADDR PORT                      one connection, used and closed at once
  /usr/bin/python3 lab.py craft JSON                           scapy hand-made segments
  /usr/bin/python3 lab.py ping ADDR                            one ICMP(v6) echo, exit 0 if answered

Environment:
  SEQWALL_BIN            the seqwall binary (default: <repo>/.build/debug/seqwall)
  SEQWALL_IPTABLES_DIR   where gateway.iptables/host.iptables come from (default: <repo>/rules)
  SEQWALL_LAB_KEEP_LOGS  set to keep the lab's temporary directory (daemon log etc.)
"""

import atexit
import ipaddress
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
LAB_FILE = os.path.abspath(__file__)
PY = "/usr/bin/python3"
RULES_DIR = os.path.join(HERE, "rules")
SEQWALL_BIN = os.environ.get("SEQWALL_BIN") or os.path.join(REPO, ".build", "debug", "seqwall")
IPTABLES_DIR = os.environ.get("SEQWALL_IPTABLES_DIR") or os.path.join(REPO, "rules")

AGENT_LIFETIME = 1800  # seconds; every agent exits by itself after this, even if orphaned
CMD_TIMEOUT = 15       # default timeout for any subprocess call

# TCP flag bits
FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20


# ---------------------------------------------------------------------------------------------
# Registry of everything the lab made, torn down at exit and on SIGTERM/SIGINT.
# ---------------------------------------------------------------------------------------------

class _Registry:
    def __init__(self):
        self.lock = threading.RLock()
        self.namespaces = []   # names, in creation order
        self.procs = []        # Popen objects we started
        self.tmpdirs = []
        self.installed = False
        self.counter = 0

    def install(self):
        with self.lock:
            if self.installed:
                return
            self.installed = True
            atexit.register(self.cleanup_all)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                try:
                    signal.signal(sig, self._on_signal)
                except (ValueError, OSError):  # not the main thread
                    pass

    def _on_signal(self, signum, frame):
        sys.stderr.write(f"\nlab: signal {signum}: cleaning up\n")
        self.cleanup_all()
        os._exit(128 + signum)

    def unique(self, role):
        with self.lock:
            self.counter += 1
            return f"sw{os.getpid()}x{self.counter}{role}"

    def add_ns(self, name):
        with self.lock:
            self.namespaces.append(name)

    def add_proc(self, proc):
        with self.lock:
            self.procs.append(proc)

    def add_tmp(self, path):
        with self.lock:
            self.tmpdirs.append(path)

    def kill_proc(self, proc, grace=3.0):
        """Stop one process we started (and its process group, which we created for it)."""
        if proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 3.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                except PermissionError:
                    try:
                        proc.send_signal(sig)
                    except ProcessLookupError:
                        break
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
        with self.lock:
            if proc in self.procs:
                self.procs.remove(proc)

    def del_ns(self, name):
        # Any process still inside one of our namespaces was started by us; end it by pid.
        try:
            out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                                 timeout=5).stdout
            for tok in out.split():
                try:
                    os.kill(int(tok), signal.SIGKILL)
                except (ValueError, ProcessLookupError):
                    pass
        except (subprocess.TimeoutExpired, OSError):
            pass
        try:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        except (subprocess.TimeoutExpired, OSError):
            pass
        with self.lock:
            if name in self.namespaces:
                self.namespaces.remove(name)

    def cleanup_all(self):
        with self.lock:
            procs = list(self.procs)
            namespaces = list(reversed(self.namespaces))
            tmpdirs = list(self.tmpdirs)
            self.tmpdirs.clear()
        for p in procs:
            try:
                self.kill_proc(p, grace=2.0)
            except Exception:
                pass
        for ns in namespaces:
            self.del_ns(ns)
        if not os.environ.get("SEQWALL_LAB_KEEP_LOGS"):
            for d in tmpdirs:
                shutil.rmtree(d, ignore_errors=True)


REGISTRY = _Registry()


def rules_dir(prefix):
    """A temporary directory for a test class's rule files, removed with the labs' files."""
    REGISTRY.install()
    path = tempfile.mkdtemp(prefix=prefix)
    REGISTRY.add_tmp(path)
    return path


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

def run(cmd, timeout=CMD_TIMEOUT, check=True, input=None):
    """Run a command with a timeout; return CompletedProcess (text). Raise on failure if check."""
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"timed out after {timeout}s: {' '.join(cmd)}") from e
    if check and cp.returncode != 0:
        raise RuntimeError(f"command failed (exit {cp.returncode}): {' '.join(cmd)}\n"
                           f"stdout: {cp.stdout.strip()}\nstderr: {cp.stderr.strip()}")
    return cp


def ns_run(ns, cmd, **kw):
    return run(["ip", "netns", "exec", ns] + list(cmd), **kw)


def allow_spoofed_sources(ns, ifname):
    """Turns reverse-path filtering off in ns (all, default and ifname), so that packets with
    spoofed or inside source addresses arriving on ifname reach the FORWARD hook."""
    for conf in ("all", "default", ifname):
        ns_run(ns, ["sysctl", "-qw", f"net.ipv4.conf.{conf}.rp_filter=0"])


def proc_net_counter(ns, path, group, name):
    """A counter of a /proc/net table in the header-line/value-line layout of /proc/net/snmp
    and /proc/net/netstat (e.g. Tcp PassiveOpens, IpExt InNoRoutes), in namespace ns."""
    lines = ns_run(ns, ["cat", path]).stdout.splitlines()
    for header, values in zip(lines[::2], lines[1::2]):
        keys, vals = header.split(), values.split()
        if keys and keys[0] == group + ":":
            return int(dict(zip(keys[1:], vals[1:]))[name])
    raise AssertionError(f"no {group} {name} in {path}")


def nft_synproxy_rules(table, ports):
    """The kernel's SYN proxy for a gateway, as nft documents it (nft(8), SYNPROXY), on TCP
    ports `ports`: their SYNs skip conntrack (notrack in raw prerouting), so they reach
    forward untracked and the synproxy statement answers them with a cookie; the client's ACK
    is then invalid to conntrack (the namespace must run with nf_conntrack_tcp_loose=0, or
    conntrack would pick the connection up from it) and the statement checks its cookie and
    opens the connection to the server. MSS 1460 for IPv4 and 1440 for IPv6 (a 1500-byte
    link), window scale 7."""
    p = ", ".join(str(port) for port in ports)
    return f"""
table inet {table} {{
    chain prerouting {{
        type filter hook prerouting priority raw; policy accept;
        tcp dport {{ {p} }} tcp flags syn notrack
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        meta nfproto ipv4 tcp dport {{ {p} }} ct state invalid,untracked synproxy mss 1460 wscale 7 timestamp sack-perm
        meta nfproto ipv6 tcp dport {{ {p} }} ct state invalid,untracked synproxy mss 1440 wscale 7 timestamp sack-perm
        ct state invalid drop
    }}
}}
"""


def with_synproxy_queue(iptables_text, ports, queue):
    """An iptables-restore diversion (gateway.iptables' layout) that sends TCP to or from
    `ports` (the `synproxy` rules' ports: both directions of their connections) to `queue`
    ahead of the general NFQUEUE rule, for `seqwall run --synproxy-queue QUEUE`
    (docs/synproxy.md, Whole packets: the copy range)."""
    p = ",".join(str(port) for port in ports)
    general = "-A SEQWALL -j NFQUEUE"
    if general not in iptables_text:
        raise ValueError(f"no '{general}' rule to put the synproxy queue's rules ahead of")
    ahead = "".join(f"-A SEQWALL -p tcp -m multiport --{way} {p} -j NFQUEUE --queue-num {queue} --queue-bypass\n"
                    for way in ("dports", "sports"))
    return iptables_text.replace(general, ahead + general, 1)


def nfqueue_copy_ranges(ns):
    """{queue: copy range} of the queues bound in namespace ns, from
    /proc/net/netfilter/nfnetlink_queue (queue number, port id, queued, copy mode, copy range,
    ...: instance_seq_show)."""
    out = ns_run(ns, ["cat", "/proc/net/netfilter/nfnetlink_queue"]).stdout
    return {int(f[0]): int(f[4]) for f in (line.split() for line in out.splitlines()) if len(f) >= 5}


def addr_eq(a, b):
    try:
        return ipaddress.ip_address(str(a)) == ipaddress.ip_address(str(b))
    except ValueError:
        return False


def environment_problem():
    """Return a reason the lab cannot run on this machine, or None."""
    if os.geteuid() != 0:
        return "integration lab needs root (network namespaces, iptables)"
    for tool in ("ip", "iptables-restore", "ip6tables-restore"):
        if shutil.which(tool) is None:
            return f"{tool} not found"
    if not os.path.exists(PY):
        return f"{PY} not found"
    name = f"sw{os.getpid()}probe"
    try:
        cp = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True,
                            timeout=10)
    except (subprocess.TimeoutExpired, OSError) as e:
        return f"cannot create a network namespace: {e}"
    if cp.returncode != 0:
        return f"cannot create a network namespace: {cp.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    return None


def scapy_problem():
    try:
        cp = subprocess.run([PY, "-c", "import scapy.all"], capture_output=True, text=True,
                            timeout=60)
    except subprocess.TimeoutExpired:
        return "importing scapy timed out"
    if cp.returncode != 0:
        return f"scapy not importable by {PY}: {cp.stderr.strip()[-300:]}"
    return None


def wait_for(pred, timeout, interval=0.1):
    """Poll pred() until it returns a truthy value or timeout; return the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def dual_stack_sockets(kind, port, backlog=64):
    """Sockets of `kind` bound to `port` on every IPv4 and every IPv6 address (listening,
    with `backlog`, when they are stream sockets)."""
    socks = []
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(fam, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((addr, port))
        if kind == socket.SOCK_STREAM:
            s.listen(backlog)
        socks.append(s)
    return socks


class LineReader:
    """Read lines from a pipe with a timeout (no blocking forever)."""

    def __init__(self, stream):
        self.fd = stream.fileno()
        self.buf = b""

    def readline(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line.decode(errors="replace")
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace")


def spawn(ns, argv, log_path, stdin=False, stdout=True):
    """Start a long-running process in namespace ns (own process group), stderr to log_path."""
    REGISTRY.install()
    errf = open(log_path, "ab")
    try:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns] + list(argv),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdout else errf,
            stderr=errf,
            start_new_session=True,
        )
    finally:
        errf.close()
    REGISTRY.add_proc(proc)
    return proc


# ---------------------------------------------------------------------------------------------
# The daemon
# ---------------------------------------------------------------------------------------------

class Daemon:
    """seqwall run inside a namespace, plus its CLI."""

    def __init__(self, ns, rules, control, log_path, queues=(0,), extra=(), prefix=(), binary=None):
        """prefix: a command that runs seqwall, such as setpriv with fewer capabilities (and,
        when it is a chroot, the CLI too: then binary is seqwall's path inside it)."""
        self.ns = ns
        self.binary = binary
        self.rules = rules
        self.control = control
        self.log_path = log_path
        self.queues = list(queues)
        self.extra = list(extra)
        self.prefix = list(prefix)
        self.proc = None

    # -- lifecycle --

    def start(self, ready_timeout=10.0):
        if self.binary is None and not os.path.exists(SEQWALL_BIN):
            raise RuntimeError(f"seqwall binary not found at {SEQWALL_BIN} (build it, or set "
                               f"SEQWALL_BIN)")
        argv = self.prefix + [self.binary or SEQWALL_BIN, "run", "--rules", self.rules]
        for q in self.queues:
            argv += ["--queue", str(q)]
        argv += ["--control", self.control] + self.extra
        with open(self.log_path, "ab") as f:
            f.write(f"\n--- lab: starting {' '.join(argv)} in {self.ns} ---\n".encode())
        self.proc = spawn(self.ns, argv, self.log_path, stdout=False)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"seqwall run exited with {self.proc.returncode} before it "
                                   f"was ready; log:\n{self.log_tail()}")
            cp = self.cli(["stats"], check=False, timeout=5)
            if cp.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"seqwall not ready after {ready_timeout}s "
                           f"(`seqwall stats` kept failing); log:\n{self.log_tail()}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Send sig, wait for exit; return the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is not None:
            REGISTRY.kill_proc(proc)
            return proc.returncode
        proc.send_signal(sig)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
        REGISTRY.kill_proc(proc)
        return rc

    # -- CLI --

    def cli(self, args, check=True, timeout=10):
        argv = [SEQWALL_BIN] if self.binary is None else self.prefix + [self.binary]
        return ns_run(self.ns, argv + list(args) + ["--control", self.control],
                      check=check, timeout=timeout)

    def stats(self):
        cp = self.cli(["stats", "-o", "json"])
        try:
            return json.loads(cp.stdout)
        except ValueError as e:
            raise AssertionError(f"`seqwall stats -o json` printed no JSON: {cp.stdout!r}") from e

    def conntrack(self):
        cp = self.cli(["conntrack", "list", "-o", "json"])
        try:
            data = json.loads(cp.stdout)
        except ValueError as e:
            raise AssertionError(f"`seqwall conntrack list -o json` printed no JSON: "
                                 f"{cp.stdout!r}") from e
        if not isinstance(data, list):
            raise AssertionError(f"conntrack list -o json is not an array: {cp.stdout!r}")
        return data

    def bound_queues(self):
        """Queue numbers bound in the daemon's namespace (/proc/net/netfilter/nfnetlink_queue)."""
        cp = ns_run(self.ns, ["cat", "/proc/net/netfilter/nfnetlink_queue"], check=False)
        if cp.returncode != 0:
            return set()
        return {int(line.split()[0]) for line in cp.stdout.splitlines() if line.split()}

    # -- logs --

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log_text(self, since=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=60):
        return "\n".join(self.log_text().splitlines()[-lines:])


def drops(stats, reason):
    d = stats.get("drops", {})
    if reason not in d:
        raise AssertionError(f"stats has no drop reason {reason!r}: {sorted(d)}")
    return d[reason]


# ---------------------------------------------------------------------------------------------
# Agents started in namespaces (their parent-side handles)
# ---------------------------------------------------------------------------------------------

class Server:
    """Echo server agent: replies b'echo:' + each chunk; logs every accept."""

    def __init__(self, ns, ports, workdir, name):
        self.ns = ns
        self.ports = list(ports)
        self.log = os.path.join(workdir, f"{name}.accepts")
        open(self.log, "w").close()
        self.proc = spawn(ns, [PY, LAB_FILE, "serve", "--ports", ",".join(map(str, ports)),
                               "--log", self.log], os.path.join(workdir, f"{name}.stderr"))
        line = LineReader(self.proc.stdout).readline(10)
        if line != "ready":
            raise RuntimeError(f"echo server in {ns} did not start: {line!r}")

    def accepts(self, port=None):
        out = []
        with open(self.log) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 4 and parts[0] == "accept":
                    rec = {"port": int(parts[1]), "peer": parts[2], "peer_port": int(parts[3])}
                    if port is None or rec["port"] == port:
                        out.append(rec)
        return out


class Probe:
    """Raw-socket agent in a namespace: logs every TCP segment the stack there delivers.

    A raw IPPROTO_TCP socket gets its copy after the LOCAL_IN netfilter hook, so in host mode
    too it shows only what got past the firewall, i.e. what really reached the server."""

    def __init__(self, ns, workdir, name):
        self.ns = ns
        self.log = os.path.join(workdir, f"{name}.segments")
        open(self.log, "w").close()
        self.proc = spawn(ns, [PY, LAB_FILE, "probe", "--log", self.log],
                          os.path.join(workdir, f"{name}.stderr"))
        line = LineReader(self.proc.stdout).readline(10)
        if line != "ready":
            raise RuntimeError(f"probe in {ns} did not start: {line!r}")

    def segments(self, dport=None, sports=None):
        out = []
        with open(self.log) as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if dport is not None and rec["dport"] != dport:
                    continue
                if sports is not None and rec["sport"] not in sports:
                    continue
                out.append(rec)
        return out


class Conn:
    """Interactive TCP client agent (one connection)."""

    def __init__(self, ns, addr, port, workdir, timeout=3.0):
        self.ns = ns
        self.proc = spawn(ns, [PY, LAB_FILE, "client", str(addr), str(port),
                               "--timeout", str(timeout)],
                          os.path.join(workdir, "client.stderr"), stdin=True)
        self.reader = LineReader(self.proc.stdout)
        msg = self._read(timeout + 5)
        self.connected = msg.get("event") == "connected"
        self.error = msg.get("error")
        self.sport = msg.get("sport")
        self.local = msg.get("local")
        if not self.connected:
            self._finish()

    def _read(self, timeout):
        line = self.reader.readline(timeout)
        if line is None:
            return {"event": "error", "error": "no answer from client agent"}
        try:
            return json.loads(line)
        except ValueError:
            return {"event": "error", "error": f"bad line from client agent: {line!r}"}

    def _cmd(self, line, timeout):
        try:
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return {"event": "error", "error": "client agent gone"}
        return self._read(timeout)

    def send(self, data, timeout=5.0):
        """Send bytes; return the echo reply (bytes) or raise AssertionError."""
        msg = self._cmd(f"send {data.hex()}", timeout + 2)
        if msg.get("event") != "reply":
            raise AssertionError(f"no reply over the connection: {msg}")
        return bytes.fromhex(msg["data"])

    def close(self, timeout=5.0):
        """Clean close: shutdown(WR), read to EOF, close. Return what was read meanwhile."""
        msg = self._cmd("close", timeout + 2)
        self._finish()
        if msg.get("event") != "closed":
            raise AssertionError(f"clean close failed: {msg}")
        return bytes.fromhex(msg["rest"])

    def _finish(self):
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            pass
        REGISTRY.kill_proc(self.proc)

    def abort(self):
        REGISTRY.kill_proc(self.proc, grace=1.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.abort()


def craft(ns, packets, timeout=60):
    """Send hand-made segments with scapy from namespace ns. packets: list of dicts with
    family (4|6), src (optional), dst, sport, dport, flags (scapy letters, '' for none),
    seq, ack. Returns the number sent."""
    cp = ns_run(ns, [PY, LAB_FILE, "craft", json.dumps(packets)], timeout=timeout)
    last = cp.stdout.strip().splitlines()[-1] if cp.stdout.strip() else ""
    if not last.startswith("sent "):
        raise RuntimeError(f"craft agent: {cp.stdout!r} {cp.stderr!r}")
    return int(last.split()[1])


# ---------------------------------------------------------------------------------------------
# The lab
# ---------------------------------------------------------------------------------------------

GATEWAY = "gateway"
HOST = "host"


class Lab:
    """A client/[fw]/server namespace lab with seqwall inline.

    server_ports: echo ports in the server namespace; client_ports: echo ports in the client
    namespace (for outbound connections)."""

    def __init__(self, mode, rules, server_ports=(8080, 8081), client_ports=(9000,),
                 queue=0, iptables=None, divert=True, daemon_extra=()):
        """divert=False: the lab loads no diversion (the test loads one its own way).
        daemon_extra: more `seqwall run` options."""
        assert mode in (GATEWAY, HOST)
        self.mode = mode
        self.rules = os.path.abspath(rules)
        self.server_ports = list(server_ports)
        self.client_ports = list(client_ports)
        self.queue = queue
        self.divert = divert
        self.daemon_extra = list(daemon_extra)
        self.iptables = iptables or os.path.join(
            IPTABLES_DIR, "gateway.iptables" if mode == GATEWAY else "host.iptables")
        self.ns = {}
        self.workdir = None
        self.daemon = None
        self.server = None
        self.client_listener = None
        self.probe = None
        self.client4 = "198.51.100.10"
        self.client6 = "2001:db8:1::10"
        if mode == GATEWAY:
            self.server4, self.server6 = "203.0.113.10", "2001:db8:2::10"
        else:
            self.server4, self.server6 = "198.51.100.20", "2001:db8:1::20"

    # -- addresses --

    def client_addr(self, family):
        return self.client4 if family == 4 else self.client6

    def server_addr(self, family):
        return self.server4 if family == 4 else self.server6

    @property
    def fw_ns(self):
        """The namespace seqwall runs in."""
        return self.ns["fw"] if self.mode == GATEWAY else self.ns["server"]

    # -- build / destroy --

    def _new_ns(self, role):
        name = REGISTRY.unique(role[0])
        run(["ip", "netns", "add", name])
        REGISTRY.add_ns(name)
        self.ns[role] = name
        # No DAD, so IPv6 addresses work at once; lo up.
        for key in ("all", "default"):
            ns_run(name, ["sysctl", "-qw", f"net.ipv6.conf.{key}.accept_dad=0"])
            ns_run(name, ["sysctl", "-qw", f"net.ipv6.conf.{key}.dad_transmits=0"])
            ns_run(name, ["sysctl", "-qw", f"net.ipv6.conf.{key}.accept_ra=0"])
        ns_run(name, ["ip", "link", "set", "lo", "up"])
        return name

    def _veth(self, ns_a, if_a, ns_b, if_b):
        # Created inside ns_a with its peer placed straight into ns_b: never in the root ns.
        run(["ip", "-n", ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b,
             "netns", ns_b])
        run(["ip", "-n", ns_a, "link", "set", if_a, "up"])
        run(["ip", "-n", ns_b, "link", "set", if_b, "up"])

    def _addr(self, ns, ifname, cidr):
        fam = ["-6"] if ":" in cidr else []
        extra = ["nodad"] if ":" in cidr else []
        run(["ip", "-n", ns] + fam + ["addr", "add", cidr, "dev", ifname] + extra)

    def build(self):
        REGISTRY.install()
        self.workdir = tempfile.mkdtemp(prefix="seqwall-lab-")
        REGISTRY.add_tmp(self.workdir)
        try:
            self._build()
        except BaseException:
            self.destroy()
            raise
        return self

    def _build(self):
        c = self._new_ns("client")
        if self.mode == GATEWAY:
            f = self._new_ns("fw")
            s = self._new_ns("server")
            self._veth(c, "eth0", f, "out0")
            self._veth(f, "in0", s, "eth0")
            self._addr(c, "eth0", "198.51.100.10/24")
            self._addr(c, "eth0", "2001:db8:1::10/64")
            self._addr(f, "out0", "198.51.100.1/24")
            self._addr(f, "out0", "2001:db8:1::1/64")
            self._addr(f, "in0", "203.0.113.1/24")
            self._addr(f, "in0", "2001:db8:2::1/64")
            self._addr(s, "eth0", "203.0.113.10/24")
            self._addr(s, "eth0", "2001:db8:2::10/64")
            ns_run(f, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            ns_run(f, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
            run(["ip", "-n", c, "route", "add", "default", "via", "198.51.100.1"])
            run(["ip", "-n", c, "-6", "route", "add", "default", "via", "2001:db8:1::1"])
            run(["ip", "-n", s, "route", "add", "default", "via", "203.0.113.1"])
            run(["ip", "-n", s, "-6", "route", "add", "default", "via", "2001:db8:2::1"])
        else:
            s = self._new_ns("server")
            self._veth(c, "eth0", s, "eth0")
            self._addr(c, "eth0", "198.51.100.10/24")
            self._addr(c, "eth0", "2001:db8:1::10/64")
            self._addr(s, "eth0", "198.51.100.20/24")
            self._addr(s, "eth0", "2001:db8:1::20/64")
        # Divert TCP to seqwall with the shipped iptables-restore files.
        for tool in ("iptables-restore", "ip6tables-restore") if self.divert else ():
            with open(self.iptables) as fh:
                text = fh.read()
            cp = ns_run(self.fw_ns, [tool, "--noflush"], input=text, check=False)
            if cp.returncode != 0:
                raise RuntimeError(f"{tool} --noflush < {self.iptables} failed in the lab "
                                   f"namespace: {cp.stderr.strip()}")
        self.server = Server(self.ns["server"], self.server_ports, self.workdir, "server")
        if self.client_ports:
            self.client_listener = Server(self.ns["client"], self.client_ports, self.workdir,
                                          "clientlistener")
        self.probe = Probe(self.ns["server"], self.workdir, "probe")
        self.daemon = Daemon(self.fw_ns, self.rules, os.path.join(self.workdir, "control.sock"),
                             os.path.join(self.workdir, "seqwall.log"), queues=(self.queue,),
                             extra=self.daemon_extra)
        self.wait_reachable()

    def wait_reachable(self, timeout=5.0):
        """Neighbour discovery/ARP warm-up (ICMP is not queued), so the first TCP test does
        not pay for it."""
        for fam in (4, 6):
            ping = [PY, LAB_FILE, "ping", self.server_addr(fam)]
            ok = wait_for(lambda: ns_run(self.ns["client"], ping, check=False,
                                         timeout=5).returncode == 0, timeout, 0.2)
            if not ok:
                raise RuntimeError(f"lab: server {self.server_addr(fam)} not reachable by ping")

    def start_daemon(self):
        self.daemon.start()

    def destroy(self):
        if self.daemon is not None and self.daemon.running():
            self.daemon.stop()
        for agent in (self.server, self.client_listener, self.probe):
            if agent is not None:
                REGISTRY.kill_proc(agent.proc, grace=1.0)
        for role in ("client", "fw", "server"):
            if role in self.ns:
                REGISTRY.del_ns(self.ns[role])
        self.ns = {}
        if self.workdir and not os.environ.get("SEQWALL_LAB_KEEP_LOGS"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- traffic --

    def connect(self, src_role, dst_addr, port, timeout=3.0):
        return Conn(self.ns[src_role], dst_addr, port, self.workdir, timeout=timeout)

    def craft(self, packets, src_role="client"):
        return craft(self.ns[src_role], packets)


# ---------------------------------------------------------------------------------------------
# unittest base: prints the daemon's log when a test fails
# ---------------------------------------------------------------------------------------------

class LabTestCase(unittest.TestCase):
    """One lab per test class: built once, seqwall started in it, removed at the end. A class
    names its lab with MODE (GATEWAY or HOST), RULES (the rule file) and the ports its server
    and client listen on."""

    MODE = None
    RULES = None
    SERVER_PORTS = ()
    CLIENT_PORTS = ()
    lab = None  # set by setUpClass

    @classmethod
    def make_lab(cls):
        """The (unbuilt) lab for this class; override for another topology or iptables file."""
        return Lab(cls.MODE, cls.RULES, server_ports=cls.SERVER_PORTS, client_ports=cls.CLIENT_PORTS)

    @classmethod
    def setUpClass(cls):
        problem = environment_problem()
        if problem:
            raise unittest.SkipTest(problem)
        cls.lab = cls.make_lab()
        cls.lab.build()
        try:
            cls.lab.start_daemon()
        except BaseException:
            cls.lab.destroy()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.lab is not None:
            cls.lab.destroy()

    def setUp(self):
        if self.lab is not None and not self.lab.daemon.running():  # an earlier test stopped it (or it died)
            self.lab.start_daemon()

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        daemon = self.lab.daemon if self.lab is not None else None
        start = daemon.log_size() if daemon is not None else 0
        out = super().run(result)
        after = len(result.failures) + len(result.errors)
        if after > before and daemon is not None:
            text = daemon.log_text(since=start).rstrip()
            lines = text.splitlines()
            if len(lines) > 150:
                lines = ["..."] + lines[-150:]
            if not lines:
                lines = ["(nothing logged during the test; the log's last lines:)"]
                lines += daemon.log_tail(30).splitlines()
            sys.stderr.write(f"\n----- seqwall log during {self.id()} "
                             f"({daemon.log_path}) -----\n")
            sys.stderr.write("\n".join(lines) + "\n")
            sys.stderr.write("----- end of seqwall log -----\n")
            sys.stderr.flush()
        return out


# ---------------------------------------------------------------------------------------------
# Agents (run inside namespaces via `ip netns exec NS /usr/bin/python3 lab.py ...`)
# ---------------------------------------------------------------------------------------------

def _die_with_parent():
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    signal.signal(signal.SIGALRM, lambda *a: os._exit(3))
    signal.alarm(AGENT_LIFETIME)
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))


def _agent_serve(args):
    ports = [int(p) for p in args["--ports"].split(",") if p]
    logf = open(args["--log"], "a")
    lock = threading.Lock()
    socks = []
    for port in ports:
        for fam in (socket.AF_INET, socket.AF_INET6):
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind(("::", port))
            else:
                s.bind(("0.0.0.0", port))
            s.listen(64)
            socks.append((s, port))

    def handle(conn):
        conn.settimeout(30)
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(b"echo:" + data)
        except OSError:
            pass
        finally:
            conn.close()

    def acceptor(s, port):
        while True:
            conn, peer = s.accept()
            with lock:
                logf.write(f"accept {port} {peer[0]} {peer[1]}\n")
                logf.flush()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    for s, port in socks:
        threading.Thread(target=acceptor, args=(s, port), daemon=True).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def _agent_probe(args):
    logf = open(args["--log"], "a")
    s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP)
    print("ready", flush=True)
    while True:
        r, _, _ = select.select([s4, s6], [], [], 1.0)
        for s in r:
            data, peer = s.recvfrom(65535)
            if s is s4:
                ihl = (data[0] & 0x0F) * 4
                src = socket.inet_ntop(socket.AF_INET, data[12:16])
                dst = socket.inet_ntop(socket.AF_INET, data[16:20])
                tcp, fam = data[ihl:], 4
            else:
                src, dst, tcp, fam = peer[0], None, data, 6
            if len(tcp) < 14:
                continue
            if s is s4:
                tcp = tcp[:max(0, int.from_bytes(data[2:4], "big") - ihl)]
            rec = {"family": fam, "src": src, "dst": dst,
                   "sport": int.from_bytes(tcp[0:2], "big"),
                   "dport": int.from_bytes(tcp[2:4], "big"),
                   "flags": tcp[13] | ((tcp[12] & 1) << 8),
                   "seq": int.from_bytes(tcp[4:8], "big"),
                   "ack": int.from_bytes(tcp[8:12], "big"),
                   "len": max(0, len(tcp) - (tcp[12] >> 4) * 4)}
            logf.write(json.dumps(rec) + "\n")
            logf.flush()


def _read_to_eof(s):
    """Everything the peer sends until it closes."""
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return got
        got += chunk


def _agent_brief(addr, port):
    """One connection opened, used and closed at once, in one process (a few milliseconds):
    prints its source port, the server's answer and how long it took in milliseconds."""
    start = time.monotonic()
    s = socket.create_connection((addr, port), timeout=5)
    s.sendall(b"brief")
    s.shutdown(socket.SHUT_WR)
    answer = _read_to_eof(s)
    sport = s.getsockname()[1]
    s.close()
    print(sport, answer.decode(), int((time.monotonic() - start) * 1000), flush=True)


def brief_connection(ns, addr, port):
    """`_agent_brief` in `ns`: (source port, the server's answer, milliseconds it took)."""
    sport, answer, took = ns_run(ns, [PY, LAB_FILE, "brief", str(addr), str(port)]).stdout.split()
    return int(sport), answer, int(took)


def _agent_client(addr, port, timeout):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)

    def out(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    try:
        s.connect((addr, port))
    except socket.timeout:
        out({"event": "error", "error": "timeout"})
        return
    except OSError as e:
        out({"event": "error", "error": f"{type(e).__name__}: {e}"})
        return
    local = s.getsockname()
    out({"event": "connected", "sport": local[1], "local": local[0]})
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        try:
            if cmd == "send":
                data = bytes.fromhex(arg)
                s.sendall(data)
                want = len(data) + 5
                got = b""
                while len(got) < want:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                out({"event": "reply", "data": got.hex()})
            elif cmd == "close":
                s.shutdown(socket.SHUT_WR)
                rest = _read_to_eof(s)
                s.close()
                out({"event": "closed", "rest": rest.hex()})
                return
            else:
                out({"event": "error", "error": f"unknown command {cmd!r}"})
        except OSError as e:
            out({"event": "error", "error": f"{type(e).__name__}: {e}"})
            return


def _agent_craft(spec):
    import logging
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    from scapy.all import IP, IPv6, TCP, conf, send  # noqa: E402
    conf.verb = 0
    n = 0
    for p in json.loads(spec):
        if p.get("family", 4) == 6:
            l3 = IPv6(dst=p["dst"], src=p["src"]) if p.get("src") else IPv6(dst=p["dst"])
        else:
            l3 = IP(dst=p["dst"], src=p["src"]) if p.get("src") else IP(dst=p["dst"])
        seg = TCP(sport=p["sport"], dport=p["dport"], flags=p.get("flags", ""),
                  seq=p.get("seq", 1000), ack=p.get("ack", 0), window=p.get("window", 8192))
        send(l3 / seg, verbose=0)
        n += 1
    print(f"sent {n}", flush=True)


def _agent_ping(addr, timeout=1.0):
    """One ICMP/ICMPv6 echo; exit 0 when answered (there is no ping binary on every box)."""
    ident = os.getpid() & 0xFFFF
    if ":" in addr:
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        msg = bytes([128, 0, 0, 0]) + ident.to_bytes(2, "big") + b"\x00\x01seqwall"
        want = 129  # the kernel fills in the ICMPv6 checksum
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        body = ident.to_bytes(2, "big") + b"\x00\x01seqwall"
        raw = bytes([8, 0, 0, 0]) + body
        if len(raw) % 2:
            raw += b"\x00"
        total = sum(int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        csum = (~total) & 0xFFFF
        msg = bytes([8, 0]) + csum.to_bytes(2, "big") + body
        want = 0
    s.sendto(msg, (addr, 0))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([s], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        data, _ = s.recvfrom(2048)
        icmp = data if ":" in addr else data[(data[0] & 0x0F) * 4:]
        if len(icmp) >= 6 and icmp[0] == want and int.from_bytes(icmp[4:6], "big") == ident:
            return 0
    return 1


def _parse_opts(argv):
    opts, pos = {}, []
    i = 0
    while i < len(argv):
        if argv[i].startswith("--") and i + 1 < len(argv):
            opts[argv[i]] = argv[i + 1]
            i += 2
        else:
            pos.append(argv[i])
            i += 1
    return opts, pos


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    _die_with_parent()
    role, rest = argv[0], argv[1:]
    opts, pos = _parse_opts(rest)
    if role == "serve":
        _agent_serve(opts)
    elif role == "probe":
        _agent_probe(opts)
    elif role == "client":
        _agent_client(pos[0], int(pos[1]), float(opts.get("--timeout", "3")))
    elif role == "brief":
        _agent_brief(pos[0], int(pos[1]))
    elif role == "ping":
        return _agent_ping(pos[0])
    elif role == "craft":
        signal.alarm(120)
        _agent_craft(pos[0])
    else:
        print(f"unknown agent {role!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
