"""The files the project ships and the tests use are accepted by the tools that read them.

- rules/gateway.iptables and rules/host.iptables load with iptables-restore --noflush and
  ip6tables-restore --noflush (in a scratch namespace) and divert TCP to NFQUEUE queue 0
  with --queue-bypass;
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
                    for hook in hooks:
                        self.assertTrue(any(ln.startswith(f"-A {hook} ") and "-j SEQWALL" in ln
                                            for ln in rules.splitlines()),
                                        f"no jump from {hook} to SEQWALL:\n{rules}")
                    self.assertTrue(any(ln.startswith("-A SEQWALL ") and "NFQUEUE" in ln
                                        and "--queue-num 0" in ln and "--queue-bypass" in ln
                                        for ln in rules.splitlines()),
                                    f"no NFQUEUE 0 --queue-bypass rule:\n{rules}")
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
