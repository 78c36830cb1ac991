"""Hostile sync messages sent to running seqwall nodes (docs/sync-protocol.md, Replay), real
datagrams on the lab's sync link.

test_sync.py's two-node lab. Genuine sync datagrams are captured off the sync link (AF_PACKET
in A's namespace) while a connection through A is synced to B, then the connection is closed
and deleted on both. Then, from each node's namespace as the other node's address and port (raw
Ethernet frames, so that the source is exactly the peer), a barrage: the captured messages
replayed, their bodies sealed with another key, sealed with the right key under another wire
version, a captured one with a flipped bit, and messages cut short (a few bytes, the header
only, a genuine one cut short). Every one must be refused and counted under its reason, the
deleted connection must not come back on either node, both nodes stay in sync with each other,
and a connection through A carries data both ways throughout with no drop.
"""

import json
import os
import random
import struct
import time
import unittest

import lab
import syncwire
from test_sync import SYNC_PORT, IPv6SyncLink, SyncLab

WIRE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "syncwire.py")
KIND_CONNECTIONS = 1
KIND_COMPACT_CONNECTIONS = 9
ROUNDS = 16
ENTRY_LENGTH = 1 + 152


class SyncRefusalMixin(SyncLab):

    def refused(self, node):
        return dict(self.sync_status(node)["refused"])

    def total_drops(self, node):
        return sum(node.stats().get("drops", {}).values())

    def capture(self, ns, out_path):
        proc = lab.spawn(ns, [lab.PY, WIRE, "capture", "sync0", str(SYNC_PORT), out_path],
                         os.path.join(self.lab.workdir, "syncwire.stderr"))
        line = lab.LineReader(proc.stdout).readline(15)
        if line is None or "listening" not in line:
            lab.REGISTRY.kill_proc(proc)
            self.fail(f"the capture did not start: {line!r}")
        return proc

    def captured(self, path):
        with open(path) as f:
            return [json.loads(line) for line in f if line.endswith("\n")]

    def upsert_count(self, kind, body):
        """Upsert entries in a connections body, plain or compact (docs/sync-protocol.md,
        Bodies, Compact entries: each compact entry starts with its length, then its operation)."""
        count = struct.unpack("!H", body[12:14])[0]
        if kind == KIND_CONNECTIONS:
            self.assertEqual(len(body), 14 + count * ENTRY_LENGTH, "a connections body of another layout")
            return sum(1 for i in range(count) if body[14 + i * ENTRY_LENGTH] == 1)
        at, upserts = 14, 0
        for _ in range(count):
            upserts += body[at + 1] == 1
            at += 1 + body[at]
        self.assertEqual(at, len(body), "a compact connections body of another layout")
        return upserts

    def hostile(self, genuine, bodies, key):
        """The barrage's datagrams built from genuine ones (this sender's, captured) and
        connection bodies, with the reason each must be refused for."""
        wrong = os.urandom(32)
        epoch = int(time.time())
        out = []
        for message in genuine:
            out.append((message, "replay"))
        for kind, body in bodies:
            out.append((syncwire.seal_message(wrong, body, kind, random.randrange(1, 2**32),
                                              epoch, 1), "authentication"))
            out.append((syncwire.seal_message(key, body, kind, random.randrange(1, 2**32),
                                              epoch, 1, version=2), "version"))
        sample = genuine[-1]
        flipped = bytearray(sample)
        flipped[len(flipped) // 2] ^= 0x01
        out += [(bytes(flipped), "authentication"),
                (sample[:-7], "authentication"),
                (sample[:syncwire.HEADER_LENGTH], "truncated"),
                (sample[:30], "truncated"),
                (sample[:5], "truncated")]
        return out

    def test_hostile_messages_are_refused_counted_and_never_applied(self):
        self.wait_both_in_sync()
        node_a, node_b = self.lab.daemon, self.node_b
        with open(self.key, "rb") as f:
            key = f.read()
        wire_path = os.path.join(self.lab.workdir, "sync-wire.jsonl")
        capture = self.capture(node_a.ns, wire_path)
        try:
            # Genuine traffic: a connection through A, synced to B, captured on its way.
            conn = self.lab.connect("client", self.lab.server_addr(4), 8080)
            self.assertTrue(conn.connected, conn.error)
            self.assertEqual(conn.send(b"hello"), b"echo:hello")
            sport = conn.sport
            self.assertTrue(lab.wait_for(lambda: (self.flow(node_b, sport) or {}).get("state") == "ESTABLISHED",
                                         10, 0.2), f"B never showed the connection: {self.flow(node_b, sport)}")
            conn.close()
            # B's alive messages to A, at least one a second, to replay to A.
            self.assertTrue(lab.wait_for(lambda: sum(1 for f in self.captured(wire_path) if not f["out"]) >= 2,
                                         10, 0.2), "no sync message from B captured")
            self.assertTrue(lab.wait_for(lambda: self.flow(node_b, sport) is not None
                                         and self.flow(node_b, sport)["state"] != "ESTABLISHED", 10, 0.2))
            frames = self.captured(wire_path)
        finally:
            lab.REGISTRY.kill_proc(capture)
        node_a.cli(["conntrack", "delete", "-p", "tcp", "--sport", str(sport)])
        self.assertTrue(lab.wait_for(lambda: self.flow(node_b, sport) is None, 10, 0.2),
                        "B kept a connection A deleted")

        a_to_b = [bytes.fromhex(f["frame"]) for f in frames if f["out"]]
        b_to_a = [bytes.fromhex(f["frame"]) for f in frames if not f["out"]]
        # Plain or compact: two nodes of this release send the compact kind once each has said
        # it reads it.
        upserts = [syncwire.datagram(f) for f in a_to_b
                   if syncwire.header_fields(syncwire.datagram(f))[1] in (KIND_CONNECTIONS, KIND_COMPACT_CONNECTIONS)]
        self.assertTrue(upserts, "no connections message captured from A")
        bodies = [(syncwire.header_fields(m)[1], syncwire.open_message(key, m)) for m in upserts]
        self.assertGreater(sum(self.upsert_count(kind, b) for kind, b in bodies), 0,
                           "the captured messages hold no upsert")
        from_b = [syncwire.datagram(f) for f in b_to_a][-3:]

        # To B as A: A's own upserts of the deleted connection replayed, and the rest.
        to_b = self.hostile(upserts, bodies, key)
        # To A as B: B's messages replayed, the same bodies (A's connection) forged.
        to_a = self.hostile(from_b, bodies, key)
        expected = {}
        for name, plan in (("a", to_a), ("b", to_b)):
            counts = {}
            for _, reason in plan:
                counts[reason] = counts.get(reason, 0) + ROUNDS
            expected[name] = counts
        frames_b = [syncwire.with_payload(a_to_b[0], m) for m, _ in to_b] * ROUNDS
        frames_a = [syncwire.with_payload(b_to_a[0], m) for m, _ in to_a] * ROUNDS

        before = {"a": self.refused(node_a), "b": self.refused(node_b)}
        drops_before = self.total_drops(node_a)
        exchanges = {4: 0, 6: 0}
        with self.lab.connect("client", self.lab.server_addr(4), 8080) as live4, \
                self.lab.connect("client", self.lab.server_addr(6), 8080) as live6:
            self.assertTrue(live4.connected and live6.connected, (live4.error, live6.error))
            senders = []
            for ns, batch in ((node_a.ns, frames_b), (node_b.ns, frames_a)):
                proc = lab.spawn(ns, [lab.PY, WIRE, "send", "sync0", "0.004"],
                                 os.path.join(self.lab.workdir, "syncwire.stderr"), stdin=True)
                proc.stdin.write(json.dumps([f.hex() for f in batch]).encode())
                proc.stdin.close()
                senders.append(proc)
            try:
                deadline = time.monotonic() + 60
                while any(p.poll() is None for p in senders) and time.monotonic() < deadline:
                    for family, conn in ((4, live4), (6, live6)):
                        payload = f"during-{exchanges[family]}".encode()
                        self.assertEqual(conn.send(payload), b"echo:" + payload)
                        exchanges[family] += 1
                for proc in senders:
                    self.assertEqual(proc.wait(timeout=10), 0, "a sender failed (syncwire.stderr)")
            finally:
                for proc in senders:
                    lab.REGISTRY.kill_proc(proc)
            for family, conn in ((4, live4), (6, live6)):
                self.assertEqual(conn.send(b"after"), b"echo:after")
        self.assertGreater(exchanges[4] + exchanges[6], 0)

        def delta(name, node):
            now = self.refused(node)
            return {reason: now.get(reason, 0) - before[name].get(reason, 0)
                    for reason in set(now) | set(before[name]) if now.get(reason, 0) != before[name].get(reason, 0)}

        for name, node in (("a", node_a), ("b", node_b)):
            with self.subTest(receiver=name):
                self.assertTrue(lab.wait_for(lambda: delta(name, node) == expected[name], 10, 0.2),
                                f"refused on {name}: {delta(name, node)}, expected {expected[name]}")
        # Counted the same in stats -o json and the metrics' source.
        self.assertEqual(node_b.stats()["sync"]["refused"], self.refused(node_b))
        # Nothing applied: the deleted connection is on neither node.
        self.assertIsNone(self.flow(node_a, sport))
        self.assertIsNone(self.flow(node_b, sport))
        # The packet path carried on without a drop.
        self.assertEqual(self.total_drops(node_a), drops_before, node_a.stats().get("drops"))
        # And the sync with the genuine peer carries on.
        self.wait_both_in_sync()
        with self.lab.connect("client", self.lab.server_addr(6), 8080) as after:
            self.assertTrue(after.connected, after.error)
            self.assertEqual(after.send(b"x"), b"echo:x")
            self.assertTrue(lab.wait_for(lambda: (self.flow(node_b, after.sport) or {}).get("state")
                                         == "ESTABLISHED", 10, 0.2), "B stopped following A")
        self.assertIn("refused", node_a.log_text())
        self.assertIn("refused", node_b.log_text())


class SyncRefusalOverIPv4Test(SyncRefusalMixin, lab.LabTestCase):
    pass


class SyncRefusalOverIPv6Test(IPv6SyncLink, SyncRefusalMixin, lab.LabTestCase):
    pass


if __name__ == "__main__":
    unittest.main()
