#!/usr/bin/env python3
"""The same block list in nft and ipset, beside seqwall's tables (BENCHMARKS.md, Address tables
and the rule index). Needs root; everything happens in a network namespace of its own, removed
at the end even on failure; the root namespace's firewall is never touched.

    compare_sets.py DROP_TXT [--packets N] [--rounds R] [--skip-nft] [--skip-ipset]

DROP_TXT is the 1.2M-line file `table-profile DIR` writes (DIR/drop.txt): one prefix a line,
`!prefix` an exception. For each of nft (a `flags interval` set per family) and ipset (hash:net
per family, exceptions as `nomatch` entries) it prints the load time, the memory the kernel
reports or, for nft, the growth of the kernel's unreclaimable slab, and, when the C sender is
built, the CPU time per datagram of a bounded spray of UDP datagrams to random IPv4 addresses
through the output hook with and without a rule that looks the set up.

nft sets have no exceptions: the prefixes are flattened into the ranges of addresses that are
in the table (where the most specific entry is not an exception), which nft then stores as it
stores any interval set. The flattening is seqwall's own (PrefixMatcher) redone here in Python.
"""

import argparse
import ipaddress
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
NS = f"tbsets{os.getpid()}"


def run(argv, **kwargs):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


def ns(argv, **kwargs):
    return run(["ip", "netns", "exec", NS] + argv, **kwargs)


def read_entries(path):
    """(family, network int, prefix length, exception) per line."""
    entries = []
    with open(path) as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            negated = line.startswith("!")
            network = ipaddress.ip_network(line.lstrip("!"), strict=True)
            entries.append((network.version, int(network.network_address), network.prefixlen, negated))
    return entries


def ranges(entries, bits):
    """The ranges (first, last) of addresses whose most specific entry is not an exception:
    nested or disjoint prefixes, walked in order with a stack of the ones around the cursor."""
    spans = sorted(((start, length, not negated) for start, length, negated in entries),
                   key=lambda s: (s[0], s[1], not s[2]))
    out = []
    stack = []
    cursor = 0
    top_address = (1 << bits) - 1

    def emit(first, last, member):
        if member and first <= last:
            if out and out[-1][1] + 1 == first:
                out[-1] = (out[-1][0], last)
            else:
                out.append((first, last))

    def end_of(span):
        return span[0] + (1 << (bits - span[1])) - 1

    for span in spans:
        start = span[0]
        while stack and end_of(stack[-1]) < start:
            top = stack.pop()
            if cursor <= end_of(top):
                emit(cursor, end_of(top), top[2])
                cursor = end_of(top) + 1
        if start > cursor:
            emit(cursor, start - 1, stack[-1][2] if stack else False)
            cursor = start
        stack.append(span)
    while stack:
        top = stack.pop()
        if cursor <= end_of(top) <= top_address:
            emit(cursor, end_of(top), top[2])
            cursor = end_of(top) + 1
    return out


def slab_unreclaimable():
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("SUnreclaim:"):
                return int(line.split()[1]) * 1024
    return 0


def text(value, version):
    return str(ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value))


def spray_rounds(spray, packets, rounds, setups):
    """Alternates the setups round by round; the median CPU ns per datagram of each."""
    results = {name: [] for name, _ in setups}
    for _ in range(rounds):
        for name, install in setups:
            install()
            results[name].append(float(ns([spray, str(packets)]).stdout.strip()))
    return {name: statistics.median(values) for name, values in results.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("drop")
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-nft", action="store_true")
    parser.add_argument("--skip-ipset", action="store_true")
    args = parser.parse_args()

    entries = read_entries(args.drop)
    v4 = [(a, l, n) for v, a, l, n in entries if v == 4]
    v6 = [(a, l, n) for v, a, l, n in entries if v == 6]
    print(f"entries: {len(v4)} IPv4 + {len(v6)} IPv6 ({sum(1 for e in entries if e[3])} exceptions)")
    spray = os.path.join(tempfile.gettempdir(), f"udp_spray.{os.getpid()}")
    subprocess.run(["cc", "-O2", "-o", spray, os.path.join(HERE, "udp_spray.c")], check=True)

    run(["ip", "netns", "add", NS])
    try:
        ns(["ip", "link", "set", "lo", "up"])
        # A veth whose peer stays down: datagrams pass the output hook and are dropped at once
        # by the veth driver (no neighbour lookup: no ARP on it).
        ns(["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1"])
        ns(["ip", "link", "set", "v0", "arp", "off", "up"])
        ns(["ip", "addr", "add", "10.255.0.1/32", "dev", "v0"])
        ns(["ip", "route", "add", "default", "dev", "v0"])

        def clear():
            """Takes out whichever rule a setup put in (each may be absent)."""
            for argv in (["nft", "delete", "table", "inet", "cmp"], ["nft", "delete", "chain", "inet", "sets", "out"],
                         ["iptables", "-F", "OUTPUT"]):
                subprocess.run(["ip", "netns", "exec", NS] + argv, capture_output=True)

        def no_set():
            clear()
            ns(["nft", "-f", "-"], input="table inet cmp {\n chain out { type filter hook output priority 0; "
                                         "policy accept;\n  ip daddr 192.0.2.1 counter\n }\n}\n")

        def nft_set():
            clear()
            ns(["nft", "add chain inet sets out { type filter hook output priority 0; policy accept; }"])
            ns(["nft", "add rule inet sets out ip daddr @drop4 counter"])

        def ipset_set():
            clear()
            ns(["iptables", "-A", "OUTPUT", "-m", "set", "--match-set", "drop4", "dst"])

        setups = [("no set (one address compared)", no_set)]

        if not args.skip_nft:
            r4 = ranges(v4, 32)
            r6 = ranges(v6, 128)
            print(f"nft: {len(r4)} IPv4 + {len(r6)} IPv6 ranges after flattening the exceptions")

            def elements(rs, version):
                return ", ".join(text(a, version) if a == b else f"{text(a, version)}-{text(b, version)}" for a, b in rs)
            with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as fh:
                fh.write("table inet sets {\n"
                         f" set drop4 {{ type ipv4_addr; flags interval; elements = {{ {elements(r4, 4)} }} }}\n"
                         f" set drop6 {{ type ipv6_addr; flags interval; elements = {{ {elements(r6, 6)} }} }}\n"
                         "}\n")
                nft_file = fh.name
            try:
                before = slab_unreclaimable()
                start = time.monotonic()
                ns(["nft", "-f", nft_file], timeout=1200)
                load = time.monotonic() - start
                time.sleep(2)
                grown = slab_unreclaimable() - before
                print(f"nft: loaded in {load:.2f} s; kernel unreclaimable slab grew {grown / 2**20:.1f} MiB "
                      f"({grown / len(entries):.0f} B per prefix, {grown / (len(r4) + len(r6)):.0f} B per range)")
            finally:
                os.unlink(nft_file)
            setups.append(("nft: ip daddr @drop4 (interval set)", nft_set))

        if not args.skip_ipset:
            with tempfile.NamedTemporaryFile("w", suffix=".ipset", delete=False) as fh:
                fh.write(f"create drop4 hash:net family inet hashsize {1 << 20} maxelem {2 * len(v4)}\n")
                fh.write(f"create drop6 hash:net family inet6 hashsize {1 << 18} maxelem {2 * len(v6)}\n")
                for version, items, name in ((4, v4, "drop4"), (6, v6, "drop6")):
                    for address, length, negated in items:
                        fh.write(f"add {name} {text(address, version)}/{length}{' nomatch' if negated else ''}\n")
                ipset_file = fh.name
            try:
                before = slab_unreclaimable()
                start = time.monotonic()
                with open(ipset_file) as restore:
                    ns(["ipset", "restore", "-exist"], stdin=restore, timeout=1200)
                load = time.monotonic() - start
                time.sleep(2)
                grown = slab_unreclaimable() - before
                sizes = 0
                for name in ("drop4", "drop6"):
                    for line in ns(["ipset", "list", "-t", name]).stdout.splitlines():
                        if line.startswith("Size in memory:"):
                            sizes += int(line.split(":")[1])
                print(f"ipset: loaded in {load:.2f} s; ipset list -t: {sizes / 2**20:.1f} MiB "
                      f"({sizes / len(entries):.0f} B per prefix); kernel unreclaimable slab grew {grown / 2**20:.1f} MiB")
            finally:
                os.unlink(ipset_file)

            setups.append(("ipset: -m set --match-set drop4 dst (hash:net)", ipset_set))

        if args.packets > 0:
            medians = spray_rounds(spray, args.packets, args.rounds, setups)
            baseline = medians[setups[0][0]]
            print(f"CPU ns per datagram sent through the output hook ({args.packets} datagrams to random IPv4 "
                  f"addresses, median of {args.rounds} alternating rounds):")
            for name, value in medians.items():
                print(f"  {name}: {value:.0f} ns ({value - baseline:+.0f} ns against no set)")
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
        if os.path.exists(spray):
            os.unlink(spray)


if __name__ == "__main__":
    sys.exit(main())
