"""seqwall on an impaired path: many short request/response connections through seqwall
while impair.py (a seeded NFQUEUE program, since this kernel has no netem) reorders or
duplicates every endpoint's outgoing TCP before it reaches the firewall.

  client (impair.py on its OUTPUT) -- fw (seqwall, gateway mode) -- server (impair.py on its OUTPUT)

Each run makes 300 HTTP-like connections, IPv4 and IPv6 alternating, 12 at a time: the client
sends a request naming a response length and which side closes first; the server answers with
that many bytes of a pattern fixed by the connection's number. Half the connections are closed
first by the server (HTTP/1.0 style: the server ends in TIME_WAIT), a quarter by the client,
and in the last quarter the client closes first and the server still writes a few bytes after
the client's FIN: the client's stack answers them with an RST addressed to the server, which is
in CLOSE_WAIT, not TIME_WAIT (a repeated FIN must not have moved the tracker there).

and a third run loses 2% of the packets.

What must hold:
- every transfer is exact (every byte of every response, checked by the client);
- every RST seqwall drops as `time-wait-rst` (drop log, `set drop-log full`) is addressed to an
  endpoint whose socket for that connection is in TIME_WAIT, asked from the endpoint's own
  `ss -tan state time-wait` as soon as the line is logged (TIME_WAIT lasts 60 s on Linux, far
  longer than the check takes). Such RSTs come from a late or duplicated last ACK that found
  no socket on the other side any more (RFC 1337).
  One race is told apart, not counted as wrong: a duplicated SYN that arrives after its
  connection closed reopens the tuple, in seqwall as in the kernel's conntrack
  (nf_conntrack_tcp_packet), and at the server (a new SYN_RECV). What then passes on the new
  entry may end the TIME_WAIT that was there when the drop was made, before the drop line is
  read. A drop counts as such only with the evidence of it: impair.py duplicated that
  connection's SYN and, at the check, an endpoint holds the tuple half open (SYN-RECV or
  SYN-SENT). At most two per run may be such; every other drop must find TIME_WAIT.

This file is also the agent program for the two endpoints:
  /usr/bin/python3 test_impaired_path.py serve PORT
  /usr/bin/python3 test_impaired_path.py fetch JSON
"""

import concurrent.futures
import hashlib
import json
import os
import random
import re
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
THIS = os.path.abspath(__file__)
IMPAIR = os.path.join(HERE, "impair.py")
RULES = os.path.join(HERE, "rules", "impaired.rules")
PORT = 8090
QUEUE = 7
CONNECTIONS = 300
PARALLEL = 12
RUN_LIMIT = 75        # seconds for all the connections of one run
CONNECTION_LIMIT = 30  # seconds for one connection (retransmissions included)


def pattern(number, length):
    """The response body of connection `number`: deterministic, different per connection."""
    seed = hashlib.sha256(f"response {number}".encode()).digest()
    return (seed * (length // len(seed) + 1))[:length]


# ---------------------------------------------------------------------------------------------
# Agents
# ---------------------------------------------------------------------------------------------

def _read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def _agent_serve(port):
    """GET NUMBER LENGTH CLOSER: answer LENGTH bytes of pattern(NUMBER); close first when
    CLOSER is `server`, else wait for the client's FIN and then close (`late`: write a few
    bytes after that FIN, which the client's stack answers with an RST)."""
    def handle(conn):
        try:
            conn.settimeout(CONNECTION_LIMIT)
            line = _read_request(conn)
            if line is None:
                return
            _, number, length, closer = line.split()
            conn.sendall(pattern(int(number), int(length)))
            if closer in ("client", "late"):
                while conn.recv(4096):
                    pass
            if closer == "late":
                conn.sendall(b"late trailer")
                time.sleep(0.2)
        except OSError:
            pass
        finally:
            conn.close()

    listeners = lab.dual_stack_sockets(socket.SOCK_STREAM, port, backlog=256)

    def acceptor(s):
        while True:
            conn, _ = s.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    for s in listeners:
        threading.Thread(target=acceptor, args=(s,), daemon=True).start()
    print("ready", flush=True)
    time.sleep(lab.AGENT_LIFETIME)


def _fetch_one(job):
    family = socket.AF_INET6 if job["family"] == 6 else socket.AF_INET
    expected = pattern(job["number"], job["length"])
    started = time.monotonic()
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(CONNECTION_LIMIT)
    try:
        s.connect((job["server"], job["port"]))
        sport = s.getsockname()[1]
        s.sendall(f"GET {job['number']} {job['length']} {job['closer']}\r\n\r\n".encode())
        got = b""
        while len(got) < len(expected):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        if job["closer"] == "server":
            while True:   # read to the server's FIN
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        s.close()
        return {"number": job["number"], "sport": sport, "exact": got == expected,
                "got": len(got), "seconds": round(time.monotonic() - started, 3)}
    except OSError as e:
        s.close()
        return {"number": job["number"], "exact": False, "error": str(e),
                "seconds": round(time.monotonic() - started, 3)}


def _agent_fetch(spec):
    jobs = json.loads(spec)
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        results = list(pool.map(_fetch_one, jobs))
    print(json.dumps(results), flush=True)


# ---------------------------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------------------------

DROP_LINE = re.compile(r"\bdrop reason=time-wait-rst proto=tcp src=(\S+) dst=(\S+) sport=(\d+) "
                       r"dport=(\d+) flags=(\S+)")


def time_wait_sockets(ns):
    """(local address, local port, peer address, peer port) of ns's TIME_WAIT sockets."""
    out = lab.ns_run(ns, ["ss", "-Htan", "state", "time-wait"]).stdout
    found = set()
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        local, peer = fields[-2], fields[-1]
        laddr, lport = local.rsplit(":", 1)
        paddr, pport = peer.rsplit(":", 1)
        laddr, paddr = laddr.strip("[]"), paddr.strip("[]")
        if laddr.startswith("::ffff:"):
            laddr, paddr = laddr[7:], paddr.replace("::ffff:", "")
        found.add((str(lab.ipaddress.ip_address(laddr)), int(lport),
                   str(lab.ipaddress.ip_address(paddr)), int(pport)))
    return found


class DropWatcher(threading.Thread):
    """Follows seqwall's log while the connections run; for every `time-wait-rst` drop,
    asks the addressee's namespace at once whether its socket for that tuple is in
    TIME_WAIT."""

    def __init__(self, the_lab, start):
        super().__init__(daemon=True)
        self.lab = the_lab
        self.offset = start
        self.stop_event = threading.Event()
        self.checked = []   # (line, addressee namespace role, in TIME_WAIT)
        self.explained = []   # (line, sockets either endpoint holds on the client's port, the
        #                        port, whether an endpoint holds it half open)
        self.partial = ""

    def owner(self, addr):
        a = str(lab.ipaddress.ip_address(addr))
        for family in (4, 6):
            if a == str(lab.ipaddress.ip_address(self.lab.client_addr(family))):
                return "client"
            if a == str(lab.ipaddress.ip_address(self.lab.server_addr(family))):
                return "server"
        return None

    def poll(self):
        text = self.lab.daemon.log_text(since=self.offset)
        self.offset += len(text.encode())
        text = self.partial + text
        lines = text.split("\n")
        self.partial = lines.pop()
        pending = []
        for line in lines:
            m = DROP_LINE.search(line)
            if m:
                src, dst, sport, dport, flags = m.groups()
                pending.append((line, self.owner(dst), (str(lab.ipaddress.ip_address(dst)),
                                                        int(dport),
                                                        str(lab.ipaddress.ip_address(src)),
                                                        int(sport))))
        if pending:
            states = {role: time_wait_sockets(self.lab.ns[role]) for role in ("client", "server")}
            for line, role, tup in pending:
                in_time_wait = role is not None and tup in states[role]
                self.checked.append((line, role, in_time_wait))
                if not in_time_wait:
                    self.explain(line, tup)

    def explain(self, line, tup):
        """What both endpoints hold for the tuple of a drop found wrong, in any state, for the
        failure message: a wrong drop is rare and timing-dependent, so it is described when
        it happens."""
        # tup is (addressee address, port, sender address, port).
        port = tup[3] if self.owner(tup[2]) == "client" else tup[1]
        held = []
        for role in ("client", "server"):
            out = lab.ns_run(self.lab.ns[role], ["ss", "-Htane"], check=False).stdout
            held += [f"{role}: {entry.strip()}" for entry in out.splitlines() if f":{port} " in entry]
        reopened = any(" SYN-RECV " in f" {entry} " or " SYN-SENT " in f" {entry} " for entry in held)
        self.explained.append((line, held, port, reopened))

    def run(self):
        while not self.stop_event.is_set():
            self.poll()
            self.stop_event.wait(0.05)

    def finish(self, expected):
        """Stops following once `expected` drops are checked (the drop log is written every
        50 ms, after the counters), or after a few seconds."""
        self.stop_event.set()
        self.join(10)
        deadline = time.monotonic() + 5
        while True:
            self.poll()
            if len(self.checked) >= expected or time.monotonic() > deadline:
                return
            time.sleep(0.1)


class ImpairedPathTest(lab.LabTestCase):
    MODE = lab.GATEWAY
    RULES = RULES
    SERVER_PORTS = (8080,)
    CLIENT_PORTS = ()
    impairers = []

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.server_agent = lab.spawn(cls.lab.ns["server"], [lab.PY, THIS, "serve", str(PORT)],
                                         os.path.join(cls.lab.workdir, "httpish.stderr"))
            if lab.LineReader(cls.server_agent.stdout).readline(10) != "ready":
                raise RuntimeError("the request/response server did not start")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stop_impairment()
        agent = getattr(cls, "server_agent", None)
        if agent is not None:
            lab.REGISTRY.kill_proc(agent, grace=1.0)
        super().tearDownClass()

    @classmethod
    def stop_impairment(cls):
        for proc, ns in cls.impairers:
            for tool in ("iptables", "ip6tables"):
                lab.ns_run(ns, [tool, "-t", "mangle", "-F", "OUTPUT"], check=False)
            lab.REGISTRY.kill_proc(proc, grace=1.0)
        cls.impairers = []

    def impair(self, seed, **probabilities):
        """impair.py on the client's and the server's outgoing TCP, seeds seed and seed + 1."""
        for offset, role in enumerate(("client", "server")):
            ns = self.lab.ns[role]
            argv = [lab.PY, IMPAIR, "--queue", str(QUEUE), "--seed", str(seed + offset),
                    "--lifetime", str(RUN_LIMIT + 30),
                    "--log", os.path.join(self.lab.workdir, f"impair-{role}-{seed}.log")]
            for name, p in probabilities.items():
                argv += [f"--{name}", str(p)]
            proc = lab.spawn(ns, argv, os.path.join(self.lab.workdir, f"impair-{role}.stderr"))
            type(self).impairers.append((proc, ns))
            line = lab.LineReader(proc.stdout).readline(15)
            if line != "ready":
                raise RuntimeError(f"impair.py in {role} did not start: {line!r}")
            for tool in ("iptables", "ip6tables"):
                lab.ns_run(ns, [tool, "-t", "mangle", "-A", "OUTPUT", "-p", "tcp", "-m", "mark",
                                "!", "--mark", "0x1/0x1", "-j", "NFQUEUE", "--queue-num",
                                str(QUEUE)])
        self.addCleanup(type(self).stop_impairment)

    def run_connections(self, seed):
        rng = random.Random(seed)
        jobs = []
        for number in range(CONNECTIONS):
            family = 4 if number % 2 == 0 else 6
            jobs.append({"number": number, "family": family,
                         "server": self.lab.server_addr(family), "port": PORT,
                         "length": rng.randint(200, 30_000),
                         "closer": ("server", "server", "client", "late")[number % 4]})
        cp = lab.ns_run(self.lab.ns["client"], [lab.PY, THIS, "fetch", json.dumps(jobs)],
                        timeout=RUN_LIMIT + CONNECTION_LIMIT)
        return json.loads(cp.stdout.strip().splitlines()[-1])

    def check_run(self, seed, **probabilities):
        daemon = self.lab.daemon
        before = daemon.stats()
        self.impair(seed, **probabilities)
        watcher = DropWatcher(self.lab, daemon.log_size())
        watcher.start()
        started = time.monotonic()
        try:
            results = self.run_connections(seed)
        finally:
            elapsed = time.monotonic() - started
            # Sockets still closing when the run returns may draw a last RST or two: take the
            # counters once they have held still for a second (at most 10 s), so that the
            # drop-log lines the watcher reads and the counter cover the same drops.
            after = daemon.stats()
            settle = time.monotonic() + 10
            while time.monotonic() < settle:
                time.sleep(1.0)
                again = daemon.stats()
                if again["drops"] == after["drops"]:
                    break
                after = again
            watcher.finish(lab.drops(after, "time-wait-rst") - lab.drops(before, "time-wait-rst"))
        drops = {k: v - before["drops"].get(k, 0) for k, v in after["drops"].items()
                 if v != before["drops"].get(k, 0)}
        impaired = {}
        for role in ("client", "server"):
            with open(os.path.join(self.lab.workdir, f"impair-{role}-{seed}.log")) as f:
                for line in f:
                    kind = line.split()[0]
                    impaired[kind] = impaired.get(kind, 0) + 1
        summary = (f"seed {seed} {probabilities}: {len(results)} connections in {elapsed:.1f} s, "
                   f"impaired {impaired}, seqwall drops {drops}, "
                   f"time-wait-rst drops checked {len(watcher.checked)}")
        sys.stderr.write(f"\n{summary}\n")
        self.assertEqual(len(results), CONNECTIONS, summary)
        bad = [r for r in results if not r["exact"]]
        self.assertEqual(bad, [], f"transfers not exact: {summary}")
        self.assertGreater(sum(impaired.values()), 0, f"impair.py impaired nothing: {summary}")
        self.assertEqual(drops.get("time-wait-rst", 0), len(watcher.checked),
                         f"time-wait-rst drops without a drop-log line: {summary}")
        # Client ports whose SYN impair.py duplicated (the copy may come after the close).
        duplicated_syns = set()
        with open(os.path.join(self.lab.workdir, f"impair-client-{seed}.log")) as f:
            for entry in f:
                fields = entry.split()
                if len(fields) >= 8 and fields[0] == "dup" and int(fields[6], 16) & 0x12 == 0x02:
                    duplicated_syns.add(fields[3])
        reopened = {line for line, _, port, half_open in watcher.explained
                    if half_open and str(port) in duplicated_syns}
        wrong = [(line, role) for line, role, in_time_wait in watcher.checked
                 if not in_time_wait and line not in reopened]
        summary += f", reopened by a late duplicated SYN before the check {len(reopened)}"
        if wrong or reopened:
            # Every packet impair.py touched on the wrong drops' client ports, beside what the
            # endpoints held for them when the drop was checked.
            impaired_lines = []
            for line, _, _, _ in watcher.explained:
                src, _, sport, dport, _ = DROP_LINE.search(line).groups()
                port = sport if watcher.owner(src) == "client" else dport
                for role in ("client", "server"):
                    with open(os.path.join(self.lab.workdir, f"impair-{role}-{seed}.log")) as f:
                        impaired_lines += [f"{role}: {entry.strip()}" for entry in f
                                           if f" {port} " in entry]
            sys.stderr.write("\nwrong time-wait-rst drops, what the endpoints held:\n"
                             + "\n".join(f"{line}\n  " + "\n  ".join(held)
                                         for line, held, _, _ in watcher.explained)
                             + "\nimpair.py's lines for those ports:\n  "
                             + "\n  ".join(impaired_lines) + "\n")
        self.assertEqual(wrong, [], f"time-wait-rst drops of RSTs addressed to an endpoint "
                                    f"not in TIME_WAIT: {summary}")
        self.assertLessEqual(len(reopened), 2, f"too many drops whose tuple a late SYN reopened "
                                               f"(a race that should be rare): {summary}")
        return drops

    def test_heavy_reordering(self):
        self.check_run(1801, reorder=0.30)

    def test_duplication(self):
        self.check_run(1802, duplicate=0.05)

    def test_loss(self):
        self.check_run(1803, drop=0.02)


def main(argv):
    if argv and argv[0] == "serve":
        _agent_serve(int(argv[1]))
        return 0
    if argv and argv[0] == "fetch":
        _agent_fetch(argv[1])
        return 0
    unittest.main(verbosity=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
