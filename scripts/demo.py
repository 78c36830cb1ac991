#!/usr/bin/python3
"""seqwall demo (`make demo`, as root, after the build).

Builds a three-namespace gateway lab (client -- fw -- server) with rules/default.rules and
rules/gateway.iptables, runs seqwall in the firewall namespace, and shows step by step what
it lets through and what it drops. Removes everything it made at the end, also on Ctrl-C.
Exit status 0 when every step behaved as promised, 1 otherwise.

Environment: SEQWALL_BIN (default .build/debug/seqwall).
"""

import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "Tests", "Integration"))
import lab  # noqa: E402

TTY = sys.stdout.isatty()


def color(code, text):
    return f"\033[{code}m{text}\033[0m" if TTY else text


def heading(n, text):
    print()
    print(color("1;36", f"== {n}. {text}"))


def say(text):
    print(f"   {text}")


def show(text):
    for line in text.rstrip("\n").splitlines():
        print(f"   | {line}")


class Demo:
    def __init__(self):
        self.results = []  # (step, ok, detail)
        self.lab = None

    def result(self, step, ok, detail=""):
        self.results.append((step, ok, detail))
        mark = color("1;32", "OK  ") if ok else color("1;31", "FAIL")
        say(f"{mark} {detail}")

    def stats(self):
        return self.lab.daemon.stats()

    def run(self):
        problem = lab.environment_problem()
        if problem:
            print(f"demo: {problem}", file=sys.stderr)
            return 1
        if not os.path.exists(lab.SEQWALL_BIN):
            print(f"demo: no seqwall binary at {lab.SEQWALL_BIN} (run `swift build` first, or "
                  f"set SEQWALL_BIN)", file=sys.stderr)
            return 1
        t0 = time.monotonic()
        try:
            self.steps()
        except Exception as e:  # a step that could not even run is a failed demo
            self.results.append(("demo", False, str(e)))
            print(color("1;31", f"\n   demo aborted: {e}"), file=sys.stderr)
            if self.lab is not None and self.lab.daemon is not None:
                print("   seqwall log (tail):", file=sys.stderr)
                print(self.lab.daemon.log_tail(30), file=sys.stderr)
        finally:
            self.cleanup()
        failed = [r for r in self.results if not r[1]]
        print()
        if failed:
            print(color("1;31", f"Demo FAILED ({len(failed)} of {len(self.results)} checks): "
                                + "; ".join(f"{s}: {d}" for s, _, d in failed)))
            return 1
        print(color("1;32", f"Demo passed: {len(self.results)} checks in "
                            f"{time.monotonic() - t0:.1f} s."))
        return 0

    def steps(self):
        rules = os.path.join(REPO, "rules", "default.rules")
        heading(1, "Build the lab")
        say("client 198.51.100.10  --veth--  fw 198.51.100.1 | 203.0.113.1  --veth--  "
            "server 203.0.113.10")
        say("fw forwards; rules/gateway.iptables sends every forwarded TCP segment to "
            "NFQUEUE 0;")
        say("seqwall runs in fw with rules/default.rules (inbound open: 22, 80, 443 and ping).")
        self.lab = lab.Lab(lab.GATEWAY, rules, server_ports=(22, 80, 443, 8080),
                           client_ports=(5000,))
        self.lab.build()
        self.lab.start_daemon()
        say(f"namespaces: {', '.join(self.lab.ns.values())}; seqwall pid "
            f"{self.lab.daemon.proc.pid}, queue 0 bound: "
            f"{0 in self.lab.daemon.bound_queues()}")
        self.result("lab", 0 in self.lab.daemon.bound_queues(), "seqwall is up and holds queue 0")
        client, server = self.lab.client4, self.lab.server4

        heading(2, "Allowed inbound connection: client -> server port 80")
        before = self.stats()
        with self.lab.connect("client", server, 80) as c:
            if not c.connected:
                self.result("inbound 80", False, f"connect failed: {c.error}")
            else:
                say(f"connected {client}:{c.sport} -> {server}:80")
                msg = b"GET / HTTP/1.0 (from the outside)"
                reply = c.send(msg)
                say(f"client sent  {msg.decode()!r}")
                say(f"client got   {reply.decode(errors='replace')!r}")
                c.close()
                after = self.stats()
                seen = after["packets"]["seen"] - before["packets"]["seen"]
                ok = reply == b"echo:" + msg and seen >= 6
                self.result("inbound 80", ok, f"data went both ways; seqwall checked {seen} "
                                              f"segments of it")

        heading(3, "Inbound SYN to port 8080 (not open): dropped")
        before = self.stats()
        with self.lab.connect("client", server, 8080, timeout=2.0) as c:
            if c.connected:
                self.result("blocked 8080", False, "the connection went through")
            else:
                after = self.stats()
                rule = lab.drops(after, "rule") - lab.drops(before, "rule")
                accepted = len(self.lab.server.accepts(8080))
                say(f"client connect(): {c.error} after 2 s; the server (listening on 8080) "
                    f"accepted {accepted} connections")
                ok = c.error == "timeout" and rule >= 1 and accepted == 0 \
                    and not self.lab.probe.segments(dport=8080)
                self.result("blocked 8080", ok, f"seqwall dropped {rule} SYN(s), reason `rule`")

        heading(4, "Outbound connection: server -> client port 5000")
        before = self.stats()
        with self.lab.connect("server", client, 5000) as c:
            if not c.connected:
                self.result("outbound", False, f"connect failed: {c.error}")
            else:
                msg = b"hello from the inside"
                reply = c.send(msg)
                say(f"connected {server}:{c.sport} -> {client}:5000, got "
                    f"{reply.decode(errors='replace')!r}")
                c.close()
                after = self.stats()
                seen = after["packets"]["seen"] - before["packets"]["seen"]
                self.result("outbound", reply == b"echo:" + msg and seen >= 6,
                            f"data went both ways (default out pass); seqwall checked {seen} "
                            f"segments")

        heading(5, "Hand-made NULL and Xmas segments (scapy) to server port 80")
        problem = lab.scapy_problem()
        if problem:
            self.result("bad flags", False, problem)
        else:
            before = self.stats()
            sports = [45001, 45002]
            self.lab.craft([
                {"family": 4, "dst": server, "sport": sports[0], "dport": 80, "flags": ""},
                {"family": 4, "dst": server, "sport": sports[1], "dport": 80, "flags": "FPU"},
            ])
            say("sent TCP flags=none (NULL) and flags=FIN|PSH|URG (Xmas)")
            lab.wait_for(lambda: lab.drops(self.stats(), "bad-flags")
                         >= lab.drops(before, "bad-flags") + 2, 3)
            time.sleep(0.3)
            after = self.stats()
            bad = lab.drops(after, "bad-flags") - lab.drops(before, "bad-flags")
            arrived = self.lab.probe.segments(dport=80, sports=set(sports))
            say(f"arrived at the server: {len(arrived)}")
            self.result("bad flags", bad == 2 and not arrived,
                        f"seqwall dropped {bad} of 2, reason `bad-flags`")

        heading(6, "The connection table: seqwall conntrack list")
        with self.lab.connect("client", server, 443) as c:
            if c.connected:
                c.send(b"still open")
                say(f"(holding {client}:{c.sport} -> {server}:443 open)")
            text = self.lab.daemon.cli(["conntrack", "list"]).stdout
            show(text)
            ok = c.connected and any(" ESTABLISHED " in ln and "dport=443" in ln
                                     for ln in text.splitlines())
            self.result("table", ok, "the open connection is listed ESTABLISHED; closed ones "
                                     "wait in TIME_WAIT")
            if c.connected:
                c.close()

        heading(7, "Counters: seqwall stats")
        cp = self.lab.daemon.cli(["stats", "-o", "text"], check=False)
        show(cp.stdout or cp.stderr)
        self.result("stats", cp.returncode == 0, "counters printed")

    def cleanup(self):
        if self.lab is None:
            return
        heading(8, "Clean up")
        d = self.lab.daemon
        if d is not None and d.running():
            rc = d.stop()
            bound = 0 in d.bound_queues()
            self.result("stop", rc == 0 and not bound,
                        f"seqwall stopped on SIGTERM with exit code {rc}; queue 0 "
                        f"{'still bound' if bound else 'released'}")
        self.lab.destroy()
        lab.REGISTRY.cleanup_all()
        say("namespaces and processes removed")


if __name__ == "__main__":
    sys.exit(Demo().run())
