"""The .deb alone suffices: a minimal Debian root, the package installed there with apt, seqwall
run from inside it (`make package-test`, after `make deb`; needs root and the package mirror).

- debootstrap --variant=minbase makes a root of the host's release from the mirror the host's
  apt uses (no Swift in it); `apt-get install ./seqwall_*.deb` there pulls the package's
  dependencies from the same mirror.
- From inside the root: `seqwall --version` names VERSION, the binary resolves every library
  it links, `seqwall rules check` accepts the shipped policy and refuses a broken one.
- In a lab of namespaces (Tests/Integration/lab.py, host mode, no diversion of the lab's own):
  the root's seqwall-divert loads the shipped diversion in the server's namespace, the root's
  seqwall runs on queue 0 with the shipped /etc/seqwall/seqwall.rules, passes a connection to
  port 80 (IPv4 and IPv6) and drops one to 8080 (reason rule), stops cleanly on SIGTERM with
  its state file written, and seqwall-divert stop takes the diversion away.
- apt-get purge removes the files, the conffile and /var/lib/seqwall.

Every command in the root runs through in-root.sh in a mount namespace of its own, so no mount
is ever visible under the root from outside it (checked after each step); the root is removed
at the end (SEQWALL_PACKAGE_TEST_KEEP=1 keeps it, unmounted).

Environment: SEQWALL_DEB the package (default: the one .build/deb holds),
SEQWALL_PACKAGE_TEST_MIRROR a mirror to use instead of the host's.
"""

import glob
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "Integration"))
import lab  # noqa: E402

IN_ROOT = os.path.join(HERE, "in-root.sh")
WORK = os.path.join(lab.REPO, ".build", "package-test")
ROOT = os.path.join(WORK, "root")
PRIVATE_MOUNTS = ["unshare", "--mount", "--propagation", "private"]
DEBOOTSTRAP_TIMEOUT = 1200  # seconds: downloads and unpacks a minimal Debian
APT_TIMEOUT = 900
ALLOWED_PORT, BLOCKED_PORT = 80, 8080   # the shipped policy: pass in tcp to port 22, 80, 443


def version():
    with open(os.path.join(lab.REPO, "VERSION")) as f:
        return f.read().strip()


def os_release(key):
    with open("/etc/os-release") as f:
        for line in f:
            name, _, value = line.strip().partition("=")
            if name == key:
                return value.strip('"')
    return None


def host_mirror(suite):
    """The first URI the host's apt fetches `suite` from (deb822 .sources files, then
    one-line .list files)."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as f:
            stanzas = f.read().split("\n\n")
        for stanza in stanzas:
            fields = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[0].isspace():
                    continue
                name, _, value = line.partition(":")
                fields[name.strip().lower()] = value.split()
            if ("deb" in fields.get("types", []) and suite in fields.get("suites", [])
                    and fields.get("enabled", ["yes"]) != ["no"] and fields.get("uris")):
                return fields["uris"][0]
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split("#")[0].split()
            if words[:1] == ["deb"]:
                words = [w for w in words[1:] if not w.startswith("[")]   # no [options]
                if len(words) >= 2 and words[1] == suite:
                    return words[0]
    return None


def mounts_under(path):
    """Mount points at or under path that this process (the initial mount namespace) sees."""
    path = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == path or point.startswith(path + "/"):
                found.append(point)
    return found


def remove_root():
    """Removes the root; refuses while anything is mounted under it (it would delete the
    mounted file systems' contents)."""
    left = mounts_under(WORK)
    if left:
        raise RuntimeError(f"mounts under {WORK}, not removing it: {left}")
    shutil.rmtree(WORK, ignore_errors=True)


def in_root(argv, timeout=60, check=True, ns=None):
    """Runs argv inside the root (in-root.sh: in a mount namespace of its own), in the
    network namespace ns if given."""
    cmd = [IN_ROOT, ROOT] + list(argv)
    if ns is not None:
        cmd = ["ip", "netns", "exec", ns] + cmd
    return lab.run(cmd, timeout=timeout, check=check)


class PackageTest(unittest.TestCase):
    """One root for the whole class, installed once; the tests run in order."""

    timings = {}

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("the package test needs root (debootstrap, chroot, namespaces)")
        problem = lab.environment_problem()
        if problem:
            raise unittest.SkipTest(problem)
        for tool in ("debootstrap", "unshare", "chroot"):
            if shutil.which(tool) is None:
                raise AssertionError(f"{tool} not found (make package-test installs it)")
        cls.deb = os.environ.get("SEQWALL_DEB") or next(
            iter(sorted(glob.glob(os.path.join(lab.REPO, ".build", "deb", "seqwall_*.deb")))), None)
        if not cls.deb or not os.path.isfile(cls.deb):
            raise AssertionError("no seqwall_*.deb in .build/deb (make deb, or set SEQWALL_DEB)")
        suite = os_release("VERSION_CODENAME")
        mirror = os.environ.get("SEQWALL_PACKAGE_TEST_MIRROR") or host_mirror(suite)
        if not suite or not mirror:
            raise AssertionError(f"no mirror for the host's release {suite!r} in /etc/apt (set "
                                 f"SEQWALL_PACKAGE_TEST_MIRROR)")
        lab.REGISTRY.install()
        remove_root()
        os.makedirs(WORK)
        try:
            cls._make_root(suite, mirror)
        except BaseException:
            cls._remove()
            raise

    @classmethod
    def _make_root(cls, suite, mirror):
        started = time.monotonic()
        # debootstrap mounts /proc and /sys in the root while it configures packages: in a
        # mount namespace of its own, none of them can outlive it.
        lab.run(PRIVATE_MOUNTS + ["debootstrap", "--variant=minbase", suite, ROOT, mirror],
                timeout=DEBOOTSTRAP_TIMEOUT)
        cls.timings["debootstrap"] = time.monotonic() - started
        started = time.monotonic()
        shutil.copy("/etc/resolv.conf", os.path.join(ROOT, "etc", "resolv.conf"))
        package = os.path.join("/tmp", os.path.basename(cls.deb))
        shutil.copy(cls.deb, ROOT + package)
        in_root(["apt-get", "update", "-qq"], timeout=APT_TIMEOUT)
        cls.apt = in_root(["apt-get", "install", "-y", "-q", "--no-install-recommends", package],
                          timeout=APT_TIMEOUT)
        cls.timings["apt-get install"] = time.monotonic() - started

    @classmethod
    def _remove(cls):
        if os.environ.get("SEQWALL_PACKAGE_TEST_KEEP"):
            sys.stderr.write(f"\nkept {ROOT}\n")
            return
        remove_root()

    @classmethod
    def tearDownClass(cls):
        cls._remove()
        if cls.timings:
            sys.stderr.write("\npackage test: " + ", ".join(
                f"{step} {seconds:.0f} s" for step, seconds in cls.timings.items()) + "\n")

    def tearDown(self):
        self.assertEqual(mounts_under(WORK), [], "a mount under the root is visible outside it")

    def test_1_installed_without_swift(self):
        """The root has no Swift; the package is installed, with its conffile, and nothing
        was enabled."""
        self.assertEqual(glob.glob(os.path.join(ROOT, "opt", "swift*")), [])
        self.assertEqual(glob.glob(os.path.join(ROOT, "usr", "lib", "**", "libswift*"), recursive=True), [])
        status = in_root(["dpkg-query", "-W", "-f", "${Status} ${Version}", "seqwall"]).stdout
        self.assertEqual(status, f"install ok installed {version()}")
        conffiles = in_root(["dpkg-query", "-W", "-f", "${Conffiles}", "seqwall"]).stdout
        self.assertIn("/etc/seqwall/seqwall.rules", conffiles)
        libraries = in_root(["ldd", "/usr/bin/seqwall"]).stdout
        self.assertNotIn("not found", libraries)
        self.assertNotIn("swift", libraries.lower())
        self.assertIn("libnetfilter_queue.so.1", libraries)
        self.assertIn("libsodium.so.23", libraries)
        self.assertEqual(glob.glob(os.path.join(ROOT, "etc", "systemd", "system", "*", "seqwall.service")), [])
        for path in ("usr/libexec/seqwall/seqwall-divert", "lib/systemd/system/seqwall.service",
                     "usr/share/man/man8/seqwall.8.gz", "usr/share/doc/seqwall/copyright"):
            self.assertTrue(os.path.isfile(os.path.join(ROOT, path)), path)

    def test_2_version(self):
        out = in_root(["seqwall", "--version"]).stdout
        self.assertTrue(out.startswith(f"seqwall {version()}"), out)

    def test_3_rules_check(self):
        """The shipped policy passes; a broken file fails with file:line:column."""
        for path in ("/etc/seqwall/seqwall.rules", "/usr/share/seqwall/default.rules"):
            cp = in_root(["seqwall", "rules", "check", path], check=False)
            self.assertEqual((cp.returncode, cp.stdout, cp.stderr), (0, "", ""), path)
        with open(os.path.join(ROOT, "tmp", "broken.rules"), "w") as f:
            f.write("pass in tcp to port 22\npass sideways\n")
        cp = in_root(["seqwall", "rules", "check", "/tmp/broken.rules"], check=False)
        self.assertEqual(cp.returncode, 1)
        self.assertRegex(cp.stderr, r"/tmp/broken\.rules:2:\d+:")

    def test_4_daemon_in_a_namespace(self):
        """The shipped diversion and policy, in force on a real queue: one connection passes,
        one is dropped by the rules."""
        the_lab = lab.Lab(lab.HOST, os.path.join(ROOT, "etc", "seqwall", "seqwall.rules"),
                          server_ports=(ALLOWED_PORT, BLOCKED_PORT), client_ports=(), divert=False)
        the_lab.build()
        self.addCleanup(the_lab.destroy)
        ns = the_lab.fw_ns
        started = time.monotonic()
        in_root(["mkdir", "-p", "/run/seqwall", "/var/lib/seqwall"])
        in_root(["/usr/libexec/seqwall/seqwall-divert", "start", "host"], ns=ns)
        self.addCleanup(in_root, ["/usr/libexec/seqwall/seqwall-divert", "stop", "host"], ns=ns,
                        check=False)
        loaded = in_root(["/usr/libexec/seqwall/seqwall-divert", "status"], ns=ns).stdout
        self.assertIn("queue", loaded.lower())

        daemon = lab.Daemon(ns, "/etc/seqwall/seqwall.rules", "/run/seqwall/control.sock",
                            os.path.join(the_lab.workdir, "seqwall.log"),
                            extra=["--state-file", "/var/lib/seqwall/state"],
                            prefix=[IN_ROOT, ROOT], binary="/usr/bin/seqwall")
        the_lab.daemon = daemon
        daemon.start(ready_timeout=30)
        try:
            for family in (4, 6):
                with the_lab.connect("client", the_lab.server_addr(family), ALLOWED_PORT) as c:
                    self.assertTrue(c.connected, f"IPv{family} to port {ALLOWED_PORT}: {c.error}")
                    self.assertEqual(c.send(b"package"), b"echo:package")
                    c.close()
            with the_lab.connect("client", the_lab.server4, BLOCKED_PORT, timeout=2.0) as c:
                self.assertFalse(c.connected, f"port {BLOCKED_PORT} was reached through seqwall")
            self.assertEqual(the_lab.server.accepts(BLOCKED_PORT), [])
            stats = daemon.stats()
            self.assertEqual(stats["version"], version())
            self.assertGreaterEqual(lab.drops(stats, "rule"), 1, stats)
            self.assertGreaterEqual(stats["connections"]["created"], 2, stats)
            self.assertGreater(stats["packets"]["accepted"], 0, stats)
            self.assertIn(f"seqwall {version()}", daemon.log_text())
        except BaseException:
            sys.stderr.write(f"\n----- seqwall log -----\n{daemon.log_tail()}\n")
            raise
        finally:
            rc = daemon.stop(signal.SIGTERM, timeout=20)
        self.assertEqual(rc, 0, daemon.log_tail())
        self.assertTrue(os.path.isfile(os.path.join(ROOT, "var", "lib", "seqwall", "state")))
        in_root(["/usr/libexec/seqwall/seqwall-divert", "stop", "host"], ns=ns)
        cp = in_root(["/usr/libexec/seqwall/seqwall-divert", "status"], ns=ns, check=False)
        self.assertEqual(cp.returncode, 1, cp.stdout)
        self.timings["daemon"] = time.monotonic() - started

    def test_5_purge(self):
        """apt-get purge leaves no file of the package, no conffile, no state."""
        in_root(["sh", "-c", "mkdir -p /var/lib/seqwall && echo state > /var/lib/seqwall/state"])
        in_root(["apt-get", "purge", "-y", "-q", "seqwall"], timeout=APT_TIMEOUT)
        for path in ("usr/bin/seqwall", "etc/seqwall", "var/lib/seqwall", "usr/share/seqwall",
                     "lib/systemd/system/seqwall.service", "usr/libexec/seqwall"):
            self.assertFalse(os.path.lexists(os.path.join(ROOT, path)), path)
        cp = in_root(["dpkg-query", "-W", "-f", "${Status}", "seqwall"], check=False)
        self.assertNotIn("installed", cp.stdout.replace("not-installed", ""))


if __name__ == "__main__":
    unittest.main(verbosity=2)
