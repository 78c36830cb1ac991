"""Failover between two seqwall firewalls with keepalived (docs/ha.md), real packets through a
real NFQUEUE.

Two firewall namespaces A and B in gateway mode between a client and a server, on two
bridges (outside 198.51.100.0/24 and 2001:db8:1::/64, inside 203.0.113.0/24 and
2001:db8:2::/64), keepalived running VRRP for the gateway addresses in both with the shipped
health checks, the state sync over a link of their own (192.0.2.0/24). Interactive
connections, IPv4 and IPv6, go through A; B starts late and gets them in its bulk; then A's
seqwall is killed with SIGKILL: VRRP moves the addresses to B, and every connection carries on
without a reset and without a drop on B for a missing connection or a window; A's seqwall
starts again, gets B's bulk, takes the addresses back, and the connections carry on through A
in the same way. The same when A's inside and outside links go down, then up.
"""

import os
import re
import signal
import time
import unittest

import lab

SYNC_PORT = 7946
KEEPALIVED = "/usr/sbin/keepalived"
CONNECTIONS_PER_FAMILY = 10

KEEPALIVED_CONF = """
global_defs {{
    enable_script_security
    script_user root
    vrrp_garp_master_delay 1
    vrrp_garp_master_repeat 3
}}
vrrp_script seqwall_sync {{
    script "{seqwall} sync status --check --control {control}"
    interval 1
    weight -20
}}
vrrp_script seqwall_running {{
    script "{seqwall} stats --control {control}"
    interval 1
    fall 1
    rise 2
}}
vrrp_sync_group gateway {{
    group {{
        outside
        inside
    }}
}}
vrrp_instance outside {{
    state BACKUP
    interface out0
    virtual_router_id 51
    priority {priority}
    advert_int 1
    preempt_delay 5
    virtual_ipaddress {{
        198.51.100.1/24 dev out0
    }}
    virtual_ipaddress_excluded {{
        2001:db8:1::1/64 dev out0
    }}
    track_script {{
        seqwall_sync
        seqwall_running
    }}
}}
vrrp_instance inside {{
    state BACKUP
    interface in0
    virtual_router_id 52
    priority {priority}
    advert_int 1
    preempt_delay 5
    virtual_ipaddress {{
        203.0.113.1/24 dev in0
    }}
    virtual_ipaddress_excluded {{
        2001:db8:2::1/64 dev in0
    }}
    track_script {{
        seqwall_sync
        seqwall_running
    }}
}}
"""


def keepalived_problem():
    if not os.path.exists(KEEPALIVED):
        return f"{KEEPALIVED} is missing (Debian's keepalived: make deps)"
    return None


class FailoverLab(lab.Lab):
    """client - [outside bridge] - A, B - [inside bridge] - server; A and B joined by a sync link."""

    def _build(self):
        c = self._new_ns("client")
        s = self._new_ns("server")
        sw = self._new_ns("switch")
        a = self._new_ns("fw")
        b = self._new_ns("fwb")
        for bridge in ("brout", "brin"):
            lab.run(["ip", "-n", sw, "link", "add", bridge, "type", "bridge"])
            lab.run(["ip", "-n", sw, "link", "set", bridge, "up"])
        self._veth(c, "eth0", sw, "c0")
        self._veth(s, "eth0", sw, "s0")
        self._veth(a, "out0", sw, "ao")
        self._veth(a, "in0", sw, "ai")
        self._veth(b, "out0", sw, "bo")
        self._veth(b, "in0", sw, "bi")
        for port, bridge in (("c0", "brout"), ("ao", "brout"), ("bo", "brout"),
                             ("s0", "brin"), ("ai", "brin"), ("bi", "brin")):
            lab.run(["ip", "-n", sw, "link", "set", port, "master", bridge])
        self._veth(a, "sync0", b, "sync0")
        self._addr(c, "eth0", "198.51.100.10/24")
        self._addr(c, "eth0", "2001:db8:1::10/64")
        self._addr(s, "eth0", "203.0.113.10/24")
        self._addr(s, "eth0", "2001:db8:2::10/64")
        for ns, host in ((a, 2), (b, 3)):
            self._addr(ns, "out0", f"198.51.100.{host}/24")
            self._addr(ns, "out0", f"2001:db8:1::{host}/64")
            self._addr(ns, "in0", f"203.0.113.{host}/24")
            self._addr(ns, "in0", f"2001:db8:2::{host}/64")
            self._addr(ns, "sync0", f"192.0.2.{host - 1}/24")
            lab.ns_run(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            lab.ns_run(ns, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
            for tool in ("iptables-restore", "ip6tables-restore"):
                with open(self.iptables) as fh:
                    lab.ns_run(ns, [tool, "--noflush"], input=fh.read())
        lab.run(["ip", "-n", c, "route", "add", "default", "via", "198.51.100.1"])
        lab.run(["ip", "-n", c, "-6", "route", "add", "default", "via", "2001:db8:1::1"])
        lab.run(["ip", "-n", s, "route", "add", "default", "via", "203.0.113.1"])
        lab.run(["ip", "-n", s, "-6", "route", "add", "default", "via", "2001:db8:2::1"])
        self.server = lab.Server(s, self.server_ports, self.workdir, "server")
        key = os.path.join(self.workdir, "sync.key")
        with open(key, "wb") as f:
            f.write(os.urandom(32))
        os.chmod(key, 0o600)
        self.nodes = {}
        for name, ns, mine, peer in (("a", a, "192.0.2.1", "192.0.2.2"), ("b", b, "192.0.2.2", "192.0.2.1")):
            self.nodes[name] = lab.Daemon(
                ns, self.rules, os.path.join(self.workdir, f"{name}.sock"), os.path.join(self.workdir, f"{name}.log"),
                extra=["--sync-listen", f"{mine}:{SYNC_PORT}", "--sync-peer", f"{peer}:{SYNC_PORT}", "--sync-key", key])
        self.daemon = self.nodes["a"]
        self.keepalived = {}

    def start_keepalived(self, name, priority):
        node = self.nodes[name]
        conf = os.path.join(self.workdir, f"keepalived-{name}.conf")
        with open(conf, "w") as f:
            f.write(KEEPALIVED_CONF.format(seqwall=lab.SEQWALL_BIN, control=node.control, priority=priority))
        pids = [os.path.join(self.workdir, f"keepalived-{name}.{kind}.pid") for kind in ("main", "vrrp", "check")]
        self.keepalived[name] = lab.spawn(
            node.ns, [KEEPALIVED, "--dont-fork", "--log-console", "--vrrp", "-f", conf,
                      "-p", pids[0], "-r", pids[1], "-c", pids[2]],
            os.path.join(self.workdir, f"keepalived-{name}.log"), stdout=False)

    def holds_gateway(self, name):
        cp = lab.ns_run(self.nodes[name].ns, ["ip", "-o", "addr", "show"], check=False)
        return all(address in cp.stdout for address in
                   ("198.51.100.1/", "203.0.113.1/", "2001:db8:1::1/", "2001:db8:2::1/"))

    def destroy(self):
        for proc in getattr(self, "keepalived", {}).values():
            lab.REGISTRY.kill_proc(proc, grace=2.0)
        for node in getattr(self, "nodes", {}).values():
            if node.running():
                node.stop()
        for role in ("switch", "fwb"):
            if role in self.ns:
                lab.REGISTRY.del_ns(self.ns.pop(role))
        super().destroy()


class SyncFailoverTest(unittest.TestCase):
    def setUp(self):
        problem = lab.environment_problem() or keepalived_problem()
        if problem:
            raise unittest.SkipTest(problem)
        self.lab = FailoverLab(lab.GATEWAY, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                         "rules", "gateway.rules"), server_ports=(8080,))
        self.lab.build()
        self.addCleanup(self.lab.destroy)

    def node_log(self, name):
        return self.lab.nodes[name].log_tail(40)

    def in_sync(self, node):
        return node.cli(["sync", "status", "--check"], check=False).returncode == 0

    def established_on(self, node, sports):
        on_node = {entry["orig"].get("sport") for entry in node.conntrack()
                   if entry["proto"] == "tcp" and entry["state"] == "ESTABLISHED"}
        return sports <= on_node

    def carry_on(self, conns, node, label):
        """Data both ways on every connection through `node`: no reset, no drop for a missing
        connection or a window."""
        for round_ in range(2):
            for index, conn in enumerate(conns):
                text = f"{label} {round_} {index}".encode()
                self.assertEqual(conn.send(text, timeout=10), b"echo:" + text,
                                 f"connection {index} (port {conn.sport}) did not carry on {label}")
            time.sleep(0.5)
        stats = node.stats()
        for reason in ("no-connection", "seq-above-window", "ack-above-sent"):
            self.assertEqual(lab.drops(stats, reason), 0, f"{node.ns} dropped {reason} {label}: {stats['drops']}")
        return stats

    def test_late_backup_takes_over_and_the_master_takes_back(self):
        a, b = self.lab.nodes["a"], self.lab.nodes["b"]
        a.start()
        self.lab.start_keepalived("a", 110)
        self.assertTrue(lab.wait_for(lambda: self.lab.holds_gateway("a"), 30, 0.5), "A never became master")

        conns = []
        try:
            for family in (4, 6):
                for _ in range(CONNECTIONS_PER_FAMILY):
                    conn = self.lab.connect("client", self.lab.server_addr(family), 8080, timeout=5)
                    self.assertTrue(conn.connected, conn.error)
                    conns.append(conn)
            for index, conn in enumerate(conns):
                self.assertEqual(conn.send(f"before {index}".encode()), f"echo:before {index}".encode())
            sports = {conn.sport for conn in conns}

            # B starts late: the bulk brings it every connection, then it is in sync.
            b.start()
            self.lab.start_keepalived("b", 100)
            self.assertTrue(lab.wait_for(lambda: self.in_sync(b), 20, 0.2), "B never got in sync")
            self.assertTrue(lab.wait_for(lambda: self.established_on(b, sports), 15, 0.2),
                            "B's bulk lacks connections")
            self.assertTrue(self.lab.holds_gateway("a"), "the in-sync master must keep the gateway")

            # The master's seqwall dies without a word: B takes over.
            a.proc.send_signal(signal.SIGKILL)
            a.proc.wait(timeout=10)
            self.assertTrue(lab.wait_for(lambda: self.lab.holds_gateway("b"), 30, 0.2),
                            "VRRP never moved the gateway to B")
            before = b.stats()
            after = self.carry_on(conns, b, "on B")
            self.assertGreater(after["packets"]["accepted"], before["packets"]["accepted"])

            # A comes back: out of sync until B's bulk, then it takes the gateway back.
            a.start()
            self.assertTrue(lab.wait_for(lambda: self.in_sync(a), 20, 0.2), "A never got in sync again")
            self.assertTrue(lab.wait_for(lambda: self.lab.holds_gateway("a") and not self.lab.holds_gateway("b"),
                                         30, 0.2), "VRRP never moved the gateway back to A")
            before = a.stats()
            after = self.carry_on(conns, a, "back on A")
            self.assertGreater(after["packets"]["accepted"], before["packets"]["accepted"])
            for conn in conns:
                conn.close()
        finally:
            for conn in conns:
                if conn.proc.poll() is None:
                    conn.abort()

    def test_the_masters_links_go_down_then_up(self):
        a, b = self.lab.nodes["a"], self.lab.nodes["b"]
        a.start()
        b.start()
        self.assertTrue(lab.wait_for(lambda: self.in_sync(a) and self.in_sync(b), 20, 0.2), "never in sync")
        self.lab.start_keepalived("a", 110)
        self.lab.start_keepalived("b", 100)
        self.assertTrue(lab.wait_for(lambda: self.lab.holds_gateway("a"), 30, 0.5), "A never became master")
        conns = []
        try:
            for family in (4, 6):
                for _ in range(CONNECTIONS_PER_FAMILY):
                    conn = self.lab.connect("client", self.lab.server_addr(family), 8080, timeout=5)
                    self.assertTrue(conn.connected, conn.error)
                    conns.append(conn)
            for index, conn in enumerate(conns):
                self.assertEqual(conn.send(f"before {index}".encode()), f"echo:before {index}".encode())
            sports = {conn.sport for conn in conns}
            self.assertTrue(lab.wait_for(lambda: self.established_on(b, sports), 15, 0.2), "B lacks connections")

            # A loses its inside and outside links (the sync link stays): B takes over.
            for link in ("out0", "in0"):
                lab.run(["ip", "-n", a.ns, "link", "set", link, "down"])
            self.assertTrue(lab.wait_for(lambda: self.lab.holds_gateway("b"), 30, 0.2),
                            "VRRP never moved the gateway to B")
            self.carry_on(conns, b, "on B")

            # The links come back: A, in sync all along, takes the gateway back.
            for link in ("out0", "in0"):
                lab.run(["ip", "-n", a.ns, "link", "set", link, "up"])
            self.assertTrue(lab.wait_for(lambda: self.lab.holds_gateway("a") and not self.lab.holds_gateway("b"),
                                         30, 0.2), "VRRP never moved the gateway back to A")
            self.carry_on(conns, a, "back on A")
            for conn in conns:
                conn.close()
        finally:
            for conn in conns:
                if conn.proc.poll() is None:
                    conn.abort()

if __name__ == "__main__":
    unittest.main()
