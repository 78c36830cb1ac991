"""What the daemon says about itself, checked against real processes in namespaces.

- `seqwall rules show`: the policy in force with per-rule counters that real connections move
  (passed, blocked, rejected, last match), every limit and timeout; a reload keeps the
  counters of the rules it keeps; `stats` shows uptime, rule drops and the last reload's result.
- Without CAP_NET_ADMIN `seqwall run` names the missing privilege; a queue another seqwall
  holds is still told apart.
- With no diversion loaded the daemon warns at the start, in `stats`, and again while no packet
  comes; a diversion loaded later silences it, removing it brings it back.
- The state file's health (a tmpfs filled up in the daemon's own mount namespace, a removed
  directory): in stats and metrics, a log line on recovery, exit status 1 when the final
  write fails.
- A removed control socket: the CLI names the pid that still holds it; SIGHUP makes it again.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402

OPEN_PORT = 8080
BLOCKED_PORT = 8081
REJECT_PORT = 8082
UNLISTED_PORT = 8083   # no rule: `default in block`

RULES = f"""default in block
default out pass
pass in tcp to port {OPEN_PORT}
block in tcp to port {BLOCKED_PORT}
reject in tcp to port {REJECT_PORT}
pass in udp to port 5353
limit half-open 1000
timeout tcp syn-sent 30s
"""

# The same rules moved about, with one more: the counters follow the rules, not the lines.
RELOADED_RULES = f"""default in block
default out pass
block in tcp to port {BLOCKED_PORT}
pass in tcp to port 9999
pass in tcp to port {OPEN_PORT}
reject in tcp to port {REJECT_PORT}
pass in udp to port 5353
limit half-open 1000
timeout tcp syn-sent 30s
"""

TIMEOUT_NAMES = ["tcp syn-sent", "tcp syn-recv", "tcp established", "tcp fin-wait", "tcp close-wait",
                 "tcp last-ack", "tcp time-wait", "tcp close", "tcp syn-sent2", "tcp retransmit",
                 "tcp unacknowledged", "udp single", "udp stream", "icmp"]


def bare_namespace():
    """A namespace of the lab's own with only loopback up, removed at exit."""
    lab.REGISTRY.install()
    name = lab.REGISTRY.unique("t")
    lab.run(["ip", "netns", "add", name])
    lab.REGISTRY.add_ns(name)
    lab.ns_run(name, ["ip", "link", "set", "lo", "up"])
    return name


def workdir():
    path = tempfile.mkdtemp(prefix="seqwall-truth-")
    lab.REGISTRY.add_tmp(path)
    os.chmod(path, 0o755)
    return path


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)


def rules_show(daemon):
    cp = daemon.cli(["rules", "show", "-o", "json"])
    return json.loads(cp.stdout)


def entry(shown, text):
    for e in shown["rules"] + shown["defaults"]:
        if e["text"] == text:
            return e
    raise AssertionError(f"no rule '{text}' in rules show: {[e['text'] for e in shown['rules']]}")


def metrics(ns, port):
    script = f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics', timeout=5).read().decode())"
    cp = lab.ns_run(ns, [lab.PY, "-c", script])
    values = {}
    for line in cp.stdout.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = value
    return values


class RulesShowAndStatsTest(lab.LabTestCase):
    MODE = lab.HOST
    SERVER_PORTS = (OPEN_PORT, BLOCKED_PORT, REJECT_PORT, UNLISTED_PORT)
    CLIENT_PORTS = ()

    @classmethod
    def setUpClass(cls):
        cls.rules_dir = workdir()
        cls.RULES = os.path.join(cls.rules_dir, "seqwall.rules")
        write(cls.RULES, RULES)
        super().setUpClass()

    def _traffic(self):
        server = self.lab.server_addr(4)
        with self.lab.connect("client", server, OPEN_PORT) as c:
            self.assertTrue(c.connected, c.error)
            self.assertEqual(c.send(b"counted"), b"echo:counted")
            c.close()
        for port in (BLOCKED_PORT, UNLISTED_PORT):
            with self.lab.connect("client", server, port, timeout=1.5) as c:
                self.assertFalse(c.connected, f"port {port} must be dropped")
        with self.lab.connect("client", server, REJECT_PORT, timeout=3.0) as c:
            self.assertFalse(c.connected)
            self.assertNotEqual(c.error, "timeout", "a reject rule answers at once")

    def test_1_rules_show_counts_what_each_rule_decided(self):
        shown = rules_show(self.lab.daemon)
        self.assertEqual([e["text"] for e in shown["rules"]],
                         [f"pass in tcp to port {OPEN_PORT}", f"block in tcp to port {BLOCKED_PORT}",
                          f"reject in tcp to port {REJECT_PORT}", "pass in udp to port 5353"])
        for e in shown["rules"]:
            self.assertEqual(e["counters"], {"passed": 0, "blocked": 0, "rejected": 0}, e)
        self._traffic()
        shown = rules_show(self.lab.daemon)
        passed = entry(shown, f"pass in tcp to port {OPEN_PORT}")
        self.assertEqual(passed["number"], 1)
        self.assertEqual(passed["location"], f"{self.RULES}:3:1")
        self.assertEqual((passed["counters"]["passed"], passed["counters"]["blocked"],
                          passed["counters"]["rejected"]), (1, 0, 0))
        self.assertLess(passed["counters"]["last_match_seconds_ago"], 60)
        blocked = entry(shown, f"block in tcp to port {BLOCKED_PORT}")["counters"]
        # The client retransmits its SYN: each one is a new connection the rule refuses.
        self.assertGreaterEqual(blocked["blocked"], 1)
        self.assertEqual((blocked["passed"], blocked["rejected"]), (0, 0))
        rejected = entry(shown, f"reject in tcp to port {REJECT_PORT}")["counters"]
        self.assertGreaterEqual(rejected["rejected"], 1)
        self.assertEqual((rejected["passed"], rejected["blocked"]), (0, 0))
        unused = entry(shown, "pass in udp to port 5353")["counters"]
        self.assertEqual(unused, {"passed": 0, "blocked": 0, "rejected": 0}, "never matched: no last match")
        default_in = entry(shown, "default in block")
        self.assertNotIn("number", default_in)
        self.assertGreaterEqual(default_in["counters"]["blocked"], 1, f"port {UNLISTED_PORT} has no rule")
        # Every limit and timeout in force, the defaults included.
        self.assertEqual(shown["limits"], {"states": 262144, "half_open": 1000})
        self.assertEqual([t["name"] for t in shown["timeouts"]], TIMEOUT_NAMES)
        syn_sent = shown["timeouts"][0]
        self.assertEqual((syn_sent["seconds"], syn_sent["is_default"]), (30, False))
        established = shown["timeouts"][2]
        self.assertEqual((established["seconds"], established["is_default"]), (432000, True))
        self.assertEqual((shown["pickup"], shown["drop_log"], shown["file"]), (False, "sampled", self.RULES))

        text = self.lab.daemon.cli(["rules", "show"]).stdout
        self.assertIn(f"@1 pass in tcp to port {OPEN_PORT}  # {self.RULES}:3:1\n"
                      f"  [ passed 1  blocked 0  rejected 0  last match ", text)
        self.assertIn("@4 pass in udp to port 5353  # ", text)
        self.assertIn("  [ passed 0  blocked 0  rejected 0  last match never ]", text)
        for line in ["limit states 262144", "limit half-open 1000", "limit half-open none per-source",
                     "timeout tcp syn-sent 30s\n", "timeout tcp established 5d  # default", "set pickup off"]:
            self.assertIn(line, text)

    def test_2_stats_shows_uptime_rule_drops_and_no_warning(self):
        stats = self.lab.daemon.stats()
        self.assertIsInstance(stats["uptime_seconds"], int)
        self.assertNotIn("last_reload", stats, "no reload yet")
        drops = {d["rule"]: d for d in stats["rule_drops"]}
        self.assertGreaterEqual(drops[f"block in tcp to port {BLOCKED_PORT}"]["blocked"], 1)
        self.assertGreaterEqual(drops[f"reject in tcp to port {REJECT_PORT}"]["rejected"], 1)
        self.assertGreaterEqual(drops["default in block"]["blocked"], 1)
        self.assertNotIn(f"pass in tcp to port {OPEN_PORT}", drops)
        # The shipped diversion sends to queue 0: nothing to warn about.
        self.assertEqual(stats["warnings"], [])
        text = self.lab.daemon.cli(["stats"]).stdout
        self.assertIn("rule drops   (every rule's counters: seqwall rules show)", text)
        self.assertIn(f"  @2 block in tcp to port {BLOCKED_PORT}  blocked ", text)
        self.assertIn("last reload  none since the start", text)
        self.assertNotIn("WARNING", text)

    def test_3_a_reload_keeps_the_counters_of_the_rules_it_keeps(self):
        before = rules_show(self.lab.daemon)
        write(self.RULES, RELOADED_RULES)
        self.lab.daemon.cli(["reload"])
        after = rules_show(self.lab.daemon)
        self.assertEqual(after["rules"][0]["text"], f"block in tcp to port {BLOCKED_PORT}")
        self.assertEqual(after["rules"][0]["number"], 1)
        for text in (f"block in tcp to port {BLOCKED_PORT}", f"pass in tcp to port {OPEN_PORT}",
                     f"reject in tcp to port {REJECT_PORT}", "default in block"):
            old, new = entry(before, text)["counters"], entry(after, text)["counters"]
            for key in ("passed", "blocked", "rejected"):
                self.assertEqual(old[key], new[key], f"{text}: {key}")
        self.assertEqual(entry(after, "pass in tcp to port 9999")["counters"],
                         {"passed": 0, "blocked": 0, "rejected": 0})
        self.assertGreaterEqual(after["loaded_at"], before["loaded_at"])
        reload = self.lab.daemon.stats()["last_reload"]
        self.assertEqual(reload["ok"], True)
        self.assertNotIn("error", reload)
        self.assertLessEqual(abs(reload["at"] - time.time()), 60)

    def test_4_a_refused_reload_is_in_stats_and_changes_nothing(self):
        write(self.RULES, RELOADED_RULES + "pas in tcp to port 22\nblock in tcp to port 99999\n")
        try:
            cp = self.lab.daemon.cli(["reload"], check=False)
            self.assertEqual(cp.returncode, 1, cp.stderr)
            stats = self.lab.daemon.stats()
            reload = stats["last_reload"]
            self.assertEqual(reload["ok"], False)
            self.assertTrue(reload["error"].startswith(f"{self.RULES}:10:"), reload)
            self.assertNotIn("\n", reload["error"], "the first line only")
            text = self.lab.daemon.cli(["stats"]).stdout
            self.assertIn(f"failed: {self.RULES}:10:", text)
            shown = rules_show(self.lab.daemon)
            self.assertEqual(len(shown["rules"]), 5, "the policy in force is still the last good one")
        finally:
            write(self.RULES, RELOADED_RULES)


class DaemonTestCase(unittest.TestCase):
    """Daemons in bare namespaces of their own; a directory with the rule file for them."""

    @classmethod
    def setUpClass(cls):
        problem = lab.environment_problem()
        if problem:
            raise unittest.SkipTest(problem)
        cls.dir = workdir()
        cls.rules = os.path.join(cls.dir, "seqwall.rules")
        write(cls.rules, RULES)


class PrivilegeTest(DaemonTestCase):
    """The kernel answers EPERM both to a missing CAP_NET_ADMIN and to a queue another
    socket owns; seqwall names which."""

    def _run(self, ns, prefix, control):
        return lab.ns_run(ns, prefix + [lab.SEQWALL_BIN, "run", "--rules", self.rules, "--control",
                                        os.path.join(self.dir, control), "--idle-warning", "0"],
                          check=False, timeout=20)

    def test_without_cap_net_admin_the_privilege_is_named(self):
        ns = bare_namespace()
        cases = {"root without CAP_NET_ADMIN": ["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin"],
                 "an unprivileged user": ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]}
        for case, prefix in cases.items():
            with self.subTest(case=case):
                cp = self._run(ns, prefix, f"{case[:4]}.sock")
                self.assertEqual(cp.returncode, 1, cp.stderr)
                self.assertIn("lacks CAP_NET_ADMIN", cp.stderr)
                self.assertNotIn("another process", cp.stderr)
        self.assertEqual(lab.ns_run(ns, ["cat", "/proc/net/netfilter/nfnetlink_queue"], check=False).stdout.strip(),
                         "", "no queue was bound")

    def test_a_queue_held_by_another_seqwall_is_still_told_apart(self):
        ns = bare_namespace()
        first = lab.Daemon(ns, self.rules, os.path.join(self.dir, "first.sock"),
                           os.path.join(self.dir, "first.log"), extra=["--idle-warning", "0"])
        first.start()
        try:
            cp = self._run(ns, [], "second.sock")
            self.assertEqual(cp.returncode, 1, cp.stderr)
            self.assertIn("another process (another seqwall?) holds this queue (netlink port ", cp.stderr)
            self.assertNotIn("CAP_NET_ADMIN", cp.stderr)
        finally:
            first.stop()


class NoDiversionTest(DaemonTestCase):
    """A daemon in a namespace whose firewall sends nothing to its queue."""

    IDLE = 2

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ns = bare_namespace()
        cls.daemon = lab.Daemon(cls.ns, cls.rules, os.path.join(cls.dir, "control.sock"),
                                os.path.join(cls.dir, "seqwall.log"), queues=(3,),
                                extra=["--idle-warning", str(cls.IDLE)])
        cls.daemon.start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def warnings(self):
        return self.daemon.stats()["warnings"]

    def test_warned_at_start_in_stats_and_while_nothing_comes(self):
        expected = "queue 3: no firewall rule sends packets here"
        self.assertTrue(lab.wait_for(lambda: expected in self.daemon.log_text(), 10), self.daemon.log_tail())
        warnings = self.warnings()
        self.assertEqual(len(warnings), 1, warnings)
        self.assertTrue(warnings[0].startswith(expected), warnings)
        self.assertIn("nft list ruleset", warnings[0])
        self.assertIn(f"WARNING: {expected}", self.daemon.cli(["stats"]).stdout)

        # A diversion to queue 3 (iptables, in the lab's namespace only) silences it...
        lab.ns_run(self.ns, ["iptables", "-A", "INPUT", "-p", "tcp", "-j", "NFQUEUE", "--queue-num", "3",
                             "--queue-bypass"])
        try:
            self.assertTrue(lab.wait_for(lambda: self.warnings() == [], 30, 0.5),
                            f"still warned with a diversion loaded: {self.warnings()}")
        finally:
            lab.ns_run(self.ns, ["iptables", "-F", "INPUT"])
        # ...and its removal, with still no packet, brings it back, in the log too (a queue a
        # rule feeds is looked at again after ten times --idle-warning).
        logged = self.daemon.log_text().count(expected)
        self.assertTrue(lab.wait_for(lambda: self.warnings() != [], 90, 0.5), "no warning after the removal")
        self.assertTrue(lab.wait_for(lambda: self.daemon.log_text().count(expected) > logged, 30, 0.5),
                        self.daemon.log_tail())


class StateFileHealthTest(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        for tool in ("unshare", "nsenter"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest(f"{tool} not found")
        super().setUpClass()

    def state(self, daemon):
        return daemon.stats()["state_file"]

    def test_a_full_filesystem_is_shown_recovery_logged_and_a_failed_final_write_exits_1(self):
        ns = bare_namespace()
        state_dir = os.path.join(self.dir, "full")
        os.mkdir(state_dir)
        filler = os.path.join(state_dir, "filler")
        # A 64 KiB tmpfs in the daemon's own mount namespace, filled up before seqwall starts:
        # nothing is mounted where anyone else can see it.
        prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                  f"mount -t tmpfs -o size=64k seqwall-test {state_dir} && "
                  f"dd if=/dev/zero of={filler} bs=4096 2>/dev/null; exec \"$@\"", "sh"]
        daemon = lab.Daemon(ns, self.rules, os.path.join(self.dir, "full.sock"), os.path.join(self.dir, "full.log"),
                            extra=["--idle-warning", "0", "--state-file", os.path.join(state_dir, "state"),
                                   "--state-interval", "1", "--metrics", "127.0.0.1:9464"], prefix=prefix)
        daemon.start()
        try:
            self.assertTrue(lab.wait_for(lambda: self.state(daemon)["failures"] >= 1, 15, 0.3), self.state(daemon))
            state = self.state(daemon)
            self.assertEqual(state["ok"], False)
            self.assertIn("No space left on device", state["last_error"])
            self.assertNotIn("last_success_at", state)
            text = daemon.cli(["stats"]).stdout
            self.assertIn(f"state file   {state_dir}/state FAILING, last written never", text)
            values = metrics(ns, 9464)
            self.assertEqual(values["seqwall_state_file_ok"], "0")
            self.assertGreaterEqual(int(values["seqwall_state_file_write_failures_total"]), 1)
            self.assertNotIn("seqwall_state_file_last_success_timestamp_seconds", values)

            # Room again (in the daemon's mount namespace): the next snapshot is written and
            # the log says the state file works again.
            lab.run(["nsenter", f"--mount=/proc/{daemon.proc.pid}/ns/mnt", "rm", filler])
            self.assertTrue(lab.wait_for(lambda: self.state(daemon)["ok"], 15, 0.3), self.state(daemon))
            state = self.state(daemon)
            self.assertIn("last_success_at", state)
            self.assertIn("No space left on device", state["last_error"], "the last error stays readable")
            self.assertIn("written again", daemon.log_text())
            values = metrics(ns, 9464)
            self.assertEqual(values["seqwall_state_file_ok"], "1")
            self.assertLessEqual(abs(int(values["seqwall_state_file_last_success_timestamp_seconds"]) - time.time()), 60)

            # Full again at the stop: the final write fails and the exit status says so.
            lab.run(["nsenter", f"--mount=/proc/{daemon.proc.pid}/ns/mnt", "sh", "-c",
                     f"dd if=/dev/zero of={filler} bs=4096 2>/dev/null; true"])
            rc = daemon.stop()
            self.assertEqual(rc, 1, daemon.log_tail())
            self.assertIn("the table was NOT saved", daemon.log_text())
        finally:
            daemon.stop()

    def test_a_removed_directory_fails_the_final_write(self):
        ns = bare_namespace()
        state_dir = os.path.join(self.dir, "gone")
        os.mkdir(state_dir)
        daemon = lab.Daemon(ns, self.rules, os.path.join(self.dir, "gone.sock"), os.path.join(self.dir, "gone.log"),
                            extra=["--idle-warning", "0", "--state-file", os.path.join(state_dir, "state"),
                                   "--state-interval", "0"])
        daemon.start()
        try:
            shutil.rmtree(state_dir)
            self.assertEqual(daemon.stop(), 1, daemon.log_tail())
            self.assertIn("cannot open directory", daemon.log_text())
        finally:
            daemon.stop()
        # With the directory there, the same stop exits 0.
        os.mkdir(state_dir)
        daemon.start()
        self.assertEqual(daemon.stop(), 0, daemon.log_tail())
        self.assertTrue(os.path.exists(os.path.join(state_dir, "state")))


class ControlSocketTest(DaemonTestCase):
    def test_a_removed_socket_is_told_and_sighup_makes_it_again(self):
        ns = bare_namespace()
        socket_dir = os.path.join(self.dir, "run")
        control = os.path.join(socket_dir, "control.sock")
        daemon = lab.Daemon(ns, self.rules, control, os.path.join(self.dir, "seqwall.log"),
                            extra=["--idle-warning", "0"])
        daemon.start()
        try:
            pid = daemon.proc.pid
            with open(f"/proc/{pid}/comm") as f:
                self.assertEqual(f.read().strip(), "seqwall")
            for removal in ("the file", "its directory"):
                with self.subTest(removed=removal):
                    if removal == "the file":
                        os.unlink(control)
                    else:
                        shutil.rmtree(socket_dir)
                    cp = daemon.cli(["stats"], check=False)
                    self.assertEqual(cp.returncode, 1)
                    self.assertIn(f"seqwall (pid {pid}) is running but its control socket {control} is gone; "
                                  f"`kill -HUP {pid}`", cp.stderr)
                    self.assertNotIn("not running", cp.stderr)
                    daemon.send_signal(signal.SIGHUP)
                    self.assertTrue(lab.wait_for(lambda: daemon.cli(["stats"], check=False).returncode == 0, 10, 0.2),
                                    daemon.log_tail())
                    self.assertEqual(os.stat(control).st_mode & 0o777, 0o600)
            self.assertEqual(daemon.log_text().count("was gone: listening there again"), 2)
            # SIGHUP still reloads the rules.
            self.assertEqual(daemon.stats()["last_reload"]["ok"], True)
        finally:
            self.assertEqual(daemon.stop(), 0)
        self.assertFalse(os.path.exists(control), "the stop removes the socket file")
        cp = daemon.cli(["stats"], check=False)
        self.assertEqual(cp.returncode, 1)
        self.assertIn("seqwall is not running", cp.stderr)
        self.assertNotIn(f"(pid {pid})", cp.stderr)

    def test_a_daemon_in_another_network_namespace_or_on_another_path_is_named(self):
        ns = bare_namespace()
        control = os.path.join(self.dir, "other.sock")
        daemon = lab.Daemon(ns, self.rules, control, os.path.join(self.dir, "other.log"),
                            extra=["--idle-warning", "0"])
        daemon.start()
        try:
            pid = daemon.proc.pid
            # From the root namespace, whose /proc/net/unix does not list the daemon's socket:
            # its command line names the path.
            os.unlink(control)
            cp = lab.run([lab.SEQWALL_BIN, "stats", "--control", control], check=False)
            self.assertEqual(cp.returncode, 1)
            self.assertIn(f"seqwall (pid {pid}) is running but its control socket {control} is gone", cp.stderr)
            daemon.send_signal(signal.SIGHUP)
            self.assertTrue(lab.wait_for(lambda: daemon.cli(["stats"], check=False).returncode == 0, 10, 0.2),
                            daemon.log_tail())
            # A path nothing listens on, while this daemon runs: not running there, and where it is.
            wrong = os.path.join(self.dir, "wrong.sock")
            cp = lab.ns_run(ns, [lab.SEQWALL_BIN, "stats", "--control", wrong], check=False)
            self.assertEqual(cp.returncode, 1)
            self.assertIn(f"seqwall is not running on {wrong} (nothing listens there), but seqwall (pid ", cp.stderr)
            self.assertIn("runs with its control socket at ", cp.stderr)
        finally:
            self.assertEqual(daemon.stop(), 0)


if __name__ == "__main__":
    unittest.main()
