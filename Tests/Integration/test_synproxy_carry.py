"""SYN-proxied connections carried across a restart of seqwall and through an HA failover
(docs/synproxy.md, Restart and failover).

RestartCarryTest: gateway mode, `pass in tcp to port 8080 synproxy`, the shipped
gateway.iptables with --queue-bypass, --state-file. A few long-lived connections through the
proxy (test_restart's flows agent: a chunk each way every PERIOD, echoed and checked byte for
byte) run while seqwall is stopped with SIGTERM and started again with the state file. Every
connection is in the file with its proxy state, is restored proxied, and carries data exact
afterwards; no connection saw an error, no RST reached the server, and the restarted seqwall
sent no RST of its own. While seqwall is down the bypass lets the connections' packets through
untranslated, which neither end accepts (out of window): they are sent again once the
restarted seqwall translates them.

ProxiedFailoverTest: test_failover's lab (two seqwall nodes syncing their tables, keepalived
moving the virtual addresses) with both of its ports behind `synproxy`. Its interactive
connections and bulk transfers are proxied by node A; A's seqwall is killed (-9), B takes
over, then A is started again and takes over again (failback). The sync carries each proxied
connection's state (`proxies` messages as it opens and with the sweep, and after a bulk), so each node that takes
over translates the connections as the one before it did: none is reset or stalls, the bulk
transfers are exact, and the new master drops none of their segments; also when A is killed a
moment after the connections opened (their states go to B as they open, not only with the
sweep). The late-node case runs
too: B, started while A proxies the connections, gets them by the bulk and the states after it.
"""

import os
import signal
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402
import test_failover  # noqa: E402
import test_restart  # noqa: E402
from test_synproxy import SynFloodHarness  # noqa: E402

PORT = 8080
CONNECTIONS = 5
CHUNK = 4096
PERIOD = 0.2

RULES_TEXT = f"""# test_synproxy_carry.py: the echo server behind seqwall's SYN proxy.
inside 203.0.113.0/24, 2001:db8:2::/64
default in block
default out pass
pass in tcp to port {PORT} synproxy
set pickup grace 0
"""


def proxy_section(path):
    """The record indexes the state file's proxy section names (StateSnapshot.swift)."""
    with open(path, "rb") as f:
        data = f.read()
    count, = struct.unpack_from("<I", data, 20)
    table_length, proxy_length = struct.unpack_from("<QI", data, 32)
    if proxy_length == 0:
        return []
    start = test_restart.HEADER + count * test_restart.RECORD + table_length
    states, = struct.unpack_from("<I", data, start)
    return [struct.unpack_from("<I", data, start + 4 + i * 40)[0] for i in range(states)]


class RestartCarryTest(SynFloodHarness, test_restart.RestartLab):
    SERVER_PORTS = (PORT,)

    @classmethod
    def setUpClass(cls):
        cls.write_rules("carry.rules", RULES_TEXT)
        super().setUpClass()

    def test_proxied_connections_survive_a_restart(self):
        d = self.lab.daemon
        log_start = d.log_size()
        flows = test_restart.Flows(self.lab, port=PORT, connections=CONNECTIONS, chunk=CHUNK, period=PERIOD)
        try:
            time.sleep(3)
            proxied_before = [c for c in d.conntrack() if c.get("proxied")]
            self.assertEqual(d.stop(sig=signal.SIGTERM, timeout=20), 0, "seqwall did not stop cleanly")
            saved, _ = test_restart.read_state(self.state_path)
            indexes = proxy_section(self.state_path)
            time.sleep(1)
            d.start(ready_timeout=30)
            t_ready = time.time()
            time.sleep(2 * test_restart.ROUND_TRIP_TIMEOUT / 3)
            after = d.stats()
            table = d.conntrack()
        finally:
            report = flows.stop()
        log = self.restart_log(log_start)

        ours = {(self.lab.client4, c["sport"], self.lab.server4, PORT) for c in report}
        self.assertEqual(len(ours), CONNECTIONS)
        self.assertEqual(len(proxied_before), CONNECTIONS, "the connections were not proxied")
        self.assertFalse(ours - set(saved), "connections missing from the state file")
        self.assertEqual(len(indexes), CONNECTIONS, "the state file's proxy section")
        self.assertIn(f"restored {len(saved)} connections", log)
        listed = {(c["orig"]["src"], c["orig"]["sport"], c["orig"]["dst"], c["orig"]["dport"]): c for c in table}
        for key in ours:
            self.assertIn(key, listed, f"{key} not in the table after the restart")
            self.assertTrue(listed[key].get("proxied"), f"{key} restored unproxied: {listed[key]}")
            self.assertEqual(listed[key]["state"], "ESTABLISHED")

        errors = [(c["sport"], c["error"]) for c in report if c["error"]]
        self.assertFalse(errors, f"connections failed: {errors}")
        resets = [s for s in self.lab.probe.segments(dport=PORT, sports={c["sport"] for c in report})
                  if s["flags"] & lab.RST]
        self.assertFalse(resets, f"RSTs reached the server: {resets[:3]}")
        for c in report:
            self.assertGreater(len([t for t in c["done"] if t >= t_ready]), 3,
                               f"connection {c['sport']} carried little after the restart: {c}")
        # The restarted seqwall refused nothing on the server's behalf (its RST to the client).
        self.assertEqual(after.get("synproxy", {}).get("server_refused", 0), 0, after.get("synproxy"))
        self.assertEqual(after["drops"].get("synproxy-short-copy", 0), 0, after["drops"])


class ProxiedFailoverTest(test_failover.FailoverTest):
    RULE_TEXT = test_failover.RULES.replace("pass in tcp to port 8080\npass in tcp to port 8083\n",
                                            "pass in tcp to port 8080 synproxy\npass in tcp to port 8083 synproxy\n")
    # The links-down case moves the addresses as the kill does; the sync is what is tested here.
    test_master_links_down = None

    def test_connections_were_proxied(self):
        agent, reader = self.start_clients()
        time.sleep(1)
        proxied = [c for c in self.lab.daemons["a"].conntrack() if c.get("proxied")]
        # The interactive connections and the two bulk transfers.
        self.assertGreaterEqual(len(proxied), test_failover.CONNECTIONS + 2)
        self.finish_clients(agent, reader, {})

    def test_takeover_right_after_opening(self):
        """A is killed a moment after the connections opened, before its sweep (which passes
        a small table's connections all at once, every two seconds) could have sent their
        proxy states: each state went to B as its connection opened and as its server answered.
        So B lists every connection it holds ESTABLISHED as proxied from the moment it lists
        them all, and translates every one once it takes over."""
        backup, first = self.lab.daemons["b"], self.lab.daemons["a"]
        ports = (test_failover.INTERACTIVE_PORT, test_failover.BULK_PORT)
        wanted = test_failover.CONNECTIONS + 2
        agent, reader = self.start_clients()
        deadline = time.monotonic() + 10
        while True:
            listed = [c for c in backup.conntrack()
                      if c["orig"]["dport"] in ports and c["state"] == "ESTABLISHED"]
            flows = {(c["orig"]["src"], c["orig"]["sport"]) for c in listed}
            if len(flows) >= wanted or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        if len(flows) < wanted:
            states = lambda daemon: sorted((c["orig"]["sport"], c["state"], bool(c.get("proxied")))
                                           for c in daemon.conntrack() if c["orig"]["dport"] in ports
                                           and (c["orig"]["src"], c["orig"]["sport"]) not in flows)
            self.fail(f"node B lists {len(flows)} of {wanted} connections ESTABLISHED after 10 s; the others "
                      f"on A: {states(first)}, on B: {states(backup)}")
        unproxied = [c for c in listed if not c.get("proxied")]
        self.assertEqual(unproxied[:3], [], f"{len(unproxied)} of {len(listed)} connections on node B "
                                            "have their record but not their proxy state")
        lost = {}
        self.take_over("b", lambda: first.stop(signal.SIGKILL), "takeover right after opening", lost)
        self.finish_clients(agent, reader, lost)


if __name__ == "__main__":
    unittest.main()
