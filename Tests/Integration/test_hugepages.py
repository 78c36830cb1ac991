"""The connection table on huge pages (docs/operations.md, Tuning): `seqwall run` maps each of
the table's large arrays fresh and advises the kernel to back it with transparent huge pages
(madvise(MADV_HUGEPAGE), HugePageRegions), so that lookups at many connections do not pay a TLB
miss each.

The daemon runs in the gateway lab with the default `limit states 262144`: an index of 2^19
eight-byte entries (4 MiB, initialised at start) and 262,144 connection slots (40 MiB,
touched as connections arrive). Its /proc/PID/smaps must show mappings advised for huge pages
(VmFlags `hg`) that cover both arrays, and, unless the kernel's transparent huge pages are
off, the index already on huge pages. Then traffic still passes.

With an address table whose lookup arrays can hold a huge page, those arrays get a mapping of
their own too (PrefixMatcher's LookupRegion, through the same provider): the advised mappings
then cover the table's arrays beside the connection table's, and both the index and the
table's arrays (written when the table is built) are on huge pages. (When these were aligned
blocks of the C heap, advised the same way, the index made after the table's build was not:
glibc handed out again memory the build had faulted in as small pages, and advice does not
change pages already there.)
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lab import GATEWAY, Lab, LabTestCase, RULES_DIR, rules_dir  # noqa: E402

INDEX_BYTES = (1 << 19) * 8
SLOT_BYTES = 262144 * 160
# A drop file of IPv6 hosts two apart: each is a run of its own, two flips of 16 bytes, so the
# table's lookup arrays take 3.2 MiB beside a 256 KiB directory.
TABLE_HOSTS = 100_000
TABLE_LOOKUP_BYTES = TABLE_HOSTS * 2 * 16
HUGE_PAGE = 2 << 20


def smaps(pid):
    """(size in bytes, VmFlags, AnonHugePages in bytes) of each mapping of process pid."""
    mappings = []
    current = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if not fields:
                continue
            if "-" in fields[0] and not fields[0].endswith(":"):
                start, end = (int(x, 16) for x in fields[0].split("-"))
                current = {"size": end - start, "flags": [], "huge": 0}
                mappings.append(current)
            elif fields[0] == "VmFlags:":
                current["flags"] = fields[1:]
            elif fields[0] == "AnonHugePages:":
                current["huge"] = int(fields[1]) * 1024
    return mappings


def transparent_huge_pages_mode():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.index("[") + 1:text.index("]")] if "[" in text else None


class HugePagesTest(LabTestCase):
    MODE = GATEWAY
    RULES = os.path.join(RULES_DIR, "gateway.rules")
    SERVER_PORTS = (8080,)

    def test_table_arrays_are_advised_and_backed_by_huge_pages(self):
        mode = transparent_huge_pages_mode()
        if mode is None:
            self.skipTest("this kernel has no transparent huge pages")
        pid = self.lab.daemon.proc.pid
        mappings = smaps(pid)
        advised = [m for m in mappings if "hg" in m["flags"]]
        advised_bytes = sum(m["size"] for m in advised)
        # madvise splits mappings at the advised range: the advised ones are the two arrays
        # (rounded to pages), whatever else the process has mapped.
        self.assertGreaterEqual(advised_bytes, INDEX_BYTES + SLOT_BYTES,
                                f"advised mappings: {[(m['size'], m['flags']) for m in advised]}")
        self.assertTrue(any(m["size"] >= SLOT_BYTES for m in advised), "the slots are not advised")
        if mode != "never":
            # The index was initialised after the advice: its 4 MiB, 2 MiB-aligned, were
            # faulted in as huge pages.
            huge = sum(m["huge"] for m in advised)
            self.assertGreaterEqual(huge, INDEX_BYTES, f"only {huge} bytes on huge pages (mode {mode})")

    def test_traffic_still_passes(self):
        for family in (4, 6):
            server = self.lab.server_addr(family)
            with self.lab.connect("client", server, 8080, timeout=5.0) as conn:
                self.assertTrue(conn.connected, f"connect to [{server}]:8080 failed: {conn.error}")
                self.assertEqual(conn.send(b"hello huge pages"), b"echo:hello huge pages")
                self.assertEqual(conn.close(), b"")


class TableHugePagesTest(LabTestCase):
    """A 100,000-host table: its lookup arrays are advised as well as the connection table's."""
    MODE = GATEWAY
    SERVER_PORTS = (8080,)
    CLIENT_PORTS = ()

    @classmethod
    def make_lab(cls):
        directory = rules_dir("seqwall-hugepages-")
        with open(os.path.join(directory, "drop.txt"), "w") as fh:
            fh.write("".join(f"2001:db8:fffe::{2 * n >> 16:x}:{2 * n & 0xFFFF:x}\n" for n in range(TABLE_HOSTS)))
        rules = os.path.join(directory, "hugepages.rules")
        with open(rules, "w") as fh:
            fh.write("inside 203.0.113.0/24, 2001:db8:2::/64\n"
                     "table <drop> file \"drop.txt\"\n"
                     "default in block\n"
                     "default out pass\n"
                     "block in tcp from <drop>\n"
                     "pass in tcp to port 8080\n"
                     "set pickup grace 0\n")
        return Lab(cls.MODE, rules, server_ports=cls.SERVER_PORTS, client_ports=cls.CLIENT_PORTS)

    def test_table_lookup_arrays_are_advised_and_on_huge_pages(self):
        mode = transparent_huge_pages_mode()
        if mode is None:
            self.skipTest("this kernel has no transparent huge pages")
        advised = [m for m in smaps(self.lab.daemon.proc.pid) if "hg" in m["flags"]]
        advised_bytes = sum(m["size"] for m in advised)
        self.assertGreaterEqual(advised_bytes, INDEX_BYTES + SLOT_BYTES + TABLE_LOOKUP_BYTES,
                                f"advised mappings: {[(m['size'], m['flags']) for m in advised]}")
        if mode != "never":
            # Before any connection: the index (initialised) and the table's whole huge pages
            # (written at build); the slots are not touched yet.
            huge = sum(m["huge"] for m in advised)
            table_huge = TABLE_LOOKUP_BYTES // HUGE_PAGE * HUGE_PAGE
            self.assertGreaterEqual(huge, INDEX_BYTES + table_huge, f"only {huge} bytes on huge pages (mode {mode})")

    def test_unlisted_source_passes(self):
        server = self.lab.server_addr(6)
        with self.lab.connect("client", server, 8080, timeout=5.0) as conn:
            self.assertTrue(conn.connected, f"connect to [{server}]:8080 failed: {conn.error}")
            self.assertEqual(conn.send(b"not listed"), b"echo:not listed")
            self.assertEqual(conn.close(), b"")
