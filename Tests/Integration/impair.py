"""An impaired path for the lab, since this kernel has no netem: a small NFQUEUE program that
reorders, duplicates and drops TCP packets, each decision drawn from a seeded generator.

  /usr/bin/python3 impair.py --queue N --seed S [--reorder P] [--duplicate P] [--drop P]
                             [--max-delay-ms D] [--lifetime SECONDS] [--log FILE]

It runs inside one lab namespace and serves queue N of that namespace, which the test fills
with the namespace's own outgoing TCP (`iptables -t mangle -A OUTPUT -p tcp -m mark ! --mark
0x1/0x1 -j NFQUEUE --queue-num N`, and the same with ip6tables): every packet the endpoint
sends goes through it before it reaches the firewall. For each packet, in the order they come,
the generator decides, with the probabilities given:

  drop       the verdict is NF_DROP;
  reorder    the packet is held for 1..D ms while later packets pass (verdicts are given by
             packet id, in any order), then accepted;
  duplicate  the packet is accepted, and a copy of it is sent again 1..D ms later through a
             raw socket whose packets carry mark 0x1, so the copy is not queued again.

The decisions are a function of the seed and the packet's position in the stream: the same
seed gives the same impairment for the same traffic. The program exits by itself after
--lifetime seconds (what it still holds is let go first) and on SIGTERM (what it holds is
then dropped with the queue). It prints "ready" once the queue is bound, and writes one line per impaired packet
to --log (`drop|hold|dup family src sport dst dport flags seq`).

Only the standard library and libnetfilter_queue (ctypes) are used.
"""

import argparse
import ctypes
import ctypes.util
import heapq
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NF_DROP, NF_ACCEPT = 0, 1
NFQNL_COPY_PACKET = 2
SO_MARK = 36
DUPLICATE_MARK = 0x1

CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                            ctypes.c_void_p)


class PacketHeader(ctypes.Structure):
    """struct nfqnl_msg_packet_hdr (packed): packet_id is big-endian."""
    _pack_ = 1
    _fields_ = [("packet_id", ctypes.c_uint32), ("hw_protocol", ctypes.c_uint16),
                ("hook", ctypes.c_uint8)]


def load_library():
    name = ctypes.util.find_library("netfilter_queue") or "libnetfilter_queue.so.1"
    lib = ctypes.CDLL(name, use_errno=True)
    lib.nfq_open.restype = ctypes.c_void_p
    lib.nfq_close.argtypes = [ctypes.c_void_p]
    lib.nfq_bind_pf.argtypes = [ctypes.c_void_p, ctypes.c_uint16]
    lib.nfq_create_queue.restype = ctypes.c_void_p
    lib.nfq_create_queue.argtypes = [ctypes.c_void_p, ctypes.c_uint16, CALLBACK, ctypes.c_void_p]
    lib.nfq_destroy_queue.argtypes = [ctypes.c_void_p]
    lib.nfq_set_mode.argtypes = [ctypes.c_void_p, ctypes.c_uint8, ctypes.c_uint32]
    lib.nfq_set_queue_maxlen.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.nfq_fd.argtypes = [ctypes.c_void_p]
    lib.nfq_handle_packet.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.nfq_get_msg_packet_hdr.restype = ctypes.POINTER(PacketHeader)
    lib.nfq_get_msg_packet_hdr.argtypes = [ctypes.c_void_p]
    lib.nfq_get_payload.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte))]
    lib.nfq_set_verdict.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32,
                                    ctypes.c_uint32, ctypes.c_void_p]
    return lib


def describe(packet):
    """family src sport dst dport flags seq, for the log."""
    if packet and packet[0] >> 4 == 4 and len(packet) >= 40:
        ihl = (packet[0] & 0x0F) * 4
        src, dst = socket.inet_ntop(socket.AF_INET, packet[12:16]), socket.inet_ntop(
            socket.AF_INET, packet[16:20])
        tcp, family = packet[ihl:], 4
    elif packet and packet[0] >> 4 == 6 and len(packet) >= 60:
        src, dst = socket.inet_ntop(socket.AF_INET6, packet[8:24]), socket.inet_ntop(
            socket.AF_INET6, packet[24:40])
        tcp, family = packet[40:], 6
    else:
        return "? - - - - - -"
    sport, dport, seq = struct.unpack("!HHI", tcp[:8])
    return f"{family} {src} {sport} {dst} {dport} {tcp[13]:#04x} {seq}"


class Impairment:
    def __init__(self, args, log):
        self.rng = random.Random(args.seed)
        self.args = args
        self.log = log
        self.lib = load_library()
        self.timers = []     # (due, order, kind, value), a heap
        self.order = 0
        self.raw4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
        for s in (self.raw4, self.raw6):
            s.setsockopt(socket.SOL_SOCKET, SO_MARK, DUPLICATE_MARK)
        self.callback = CALLBACK(self.on_packet)   # kept: ctypes must not free it
        self.handle = self.lib.nfq_open()
        if not self.handle:
            raise OSError(ctypes.get_errno(), "nfq_open failed")
        for family in (socket.AF_INET, socket.AF_INET6):
            self.lib.nfq_bind_pf(self.handle, family)
        self.queue = self.lib.nfq_create_queue(self.handle, args.queue, self.callback, None)
        if not self.queue:
            raise OSError(ctypes.get_errno(), f"nfq_create_queue({args.queue}) failed")
        if self.lib.nfq_set_mode(self.queue, NFQNL_COPY_PACKET, 0xFFFF) < 0:
            raise OSError(ctypes.get_errno(), "nfq_set_mode failed")
        self.lib.nfq_set_queue_maxlen(self.queue, 8192)
        self.fd = self.lib.nfq_fd(self.handle)
        # A second handle on the netlink socket, for recv; the library keeps its own.
        self.sock = socket.socket(fileno=os.dup(self.fd))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)

    def later(self, kind, value):
        delay = self.rng.randint(1, self.args.max_delay_ms) / 1000.0
        self.order += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self.order, kind, value))

    def verdict(self, packet_id, verdict):
        self.lib.nfq_set_verdict(self.queue, packet_id, verdict, 0, None)

    def on_packet(self, queue, message, data, context):
        header = self.lib.nfq_get_msg_packet_hdr(data)
        packet_id = socket.ntohl(header.contents.packet_id)
        payload = ctypes.POINTER(ctypes.c_ubyte)()
        length = self.lib.nfq_get_payload(data, ctypes.byref(payload))
        packet = bytes(payload[:length]) if length > 0 else b""
        # Three draws for every packet, whatever is decided: the position in the stream, not
        # the outcome of earlier draws, fixes what happens to each packet.
        drop, reorder, duplicate = (self.rng.random() for _ in range(3))
        if drop < self.args.drop:
            self.log.write(f"drop {describe(packet)}\n")
            self.verdict(packet_id, NF_DROP)
        elif reorder < self.args.reorder:
            self.log.write(f"hold {describe(packet)}\n")
            self.later("release", packet_id)
        else:
            self.verdict(packet_id, NF_ACCEPT)
            if duplicate < self.args.duplicate and packet:
                self.log.write(f"dup {describe(packet)}\n")
                self.later("copy", packet)
        return 0

    def fire(self, kind, value):
        if kind == "release":
            self.verdict(value, NF_ACCEPT)
            return
        try:
            if value[0] >> 4 == 6:
                self.raw6.sendto(value, (socket.inet_ntop(socket.AF_INET6, value[24:40]), 0))
            else:
                self.raw4.sendto(value, (socket.inet_ntop(socket.AF_INET, value[16:20]), 0))
        except OSError as e:
            self.log.write(f"copy not sent: {e}\n")

    def run(self, deadline):
        buffer = ctypes.create_string_buffer(0x20000)
        view = memoryview(buffer).cast("B")
        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        while time.monotonic() < deadline:
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, kind, value = heapq.heappop(self.timers)
                self.fire(kind, value)
            wait = min(deadline, self.timers[0][0] if self.timers else deadline) - time.monotonic()
            if not poller.poll(max(0, int(wait * 1000)) + 1):
                continue
            try:
                size = self.sock.recv_into(view)
            except OSError as e:   # ENOBUFS: the kernel could not deliver some packets
                self.log.write(f"recv: {e}\n")
                continue
            if size > 0:
                self.lib.nfq_handle_packet(self.handle, buffer, size)
            self.log.flush()
        # Whatever is still held passes: the lifetime ends the impairment, not the traffic.
        for _, _, kind, value in sorted(self.timers, key=lambda t: (t[0], t[1])):
            self.fire(kind, value)
        self.log.flush()


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--queue", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--reorder", type=float, default=0.0)
    parser.add_argument("--duplicate", type=float, default=0.0)
    parser.add_argument("--drop", type=float, default=0.0)
    parser.add_argument("--max-delay-ms", type=int, default=30)
    parser.add_argument("--lifetime", type=float, default=120.0)
    parser.add_argument("--log", default=os.devnull)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    with open(args.log, "w") as log:
        impairment = Impairment(args, log)
        print("ready", flush=True)
        impairment.run(time.monotonic() + args.lifetime)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
