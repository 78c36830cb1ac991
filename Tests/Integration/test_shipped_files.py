"""The files the project ships and the tests use are accepted by the tools that read them.

- rules/gateway.iptables and rules/host.iptables load with iptables-restore --noflush and
  ip6tables-restore --noflush (in a scratch namespace) and divert TCP, UDP, ICMP and ICMPv6
  to NFQUEUE queue 0 with --queue-bypass (host mode: not loopback), with no REJECT rule and
  no mark match (seqwall answers rejects itself); host.iptables leaves IPv6 neighbour
  discovery and MLD out of the queue; both turn on the kernel's reassembly with a socket-match
  rule in a raw-table SEQWALL chain that nothing jumps to;
- rules/default.rules and Tests/Integration/rules/*.rules pass `seqwall rules check`.
"""

import glob
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402

SHIPPED_RULES_DIR = os.path.join(lab.REPO, "rules")  # never the SEQWALL_IPTABLES_DIR override


class ShippedIptablesFilesTest(lab.LabTestCase):
    @classmethod
    def setUpClass(cls):
        problem = lab.environment_problem()
        if problem:
            raise unittest.SkipTest(problem)

    PROTOCOLS = ("tcp", "udp", "icmp", "ipv6-icmp")

    def load(self, name, hooks):
        path = os.path.join(SHIPPED_RULES_DIR, name)
        with open(path) as f:
            text = f.read()
        lab.REGISTRY.install()
        ns = lab.REGISTRY.unique("i")
        lab.run(["ip", "netns", "add", ns])
        lab.REGISTRY.add_ns(ns)
        try:
            for restore, show in (("iptables-restore", "iptables"),
                                  ("ip6tables-restore", "ip6tables")):
                with self.subTest(tool=restore):
                    cp = lab.ns_run(ns, [restore, "--noflush"], input=text, check=False)
                    self.assertEqual(cp.returncode, 0,
                                     f"{restore} --noflush < rules/{name} failed: "
                                     f"{cp.stderr.strip()}")
                    rules = lab.ns_run(ns, [show, "-S"]).stdout
                    lines = rules.splitlines()
                    for hook in hooks:
                        for proto in self.PROTOCOLS:
                            jumps = [ln for ln in lines if ln.startswith(f"-A {hook} ") and "-j SEQWALL" in ln
                                     and f"-p {proto} " in ln]
                            self.assertEqual(len(jumps), 1, f"no jump from {hook} to SEQWALL for {proto}:\n{rules}")
                            if hook in ("INPUT", "OUTPUT"):
                                self.assertIn("! -i lo" if hook == "INPUT" else "! -o lo", jumps[0],
                                              f"host mode must leave loopback out:\n{rules}")
                    chain = [ln for ln in lines if ln.startswith("-A SEQWALL ")]
                    # seqwall answers rejects itself: no REJECT rule and no mark match.
                    self.assertFalse(any("REJECT" in ln or "--mark" in ln for ln in chain),
                                     f"the chain has a reject or mark rule:\n{rules}")
                    self.assertTrue("NFQUEUE" in chain[-1] and "--queue-num 0" in chain[-1]
                                    and "--queue-bypass" in chain[-1],
                                    f"the chain does not end in NFQUEUE 0 --queue-bypass:\n{rules}")
                    # The kernel's reassembly, turned on by a socket-match rule that no packet
                    # runs (docs/design.md, Fragments).
                    raw = lab.ns_run(ns, [show, "-t", "raw", "-S"]).stdout.splitlines()
                    self.assertIn("-N SEQWALL", raw, f"no raw-table SEQWALL chain:\n{raw}")
                    self.assertTrue([ln for ln in raw if ln.startswith("-A SEQWALL -m socket")],
                                    f"no socket-match rule in the raw table:\n{raw}")
                    self.assertEqual([ln for ln in raw if "-j SEQWALL" in ln], [],
                                     f"something jumps to the raw table's SEQWALL chain:\n{raw}")
                    if name == "host.iptables" and show == "ip6tables":
                        spared = [ln for ln in chain if "-m u32" in ln and "-j RETURN" in ln]
                        self.assertEqual(len(spared), 3, f"ND and MLD are not left out of the queue:\n{rules}")
        finally:
            lab.REGISTRY.del_ns(ns)

    def test_gateway_iptables_loads(self):
        self.load("gateway.iptables", ["FORWARD"])

    def test_host_iptables_loads(self):
        self.load("host.iptables", ["INPUT", "OUTPUT"])


class RuleFilesCheckTest(unittest.TestCase):
    def test_rule_files_pass_check(self):
        if not os.path.exists(lab.SEQWALL_BIN):
            self.fail(f"seqwall binary not found at {lab.SEQWALL_BIN}")
        files = [os.path.join(SHIPPED_RULES_DIR, "default.rules")]
        files += sorted(glob.glob(os.path.join(lab.RULES_DIR, "*.rules")))
        for path in files:
            with self.subTest(file=os.path.relpath(path, lab.REPO)):
                cp = lab.run([lab.SEQWALL_BIN, "rules", "check", path], check=False)
                self.assertEqual((cp.returncode, cp.stdout, cp.stderr), (0, "", ""),
                                 f"seqwall rules check {path}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
