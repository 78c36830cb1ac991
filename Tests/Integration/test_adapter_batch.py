"""The adapter's batch receive (QueueWorker: one recvmmsg per batch, decided together, verdicts
in one send), with real packets through a real NFQUEUE (gateway mode).

A burst far larger than one batch (64 messages) is made to wait in the kernel's queue at once:
seqwall is stopped (SIGSTOP) while the client sends it, so when it goes on it finds hundreds of
messages and must take them as several full batches back to back. The burst mixes, in one
shuffled order, many flows (distinct source ports, IPv4 and IPv6) and verdicts: SYNs to an open
port (accepted), SYNs to a closed port (dropped, `rule`), a rejected port (dropped, `rule`,
and answered by seqwall with a RST), SYN|FIN (dropped, `bad-flags`) and bare ACKs of no
connection (dropped, `no-connection`). Every packet must be judged exactly once and rightly:
the `stats` deltas equal what was sent, per reason; the server's namespace counts (and then
discards, so nothing answers) exactly the accepted ones; the kernel queue lost nothing.

The file is also the agent that sends the burst from the client namespace:

  /usr/bin/python3 test_adapter_batch.py burst FILE.json    one scapy send() of every packet
"""

import json
import os
import random
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402
from lab import PY, REGISTRY, Conn, LabTestCase, drops, ns_run, scapy_problem, wait_for  # noqa: E402

THIS_FILE = os.path.abspath(__file__)
OPEN_PORT, CLOSED_PORT, REJECT_PORT = 8090, 8091, 8092

RULES = f"""# test_adapter_batch.py
inside 203.0.113.0/24, 2001:db8:2::/64
default in block
default out pass
reject in tcp to port {REJECT_PORT}
pass in tcp to port {OPEN_PORT}, 8080
set pickup grace 0
"""


def queue_total(ns, queue=0):
    """Messages waiting in the kernel's queue (/proc/net/netfilter/nfnetlink_queue), and its
    two loss counters (queue_dropped, user_dropped)."""
    cp = ns_run(ns, ["cat", "/proc/net/netfilter/nfnetlink_queue"])
    for line in cp.stdout.splitlines():
        f = line.split()
        if len(f) >= 8 and int(f[0]) == queue:
            return int(f[2]), int(f[5]), int(f[6])
    raise AssertionError(f"queue {queue} is not bound: {cp.stdout!r}")


def arrivals(ns, chain_rules):
    """Packets counted by each of the server namespace's raw PREROUTING rules, by port."""
    cp = ns_run(ns, ["iptables-save", "-c", "-t", "raw"])
    cp6 = ns_run(ns, ["ip6tables-save", "-c", "-t", "raw"])
    counts = {port: 0 for port in chain_rules}
    for line in (cp.stdout + cp6.stdout).splitlines():
        # [packets:bytes] -A PREROUTING -p tcp -m tcp --dport N -j DROP
        if line.startswith("[") and "--dport" in line:
            packets = int(line[1:line.index(":")])
            port = int(line.split("--dport")[1].split()[0])
            counts[port] = counts.get(port, 0) + packets
    return counts


class BatchReceiveTest(LabTestCase):
    MODE = lab.GATEWAY
    SERVER_PORTS = (8080,)

    @classmethod
    def setUpClass(cls):
        problem = scapy_problem()
        if problem:
            raise unittest.SkipTest(problem)
        cls.rules_dir = tempfile.mkdtemp(prefix="seqwall-batch-rules-")
        REGISTRY.add_tmp(cls.rules_dir)
        cls.RULES = os.path.join(cls.rules_dir, "batch.rules")
        with open(cls.RULES, "w") as f:
            f.write(RULES)
        super().setUpClass()
        server = cls.lab.ns["server"]
        # What seqwall lets through reaches the server's namespace, is counted there and
        # discarded before the stack sees it: no SYN-ACK or RST comes back to add packets.
        for tool in ("iptables", "ip6tables"):
            for port in (OPEN_PORT, CLOSED_PORT, REJECT_PORT):
                ns_run(server, [tool, "-t", "raw", "-A", "PREROUTING", "-p", "tcp", "--dport", str(port),
                                "-j", "DROP"])

    def burst(self, seed):
        """The mixed burst: (packets, expected) with expected counts per outcome."""
        rng = random.Random(seed)
        lab_ = self.lab
        packets, expected = [], {"open": 0, "rule": 0, "reject": 0, "bad-flags": 0, "no-connection": 0}
        sport = 20000 + (seed % 7) * 4000

        def add(kind, family, port, flags, count):
            nonlocal sport
            for _ in range(count):
                sport += 1
                packets.append({"family": family, "dst": lab_.server_addr(family), "sport": sport, "dport": port,
                                "flags": flags, "seq": rng.randrange(1, 2**32), "ack": 0 if "A" not in flags
                                else rng.randrange(1, 2**32)})
                expected[kind] += 1

        add("open", 4, OPEN_PORT, "S", 90)
        add("open", 6, OPEN_PORT, "S", 60)
        add("rule", 4, CLOSED_PORT, "S", 50)
        add("rule", 6, CLOSED_PORT, "S", 30)
        add("reject", 4, REJECT_PORT, "S", 40)
        add("bad-flags", 4, OPEN_PORT, "SF", 50)
        add("bad-flags", 6, OPEN_PORT, "FPU", 20)
        add("no-connection", 4, OPEN_PORT, "A", 50)
        add("no-connection", 6, OPEN_PORT, "A", 30)
        rng.shuffle(packets)
        return packets, expected

    def test_burst_of_many_batches_all_judged(self):
        daemon, fw = self.lab.daemon, self.lab.fw_ns
        packets, expected = self.burst(seed=6)
        total = len(packets)
        self.assertGreater(total, 6 * 64, "the burst must span several batches")
        spec = os.path.join(self.rules_dir, "burst.json")
        with open(spec, "w") as f:
            json.dump(packets, f)

        # Fresh neighbour entries along the path (client, fw, server, both families), so that
        # no packet of the burst waits in a neighbour queue, which holds only a few: a ping
        # from the server out (outbound is open; the echo reply belongs to its flow).
        for family in (4, 6):
            ns_run(self.lab.ns["server"], [PY, lab.LAB_FILE, "ping", self.lab.client_addr(family)], timeout=20)
        before = daemon.stats()
        arrived_before = arrivals(self.lab.ns["server"], (OPEN_PORT, CLOSED_PORT, REJECT_PORT))
        _, queue_dropped_before, user_dropped_before = queue_total(fw)

        daemon.send_signal(signal.SIGSTOP)
        try:
            cp = ns_run(self.lab.ns["client"], [PY, THIS_FILE, "burst", spec], timeout=120)
            self.assertEqual(cp.stdout.strip().splitlines()[-1], f"sent {total}", cp.stderr)
            # Every packet waits in the kernel's queue before seqwall goes on.
            self.assertTrue(wait_for(lambda: queue_total(fw)[0] == total, timeout=20),
                            f"queue holds {queue_total(fw)[0]} of {total}")
        finally:
            daemon.send_signal(signal.SIGCONT)
        self.assertTrue(wait_for(lambda: queue_total(fw)[0] == 0, timeout=30),
                        f"{queue_total(fw)[0]} packets still wait for a verdict")

        after = daemon.stats()
        self.assertEqual(after["packets"]["seen"] - before["packets"]["seen"], total)
        # A rejected packet counts as dropped by `rule` (it is, and answered too).
        self.assertEqual(drops(after, "rule") - drops(before, "rule"), expected["rule"] + expected["reject"])
        for reason in ("bad-flags", "no-connection"):
            self.assertEqual(drops(after, reason) - drops(before, reason), expected[reason], reason)
        self.assertEqual(after["packets"]["dropped"] - before["packets"]["dropped"], total - expected["open"])
        self.assertEqual(after["packets"]["accepted"] - before["packets"]["accepted"], expected["open"])
        queue = after["queues"][0]
        self.assertEqual((queue["enobufs"], queue["malformed_messages"], queue["send_errors"]), (0, 0, 0))
        _, queue_dropped, user_dropped = queue_total(fw)
        self.assertEqual((queue_dropped - queue_dropped_before, user_dropped - user_dropped_before), (0, 0))

        # The accepted SYNs, and only they, reached the server; the rejected ones were dropped
        # and answered by seqwall instead.
        arrived = arrivals(self.lab.ns["server"], (OPEN_PORT, CLOSED_PORT, REJECT_PORT))
        self.assertEqual(arrived[OPEN_PORT] - arrived_before[OPEN_PORT], expected["open"])
        self.assertEqual(arrived[CLOSED_PORT] - arrived_before[CLOSED_PORT], 0)
        self.assertEqual(arrived[REJECT_PORT] - arrived_before[REJECT_PORT], 0)
        # Each accepted SYN opened its own connection (many flows in one batch).
        opened = [c for c in daemon.conntrack() if c["state"] == "SYN_SENT" and c["orig"]["dport"] == OPEN_PORT]
        self.assertEqual(len(opened), expected["open"])

    def test_realtime_priority(self):
        """`--realtime-priority N` runs each queue's worker, and only it, under SCHED_FIFO at N;
        out-of-range values are refused before anything is bound."""
        daemon = self.lab.daemon
        daemon.stop()
        normal_extra = list(daemon.extra)
        daemon.extra = normal_extra + ["--realtime-priority", "7"]
        try:
            daemon.start(ready_timeout=20)
            with Conn(self.lab.ns["client"], self.lab.server4, 8080, self.rules_dir) as c:
                self.assertTrue(c.connected, c.error)
                self.assertEqual(c.send(b"rt"), b"echo:rt")
            threads = thread_scheduling(daemon.proc.pid)
            workers = {name: policy for name, policy in threads.items() if name.startswith("seqwall-q")}
            self.assertEqual(list(workers.values()), [(SCHED_FIFO, 7)], threads)
            others = [policy for name, policy in threads.items() if not name.startswith("seqwall-q")]
            self.assertTrue(others and all(policy == (SCHED_OTHER, 0) for policy in others), threads)
        finally:
            daemon.stop()
            daemon.extra = normal_extra
        for bad in ("0", "100"):
            cp = lab.run([lab.SEQWALL_BIN, "run", "--rules", self.RULES, "--realtime-priority", bad], check=False)
            self.assertEqual(cp.returncode, 1, cp.stderr)
            self.assertIn("--realtime-priority must be between 1 and 99", cp.stderr)


SCHED_OTHER, SCHED_FIFO = 0, 1


def thread_scheduling(pid):
    """Thread name -> (policy, real-time priority), from /proc/PID/task/TID/stat (proc(5):
    fields 40 rt_priority and 41 policy, counted after the parenthesised name)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            stat = f.read()
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is field 3 (state)
        out[f"{name}/{tid}" if name in out else name] = (int(fields[41 - 3]), int(fields[40 - 3]))
    return out


def _agent_burst(path):
    import logging
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    from scapy.all import IP, IPv6, TCP, conf, send  # noqa: E402
    conf.verb = 0
    with open(path) as f:
        spec = json.load(f)
    by_family = {4: [], 6: []}
    for p in spec:
        l3 = IPv6(dst=p["dst"]) if p["family"] == 6 else IP(dst=p["dst"])
        by_family[p["family"]].append(l3 / TCP(sport=p["sport"], dport=p["dport"], flags=p["flags"],
                                               seq=p["seq"], ack=p["ack"], window=8192))
    # One send() per family reuses one socket: the packets leave back to back.
    for family in (4, 6):
        if by_family[family]:
            send(by_family[family], verbose=0)
    print(f"sent {len(spec)}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "burst":
        _agent_burst(sys.argv[2])
    else:
        unittest.main()
