"""`make install` and `make uninstall` into a temporary root, and the installed service's pieces.

- make install DESTDIR=tmp PREFIX=/usr puts exactly the expected files there, with their modes;
  the installed binary runs and accepts the installed /etc/seqwall/seqwall.rules; the unit
  passes `systemd-analyze verify`; the completions name every subcommand; the man pages
  render without a warning: seqwall(8) with its hand-written FILES, EXIT STATUS, EXAMPLES and
  SEE ALSO, and seqwall.rules(5) with every statement of the rule language. A second install
  keeps a changed /etc/seqwall/seqwall.rules.
- make uninstall leaves nothing but empty directories, and a changed seqwall.rules.
- seqwall-divert (the unit's ExecStartPre/ExecStopPost), in a namespace of the test's own:
  start adds the SEQWALL chain and its jumps for IPv4 and IPv6, stop removes exactly them,
  both are safe twice in a row and after a crash left duplicates, a file that adds anything
  else is refused, a failed IPv6 load takes the IPv4 one back, and every other rule stays.
- the daemon with only the unit's capabilities (setpriv --bounding-set, as
  CapabilityBoundingSet= does) behind the installed diversion passes allowed traffic, drops
  the rest, reloads on SIGHUP and writes its state file at SIGTERM; under strace, every
  system call it made is one the unit's SystemCallFilter= allows.

The binary installed is $SEQWALL_BIN (make install SEQWALL_BINARY=...): the debug build the
other integration tests use, so this test never waits for a release build.
"""

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402

PREFIX = "/usr"
MAKE_TIMEOUT = 900  # seconds: the first install builds swift-argument-parser's generate-manual

# Installed path (relative to DESTDIR) -> mode.
EXPECTED_FILES = {
    "usr/bin/seqwall": 0o755,
    "usr/libexec/seqwall/seqwall-divert": 0o755,
    "usr/share/seqwall/default.rules": 0o644,
    "usr/share/seqwall/keepalived.conf.example": 0o644,
    "usr/libexec/seqwall/keepalived-notify": 0o755,
    "usr/lib/systemd/system/seqwall.service": 0o644,
    "usr/share/bash-completion/completions/seqwall": 0o644,
    "usr/share/zsh/site-functions/_seqwall": 0o644,
    "usr/share/fish/vendor_completions.d/seqwall.fish": 0o644,
    "usr/share/man/man8/seqwall.8": 0o644,
    "etc/seqwall/seqwall.rules": 0o644,
}
for _name in sorted(os.listdir(os.path.join(lab.REPO, "rules"))):
    if _name.endswith((".nft", ".iptables", ".ip6tables")):
        EXPECTED_FILES[f"usr/share/seqwall/{_name}"] = 0o644
# Man pages written by hand: docs/NAME.5.
_DOCS = os.path.join(lab.REPO, "docs")
for _name in sorted(os.listdir(_DOCS)) if os.path.isdir(_DOCS) else ():
    if _name.endswith(".5"):
        EXPECTED_FILES[f"usr/share/man/man5/{_name}"] = 0o644

RULES_FILE = "etc/seqwall/seqwall.rules"
UNIT_FILE = "usr/lib/systemd/system/seqwall.service"
DIVERT = "usr/libexec/seqwall/seqwall-divert"
IPTABLES_DIR = "usr/share/seqwall"


def make(target, destdir, timeout=MAKE_TIMEOUT):
    return lab.run(["make", "-C", lab.REPO, "--no-print-directory", target,
                    f"DESTDIR={destdir}", f"PREFIX={PREFIX}",
                    f"SEQWALL_BINARY={lab.SEQWALL_BIN}"], timeout=timeout, check=False)


def files_under(root):
    """Every non-directory under root, as paths relative to it."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
        for name in dirnames:  # symlinks to directories are files for this purpose
            if os.path.islink(os.path.join(dirpath, name)):
                out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


def installed_destdir():
    """A new temporary root (removed at exit) with make install run into it; returns the
    root and make's CompletedProcess."""
    destdir = tempfile.mkdtemp(prefix="seqwall-install-")
    lab.REGISTRY.install()
    lab.REGISTRY.add_tmp(destdir)
    return destdir, make("install", destdir)


def new_destdir(test):
    path = tempfile.mkdtemp(prefix="seqwall-install-")
    lab.REGISTRY.install()
    lab.REGISTRY.add_tmp(path)
    test.addCleanup(shutil.rmtree, path, True)
    return path


def subcommand_names():
    """Every subcommand at every level, from the parser itself (what the completions and the
    man page must name)."""
    cp = lab.run([lab.SEQWALL_BIN, "--experimental-dump-help"])
    names = []

    def walk(command):
        for sub in command.get("subcommands", []):
            if sub["commandName"] != "help":
                names.append(sub["commandName"])
                walk(sub)
    walk(json.loads(cp.stdout)["command"])
    return names


def require_binary(test):
    if not os.path.exists(lab.SEQWALL_BIN):
        test.fail(f"seqwall binary not found at {lab.SEQWALL_BIN} (build it, or set SEQWALL_BIN)")



def shipped_jumps(hooks):
    """The jumps to SEQWALL the shipped files make from these hooks (one per queued protocol),
    sorted by hook: what a loaded diversion must hold, once."""
    jumps = []
    for mode in ("host", "gateway"):
        with open(os.path.join(lab.REPO, "rules", f"{mode}.iptables")) as f:
            for line in f:
                words = line.split()
                if len(words) > 2 and words[0] == "-A" and words[1] in hooks and words[-2:] == ["-j", "SEQWALL"]:
                    jumps.append(words[1])
    assert jumps, f"the shipped files make no jump from {hooks}"
    return sorted(jumps)

class InstallTest(unittest.TestCase):
    """One install into a temporary root, checked piece by piece; uninstall at the end."""

    destdir = None

    @classmethod
    def setUpClass(cls):
        if shutil.which("make") is None:
            raise unittest.SkipTest("make not found")
        if not os.path.exists(lab.SEQWALL_BIN):
            raise AssertionError(f"seqwall binary not found at {lab.SEQWALL_BIN}")
        cls.destdir, cls.install = installed_destdir()

    @classmethod
    def tearDownClass(cls):
        if cls.destdir:
            shutil.rmtree(cls.destdir, ignore_errors=True)

    def setUp(self):
        self.assertEqual(self.install.returncode, 0,
                         f"make install failed:\n{self.install.stdout}\n{self.install.stderr}")

    def path(self, relative):
        return os.path.join(self.destdir, relative)

    def test_files_and_modes(self):
        self.assertEqual(files_under(self.destdir), set(EXPECTED_FILES),
                         "make install put other files than expected")
        for relative, mode in EXPECTED_FILES.items():
            with self.subTest(file=relative):
                st = os.lstat(self.path(relative))
                self.assertTrue(stat.S_ISREG(st.st_mode), f"{relative} is not a regular file")
                self.assertEqual(stat.S_IMODE(st.st_mode), mode,
                                 f"{relative} has mode {stat.S_IMODE(st.st_mode):o}")
                self.assertGreater(st.st_size, 0, f"{relative} is empty")
        with open(self.path("usr/bin/seqwall"), "rb") as a, open(lab.SEQWALL_BIN, "rb") as b:
            self.assertTrue(a.read() == b.read(), "the installed binary is not SEQWALL_BINARY")
        for name in ("default.rules", "host.iptables", "gateway.iptables", "host.nft", "gateway.nft"):
            with open(os.path.join(lab.REPO, "rules", name)) as a:
                with open(self.path(f"{IPTABLES_DIR}/{name}")) as b:
                    self.assertEqual(a.read(), b.read(), f"installed {name} differs")

    def test_installed_binary_runs(self):
        binary = self.path("usr/bin/seqwall")
        cp = lab.run([binary, "--help"], check=False)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertIn("USAGE: seqwall", cp.stdout)
        cp = lab.run([binary, "rules", "check", self.path(RULES_FILE)], check=False)
        self.assertEqual((cp.returncode, cp.stdout, cp.stderr), (0, "", ""),
                         "the installed binary refuses the installed /etc/seqwall/seqwall.rules")

    def test_unit_paths_are_substituted(self):
        with open(self.path(UNIT_FILE)) as f:
            unit = f.read()
        self.assertNotRegex(unit, r"@[A-Z]+@", "a placeholder is left in the unit")
        self.assertIn("ExecReload=/bin/kill -HUP $MAINPID", unit)
        self.assertIn("ExecStart=/usr/bin/seqwall run --rules /etc/seqwall/seqwall.rules", unit)
        self.assertIn("--state-file /var/lib/seqwall/state", unit)
        self.assertIn("--control /run/seqwall/control.sock", unit)
        self.assertIn("ExecStartPre=+/usr/libexec/seqwall/seqwall-divert start", unit)
        self.assertIn("ExecStopPost=+/usr/libexec/seqwall/seqwall-divert stop", unit)
        with open(self.path(DIVERT)) as f:
            self.assertIn("IPTABLES_DIR=${SEQWALL_IPTABLES_DIR:-/usr/share/seqwall}", f.read())

    def verification_root(self):
        """A copy of the temporary root where systemd-analyze finds every command of the unit:
        what make install put there, and the system's kill (ExecReload's /bin/kill) copied
        in as on a merged-/usr system."""
        root = new_destdir(self)
        shutil.copytree(self.destdir, root, symlinks=True, dirs_exist_ok=True)
        kill = shutil.which("kill", path="/usr/bin:/bin")
        self.assertIsNotNone(kill, "no kill binary to copy into the verification root")
        shutil.copy2(kill, os.path.join(root, "usr/bin/kill"))
        os.symlink("usr/bin", os.path.join(root, "bin"))
        return root

    def test_unit_passes_systemd_analyze_verify(self):
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze not found: the unit file is not verified")
        root = self.verification_root()
        # MANPATH: Documentation=man:seqwall(8) is the installed page.
        env = dict(os.environ, MANPATH=os.path.join(root, "usr/share/man"))
        cp = subprocess.run(["systemd-analyze", "verify", f"--root={root}", f"/{UNIT_FILE}"],
                            capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual((cp.returncode, cp.stderr.strip()), (0, ""),
                         f"systemd-analyze verify:\n{cp.stdout}{cp.stderr}")

    def test_unit_exposure_stays_low(self):
        """systemd-analyze security rates the sandbox 1.9 ("OK"); a change that weakens it
        past 2.0 fails here."""
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze not found: the unit's exposure is not rated")
        root = self.verification_root()
        cp = lab.run(["systemd-analyze", "security", "--offline=yes", f"--root={root}",
                      "--no-pager", "seqwall.service"], check=False, timeout=60)
        m = re.search(r"Overall exposure level for seqwall\.service: ([0-9.]+)", cp.stdout)
        self.assertIsNotNone(m, f"no exposure level:\n{cp.stdout}{cp.stderr}")
        self.assertLessEqual(float(m.group(1)), 2.0, cp.stdout)

    def test_completions_name_every_subcommand(self):
        names = subcommand_names()
        self.assertIn("run", names)
        self.assertIn("conntrack", names)
        for relative in ("usr/share/bash-completion/completions/seqwall",
                         "usr/share/zsh/site-functions/_seqwall",
                         "usr/share/fish/vendor_completions.d/seqwall.fish"):
            with self.subTest(file=relative):
                with open(self.path(relative)) as f:
                    text = f.read()
                self.assertTrue(text.strip(), f"{relative} is empty")
                for name in names:
                    self.assertRegex(text, rf"\b{re.escape(name)}\b",
                                     f"{relative} does not name the subcommand {name}")
        cp = lab.run(["bash", "-n", self.path("usr/share/bash-completion/completions/seqwall")],
                     check=False)
        self.assertEqual(cp.returncode, 0, f"bash completion is not valid bash: {cp.stderr}")

    def render_man_page(self, relative):
        """The installed page as man (or groff) prints it, without overstrike; fails on any
        warning."""
        page = self.path(relative)
        if shutil.which("man"):
            argv = ["man", "-l", page]
        elif shutil.which("groff"):
            argv = ["groff", "-mandoc", "-t", "-Tutf8", page]
        else:
            self.skipTest("neither man nor groff found: the man page is not rendered")
        env = dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="100", LC_ALL="C.UTF-8")
        cp = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual((cp.returncode, cp.stderr.strip()), (0, ""),
                         f"{argv[0]} warned or failed rendering {relative}")
        return re.sub(r".\x08", "", cp.stdout)  # overstrike bold and underline

    def test_man_page_renders(self):
        text = self.render_man_page("usr/share/man/man8/seqwall.8")
        self.assertIn("SEQWALL(8)", text)
        for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "FILES", "EXIT STATUS", "EXAMPLES",
                        "SEE ALSO"):
            self.assertRegex(text, rf"(?m)^{heading}$", f"the man page has no {heading}")
        self.assertIn("stateful firewall in userspace", text)
        for name in subcommand_names():
            self.assertRegex(text, rf"\b{re.escape(name)}\b", f"the man page omits {name}")
        self.assertIn("--state-file", text)
        self.assertIn("seqwall.rules(5)", text)

    def test_rules_man_page_renders(self):
        text = self.render_man_page("usr/share/man/man5/seqwall.rules.5")
        self.assertIn("SEQWALL.RULES(5)", text)
        for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "EXAMPLES", "FILES", "SEE ALSO"):
            self.assertRegex(text, rf"(?m)^{heading}$", f"the rules man page has no {heading}")
        # Every statement of the language, as the parser knows them.
        with open(os.path.join(lab.REPO, "Sources/SeqwallRules/Parser.swift")) as f:
            parser = f.read()
        keywords = re.search(r"statementKeywords = \[([^\]]*)\]", parser).group(1)
        for keyword in re.findall(r'"([a-z-]+)"', keywords):
            self.assertRegex(text, rf"(?m)^\s*{keyword}\b", f"the rules man page omits {keyword}")

    def test_zz_reinstall_keeps_a_changed_policy_and_uninstall_keeps_it_too(self):
        rules = self.path(RULES_FILE)
        with open(rules, "a") as f:
            f.write("pass in tcp to port 8443   # mine\n")
        with open(rules) as f:
            mine = f.read()
        again = make("install", self.destdir)
        self.assertEqual(again.returncode, 0, again.stderr)
        with open(rules) as f:
            self.assertEqual(f.read(), mine, "make install overwrote /etc/seqwall/seqwall.rules")
        gone = make("uninstall", self.destdir)
        self.assertEqual(gone.returncode, 0, gone.stderr)
        self.assertIn("kept", gone.stdout)
        self.assertEqual(files_under(self.destdir), {RULES_FILE},
                         "make uninstall left files besides the changed seqwall.rules")
        with open(rules) as f:
            self.assertEqual(f.read(), mine)


class UninstallTest(unittest.TestCase):
    def test_uninstall_of_an_untouched_install_leaves_only_empty_directories(self):
        require_binary(self)
        destdir = new_destdir(self)
        cp = make("install", destdir)
        self.assertEqual(cp.returncode, 0, f"make install failed:\n{cp.stdout}\n{cp.stderr}")
        self.assertEqual(files_under(destdir), set(EXPECTED_FILES))
        cp = make("uninstall", destdir)
        self.assertEqual(cp.returncode, 0, f"make uninstall failed:\n{cp.stdout}\n{cp.stderr}")
        self.assertEqual(files_under(destdir), set(), "make uninstall left files behind")
        # Twice is harmless.
        cp = make("uninstall", destdir)
        self.assertEqual(cp.returncode, 0, f"a second make uninstall failed:\n{cp.stderr}")


# ---------------------------------------------------------------------------------------------
# seqwall-divert in a namespace of the test's own
# ---------------------------------------------------------------------------------------------

TABLES = ("filter", "nat", "mangle", "raw")


def ruleset(ns):
    """Every table's rules, IPv4 and IPv6, as iptables -S prints them (no counters)."""
    out = {}
    for tool in ("iptables", "ip6tables"):
        for table in TABLES:
            out[(tool, table)] = lab.ns_run(ns, [tool, "-t", table, "-S"]).stdout.splitlines()
    return out


def seqwall_lines(rules):
    """The lines of a ruleset that belong to the diversion."""
    return {key: [ln for ln in lines if "SEQWALL" in ln] for key, lines in rules.items()}


class DiversionTest(unittest.TestCase):
    """The installed seqwall-divert, run only inside a namespace made here."""

    @classmethod
    def setUpClass(cls):
        problem = lab.environment_problem()
        if problem:
            raise unittest.SkipTest(problem)
        for tool in ("iptables-save", "ip6tables-save", "iptables", "ip6tables"):
            if shutil.which(tool) is None:
                raise unittest.SkipTest(f"{tool} not found")
        if not os.path.exists(lab.SEQWALL_BIN):
            raise AssertionError(f"seqwall binary not found at {lab.SEQWALL_BIN}")
        cls.destdir, cp = installed_destdir()
        if cp.returncode != 0:
            shutil.rmtree(cls.destdir, ignore_errors=True)
            raise AssertionError(f"make install failed:\n{cp.stdout}\n{cp.stderr}")
        cls.divert_path = os.path.join(cls.destdir, DIVERT)
        cls.iptables_dir = os.path.join(cls.destdir, IPTABLES_DIR)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.destdir, ignore_errors=True)

    def setUp(self):
        self.ns = lab.REGISTRY.unique("d")
        lab.run(["ip", "netns", "add", self.ns])
        lab.REGISTRY.add_ns(self.ns)
        self.addCleanup(lab.REGISTRY.del_ns, self.ns)
        # Someone else's rules, in several tables and both families, with a comment that
        # needs quoting and a chain of their own: none of it may change.
        for argv in (
            ["iptables", "-A", "INPUT", "-p", "udp", "--dport", "53", "-j", "ACCEPT"],
            ["iptables", "-N", "MINE"],
            ["iptables", "-A", "MINE", "-m", "comment", "--comment", "keep me, please", "-j", "RETURN"],
            ["iptables", "-A", "OUTPUT", "-j", "MINE"],
            ["iptables", "-A", "FORWARD", "-p", "tcp", "--dport", "25", "-j", "DROP"],
            ["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "203.0.113.0/24", "-j", "MASQUERADE"],
            ["iptables", "-t", "mangle", "-A", "PREROUTING", "-p", "tcp", "-j", "MARK", "--set-mark", "7"],
            ["ip6tables", "-A", "OUTPUT", "-p", "tcp", "--dport", "25", "-j", "DROP"],
            ["ip6tables", "-A", "INPUT", "-s", "2001:db8:1::/64", "-j", "ACCEPT"],
        ):
            lab.ns_run(self.ns, argv)
        self.before = ruleset(self.ns)

    def divert(self, *args, mode_env=None, families=None, check=True, **variables):
        """seqwall-divert ARGS in the namespace, with SEQWALL_DIVERSION=mode_env,
        SEQWALL_FAMILIES=families and the other variables given, and no others of its own. The
        iptables backend, chosen by name: these tests are about it (test_nft_divert.py has
        the nftables ones)."""
        env = [f"SEQWALL_IPTABLES_DIR={self.iptables_dir}", "SEQWALL_DIVERSION_BACKEND=iptables"]
        if mode_env is not None:
            env.append(f"SEQWALL_DIVERSION={mode_env}")
        if families is not None:
            env.append(f"SEQWALL_FAMILIES={families}")
        env += [f"{name}={value}" for name, value in variables.items()]
        unset = ["-u", "SEQWALL_DIVERSION", "-u", "SEQWALL_FAMILIES", "-u", "SERVICE_RESULT",
                 "-u", "SEQWALL_KEEP_DIVERSION_ON_FAILURE", "-u", "SEQWALL_QUEUES"]
        cp = lab.ns_run(self.ns, ["env"] + unset + env + [self.divert_path] + list(args),
                        check=False, timeout=30)
        if check:
            self.assertEqual(cp.returncode, 0,
                             f"seqwall-divert {' '.join(args)} failed: {cp.stderr.strip()}")
        return cp

    def own_file(self, name, text):
        """An iptables-restore file of the user's own, removed after the test."""
        path = os.path.join(self.destdir, name)
        with open(path, "w") as f:
            f.write(text)
        self.addCleanup(os.remove, path)
        return path

    def assert_untouched(self, what):
        after = ruleset(self.ns)
        for key in self.before:
            self.assertEqual(after[key], self.before[key], f"{what}: {key} changed")

    def assert_loaded(self, hooks):
        """Exactly the diversion of the shipped file for hooks, once, in both families, and
        every rule that was there before still there, in the same order."""
        after = ruleset(self.ns)
        for tool in ("iptables", "ip6tables"):
            filt = after[(tool, "filter")]
            self.assertIn("-N SEQWALL", filt, f"{tool}: no SEQWALL chain:\n" + "\n".join(filt))
            jumps = sorted(ln.split()[1] for ln in filt
                           if ln.startswith("-A ") and ln.endswith("-j SEQWALL"))
            self.assertEqual(jumps, shipped_jumps(hooks),
                             f"{tool}: jumps to SEQWALL:\n" + "\n".join(filt))
            chain = [ln for ln in filt if ln.startswith("-A SEQWALL ")]
            self.assertTrue(any("NFQUEUE --queue-num 0" in ln for ln in chain),
                            f"{tool}: SEQWALL has no NFQUEUE rule: {chain}")
            # seqwall answers rejects itself: no REJECT rule, nothing matching a mark.
            self.assertFalse(any("REJECT" in ln or "--mark" in ln for ln in chain),
                             f"{tool}: SEQWALL has a reject or mark rule: {chain}")
            for table in TABLES:
                rest = [ln for ln in after[(tool, table)] if "SEQWALL" not in ln]
                self.assertEqual(rest, self.before[(tool, table)],
                                 f"{tool} -t {table}: other rules changed")

    def test_start_stop_host_twice_each(self):
        self.assertEqual(self.divert("status", check=False).returncode, 1)
        self.divert("start")  # host is the default mode
        self.assert_loaded(["INPUT", "OUTPUT"])
        loaded = ruleset(self.ns)
        self.divert("start")
        self.assertEqual(ruleset(self.ns), loaded, "a second start changed the ruleset")
        status = self.divert("status")
        self.assertIn("ipv4 *filter -A INPUT ! -i lo -p tcp -j SEQWALL", status.stdout)
        self.assertIn("ipv6 *filter -A OUTPUT ! -o lo -p tcp -j SEQWALL", status.stdout)
        self.divert("stop")
        self.assert_untouched("after stop")
        self.divert("stop")
        self.assert_untouched("after a second stop")
        self.assertEqual(self.divert("status", check=False).returncode, 1)

    def test_gateway_mode_replaces_host_mode(self):
        self.divert("start", mode_env="host")
        self.assert_loaded(["INPUT", "OUTPUT"])
        self.divert("start", mode_env="gateway")
        self.assert_loaded(["FORWARD"])
        self.divert("stop", mode_env="gateway")
        self.assert_untouched("after stop")

    def test_stop_after_a_crash_removes_duplicates(self):
        # A crash between two loads by hand (iptables-restore --noflush twice) leaves the
        # jumps twice; stop still removes exactly the diversion.
        with open(os.path.join(self.iptables_dir, "host.iptables")) as f:
            text = f.read()
        for tool in ("iptables-restore", "ip6tables-restore"):
            for _ in range(2):
                lab.ns_run(self.ns, [tool, "--noflush"], input=text)
        jumps = [ln for ln in ruleset(self.ns)[("iptables", "filter")] if ln.endswith("-j SEQWALL")]
        self.assertEqual(len(jumps), 2 * len(shipped_jumps(["INPUT", "OUTPUT"])), jumps)
        self.divert("start")
        self.assert_loaded(["INPUT", "OUTPUT"])
        for tool in ("iptables-restore", "ip6tables-restore"):
            lab.ns_run(self.ns, [tool, "--noflush"], input=text)
        self.divert("stop")
        self.assert_untouched("after stop")

    def test_none_does_nothing(self):
        self.divert("start", mode_env="none")
        self.assert_untouched("start none")
        self.divert("start", "host")
        self.divert("stop", "none")
        self.assertTrue(any(seqwall_lines(ruleset(self.ns)).values()),
                        "stop none removed the diversion")
        self.divert("stop", "host")
        self.assert_untouched("after stop")

    def test_kept_after_a_failure_only_when_asked(self):
        # What systemd's ExecStopPost sees after a crash: SERVICE_RESULT=core-dump.
        self.divert("start")
        self.divert("stop", SERVICE_RESULT="core-dump")
        self.assert_untouched("stop after a crash, by default")
        self.divert("start")
        cp = self.divert("stop", SERVICE_RESULT="core-dump", SEQWALL_KEEP_DIVERSION_ON_FAILURE="yes")
        self.assertIn("the diversion stays", cp.stderr)
        self.assert_loaded(["INPUT", "OUTPUT"])
        self.divert("start")  # the restart replaces it
        self.assert_loaded(["INPUT", "OUTPUT"])
        self.divert("stop", SERVICE_RESULT="success", SEQWALL_KEEP_DIVERSION_ON_FAILURE="yes")
        self.assert_untouched("a clean stop with SEQWALL_KEEP_DIVERSION_ON_FAILURE=yes")

    def test_a_file_that_adds_other_rules_is_refused(self):
        own = self.own_file("own.iptables",
                            "*filter\n:SEQWALL - [0:0]\n-A INPUT -p tcp -j SEQWALL\n"
                            "-A INPUT -p udp -j ACCEPT\n-A SEQWALL -j NFQUEUE --queue-num 0\nCOMMIT\n")
        cp = self.divert("start", own, check=False)
        self.assertEqual(cp.returncode, 1)
        self.assertIn("own.iptables:4:", cp.stderr)
        self.assertIn("neither is in SEQWALL nor jumps to it", cp.stderr)
        self.assert_untouched("a refused file")
        cp = self.divert("start", "nonsense", check=False)
        self.assertEqual(cp.returncode, 1)
        self.assertIn("unknown mode 'nonsense'", cp.stderr)
        self.assert_untouched("an unknown mode")

    def test_an_ipv6_failure_takes_ipv4_back(self):
        # An IPv4 address in the IPv6 load: ip6tables-restore fails after iptables-restore
        # succeeded; the IPv4 diversion must not stay half of the pair.
        own = self.own_file("v4only.iptables",
                            "*filter\n:SEQWALL - [0:0]\n-A INPUT -s 198.51.100.0/24 -p tcp -j SEQWALL\n"
                            "-A SEQWALL -j NFQUEUE --queue-num 0 --queue-bypass\nCOMMIT\n")
        cp = self.divert("start", own, check=False)
        self.assertEqual(cp.returncode, 1, cp.stderr)
        self.assertIn("ip6tables-restore", cp.stderr)
        self.assert_untouched("a failed IPv6 load")
        # With SEQWALL_FAMILIES=ipv4 the same file loads, and stop removes it.
        self.divert("start", own, families="ipv4")
        self.assertIn("-A INPUT -s 198.51.100.0/24 -p tcp -j SEQWALL",
                      ruleset(self.ns)[("iptables", "filter")])
        self.assertFalse(seqwall_lines(ruleset(self.ns))[("ip6tables", "filter")])
        self.divert("stop", families="ipv4")
        self.assert_untouched("after stop")


# ---------------------------------------------------------------------------------------------
# The daemon as the unit runs it: only the unit's capabilities, behind the installed diversion
# ---------------------------------------------------------------------------------------------

HOST_RULES = os.path.join(lab.RULES_DIR, "host.rules")  # 8080 passes, 8081 dropped, 8082 rejected
CAP_NUMBERS = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_NET_BIND_SERVICE": 10}


def unit_settings(unit_text, key):
    return [ln.split("=", 1)[1].strip() for ln in unit_text.splitlines()
            if ln.startswith(key + "=")]


def unit_setting(unit_text, key):
    values = unit_settings(unit_text, key)
    return values[-1] if values else None


def syscall_group(name, seen=None):
    """The system calls of a systemd group such as @system-service, nested groups expanded
    (systemd-analyze syscall-filter)."""
    seen = set() if seen is None else seen
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    out = lab.run(["systemd-analyze", "syscall-filter", name]).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if item and not item.startswith("#"):
            calls |= syscall_group(item, seen)
    return calls


def allowed_syscalls(unit_text):
    """What the unit's SystemCallFilter= lines allow: the first allow-list, then each line
    adds (allow-list) or takes away (~deny-list), as systemd.exec(5) describes."""
    allowed = None
    for value in unit_settings(unit_text, "SystemCallFilter"):
        deny = value.startswith("~")
        calls = set()
        for item in value.lstrip("~").split():
            calls |= syscall_group(item)
        if deny:
            allowed = (allowed if allowed is not None else set()) - calls
        else:
            allowed = calls if allowed is None else allowed | calls
    return allowed


def traced_lines(trace_path, binary):
    """The lines of an strace -f log from the exec of binary on (what setpriv did before it
    is not seqwall's)."""
    started = False
    with open(trace_path) as f:
        for line in f:
            if started:
                yield line
            else:
                started = f'execve("{binary}"' in line


def traced_syscalls(trace_path, binary):
    calls = set()
    for line in traced_lines(trace_path, binary):
        m = re.match(r"^\d+\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()", line)
        if m:
            calls.add(m.group(1) or m.group(2))
    return calls


def traced_socket_families(trace_path, binary):
    """The address families of the sockets seqwall opened (strace prints socket(AF_..., ...)."""
    return {m.group(1) for line in traced_lines(trace_path, binary)
            for m in [re.match(r"^\d+\s+socket\((AF_\w+)", line)] if m}


def child_pids(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(p) for p in f.read().split()]
    return out


class ConfinedDaemonTest(unittest.TestCase):
    """A host-mode lab whose firewall namespace gets its diversion from the installed
    seqwall-divert and runs seqwall under the unit's CapabilityBoundingSet= and
    NoNewPrivileges=, applied with setpriv. Under strace (when installed), every system call
    seqwall made must be one the unit's SystemCallFilter= allows."""

    @classmethod
    def setUpClass(cls):
        problem = lab.environment_problem()
        if problem:
            raise unittest.SkipTest(problem)
        if shutil.which("setpriv") is None:
            raise unittest.SkipTest("setpriv not found")
        if not os.path.exists(lab.SEQWALL_BIN):
            raise AssertionError(f"seqwall binary not found at {lab.SEQWALL_BIN}")
        cls.destdir, cp = installed_destdir()
        if cp.returncode != 0:
            raise AssertionError(f"make install failed:\n{cp.stdout}\n{cp.stderr}")
        with open(os.path.join(cls.destdir, UNIT_FILE)) as f:
            cls.unit = f.read()
        empty = os.path.join(cls.destdir, "nothing.iptables")
        with open(empty, "w") as f:
            f.write("*filter\nCOMMIT\n")
        cls.lab = lab.Lab(lab.HOST, HOST_RULES, server_ports=(8080, 8081, 8082),
                          client_ports=(), iptables=empty)
        cls.lab.build()

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "lab", None) is not None:
            cls.lab.destroy()
        shutil.rmtree(cls.destdir, ignore_errors=True)

    def test_confined_daemon_filters_reloads_and_keeps_state(self):
        capabilities = unit_setting(self.unit, "CapabilityBoundingSet").split()
        # CAP_NET_RAW for the raw sockets that answer rejected packets, and nothing more.
        self.assertEqual(capabilities, ["CAP_NET_ADMIN", "CAP_NET_RAW"])
        self.assertEqual(unit_setting(self.unit, "NoNewPrivileges"), "yes")
        fw = self.lab.fw_ns
        divert = os.path.join(self.destdir, DIVERT)
        # The iptables backend: its shipped chain holds the REJECT rules a `reject` needs.
        env = ["env", f"SEQWALL_IPTABLES_DIR={os.path.join(self.destdir, IPTABLES_DIR)}",
               "SEQWALL_DIVERSION_BACKEND=iptables"]
        lab.ns_run(fw, env + [divert, "start", "host"], timeout=30)
        self.addCleanup(lambda: lab.ns_run(fw, env + [divert, "stop", "host"], check=False))

        state_dir = os.path.join(self.lab.workdir, "state")
        os.mkdir(state_dir, 0o700)
        state_file = os.path.join(state_dir, "state")
        bounding = ",".join(["-all"] + ["+" + c[len("CAP_"):].lower() for c in capabilities])
        prefix = ["setpriv", f"--bounding-set={bounding}", "--inh-caps=-all", "--no-new-privs"]
        trace = None
        if shutil.which("strace") and shutil.which("systemd-analyze"):
            trace = os.path.join(self.lab.workdir, "seqwall.strace")
            prefix = ["strace", "-f", "-qq", "-o", trace] + prefix
        else:
            sys.stderr.write("\ntest_install: strace or systemd-analyze missing: the system calls "
                             "are not checked against SystemCallFilter=\n")
        daemon = lab.Daemon(fw, HOST_RULES, os.path.join(self.lab.workdir, "confined.sock"),
                            os.path.join(self.lab.workdir, "confined.log"),
                            extra=["--state-file", state_file], prefix=prefix)
        try:
            daemon.start(ready_timeout=60)
        except RuntimeError as e:
            self.fail(f"seqwall with only {capabilities} did not start: {e}")
        self.addCleanup(daemon.stop)
        seqwall_pid = daemon.proc.pid
        if trace:
            children = child_pids(seqwall_pid)
            self.assertEqual(len(children), 1, f"strace has children {children}")
            seqwall_pid = children[0]
        with open(f"/proc/{seqwall_pid}/cmdline") as f:
            self.assertEqual(os.path.basename(f.read().split("\0")[0]), "seqwall")
        with open(f"/proc/{seqwall_pid}/status") as f:
            status = dict(ln.split(":\t", 1) for ln in f.read().splitlines() if ":\t" in ln)
        expected = sum(1 << CAP_NUMBERS[c] for c in capabilities)
        self.assertEqual(int(status["CapEff"], 16), expected, f"CapEff {status['CapEff']}")
        self.assertEqual(int(status["CapBnd"], 16), expected, f"CapBnd {status['CapBnd']}")
        self.assertEqual(status["NoNewPrivs"].strip(), "1")

        for family in (4, 6):
            with self.subTest(family=family):
                server = self.lab.server_addr(family)
                with self.lab.connect("client", server, 8080, timeout=5.0) as conn:
                    self.assertTrue(conn.connected, f"allowed connection failed: {conn.error}")
                    self.assertEqual(conn.send(b"hello"), b"echo:hello")
                    conn.close()
                with self.lab.connect("client", server, 8081, timeout=2.0) as conn:
                    self.assertFalse(conn.connected, "a connection to a blocked port got through")
                with self.lab.connect("client", server, 8082, timeout=5.0) as conn:
                    self.assertFalse(conn.connected)
                    self.assertIn("refused", str(conn.error).lower(),
                                  f"reject did not answer with a RST: {conn.error}")
        self.assertEqual(sum(q["reject_answers"] for q in daemon.stats()["queues"]), 2,
                         "seqwall did not send the two RSTs itself")
        stats = daemon.stats()
        self.assertGreaterEqual(lab.drops(stats, "rule"), 2, stats)

        # ExecReload=kill -HUP $MAINPID
        # Signals go to seqwall itself: daemon.proc may be strace.
        before = daemon.log_size()
        os.kill(seqwall_pid, signal.SIGHUP)
        self.assertTrue(lab.wait_for(lambda: f"reloaded {HOST_RULES}" in daemon.log_text(before), 15),
                        f"no reload logged after SIGHUP:\n{daemon.log_text(before)}")
        self.assertTrue(daemon.running())

        # systemctl stop: SIGTERM, the state file written (mode 0600) before exit 0.
        os.kill(seqwall_pid, signal.SIGTERM)
        try:
            daemon.proc.wait(timeout=30)  # strace exits with its tracee, and with its status
        except subprocess.TimeoutExpired:
            pass
        rc = daemon.stop()
        self.assertEqual(rc, 0, daemon.log_tail())
        st = os.stat(state_file)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertGreater(st.st_size, 0)

        if trace:
            used = traced_syscalls(trace, lab.SEQWALL_BIN)
            self.assertLessEqual({"socket", "bind", "sendto", "setsockopt", "fsync"}, used,
                                 f"the strace log misses seqwall's work: {sorted(used)}")
            families = set(unit_setting(self.unit, "RestrictAddressFamilies").split())
            opened = traced_socket_families(trace, lab.SEQWALL_BIN)
            self.assertIn("AF_NETLINK", opened)
            self.assertLessEqual({"AF_INET", "AF_INET6"}, opened, "no raw sockets for the answers to rejects")
            self.assertLessEqual(opened, families,
                                 "seqwall opened sockets RestrictAddressFamilies= refuses")
            refused = sorted(used - allowed_syscalls(self.unit))
            self.assertEqual(refused, [], "seqwall made system calls the unit's "
                             "SystemCallFilter= refuses")


if __name__ == "__main__":
    unittest.main(verbosity=2)
