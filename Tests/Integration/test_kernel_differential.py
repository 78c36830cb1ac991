"""Differential test: seqwall against the Linux kernel's own conntrack, packet by packet.

Two gateway labs of lab.py, built once for the class:

  seqwall  client -- fw (seqwall, rules/differential.rules: every SYN may open) -- server
  kernel   client -- fw (rules/kernel-conntrack.iptables: conntrack INVALID is dropped, NEW
                         only with a SYN; nf_conntrack_tcp_loose=0, _be_liberal=0) -- server

In both, the client and the server are scapy agents (tcpagent.py): their kernels drop all
incoming TCP in the raw table, so only the scripted segments exist. Each scripted sequence
runs on both labs at once (one thread each) on a fresh 4-tuple; every segment is sent from its
side and its verdict is whether it arrives on the other side (AF_PACKET, bounded wait) before
the next segment is sent.

The verdicts must agree. The only exceptions are in DELIBERATE: each names the sequence, the
segment, both verdicts, seqwall's drop reason and why seqwall is stricter (docs/design.md,
Deliberate differences from the kernel),
and is asserted as exactly that difference. Each segment also carries the verdict the kernel
is expected to give (read from nf_conntrack_proto_tcp.c), so the test shows that the kernel
side really decided and that the sequence tests what it says.

Every sequence runs over IPv4 and IPv6.
"""

import concurrent.futures
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402
import tcpagent  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SEQWALL_RULES = os.path.join(HERE, "rules", "differential.rules")
KERNEL_IPTABLES = os.path.join(HERE, "rules", "kernel-conntrack.iptables")

SERVER_PORT = 7000
# Seconds a segment may take to cross a firewall. A segment that has not arrived by then is
# dropped; at the end of each sequence the observers' full logs are checked again, so a
# segment that was only late fails the test instead of passing as a drop.
ARRIVAL_WAIT = 1.5
ATTEMPTS = 3

PASS, DROP = "pass", "drop"
C, S = "client", "server"

# Linux's SYN options: MSS, SACK permitted, window scale 7.
SYN_OPTS = [["MSS", 1460], ["SAckOK", ""], ["WScale", 7]]
NO_WS_OPTS = [["MSS", 1460], ["SAckOK", ""]]
NO_SACK_OPTS = [["MSS", 1460], ["WScale", 7]]

A = 1_000_000      # the client's initial sequence number
B = 3_000_000      # the server's
M32 = 1 << 32


class Seg:
    """One scripted segment: who sends it, its header, and the kernel's expected verdict."""

    def __init__(self, side, flags, seq, ack=0, win=502, length=0, opts=None, expect=PASS,
                 note="", ext=None):
        self.side, self.flags, self.ext = side, flags, ext
        self.seq, self.ack = seq % M32, ack % M32
        self.win, self.length, self.opts = win, length, opts
        self.expect, self.note = expect, note

    def describe(self):
        return (f"{self.side:6} {self.flags or 'NULL':4} seq={self.seq} ack={self.ack} "
                f"win={self.win} len={self.length}"
                + (f" opts={self.opts}" if self.opts else "")
                + (f" ext={self.ext}" if self.ext else "") + (f"  ({self.note})"
                                                                  if self.note else ""))


def handshake(a=A, b=B, copts=SYN_OPTS, sopts=SYN_OPTS, cwin=64240, swin=65160, awin=502,
              cflags="S"):
    """SYN, SYN-ACK, ACK; afterwards the client sends from a+1 and the server from b+1."""
    return [Seg(C, cflags, a, 0, cwin, opts=copts, note="SYN"),
            Seg(S, "SA", b, a + 1, swin, opts=sopts, note="SYN-ACK"),
            Seg(C, "A", a + 1, b + 1, awin, note="ACK")]


def established(a=A, b=B):
    """Handshake, 100 bytes from the client, acknowledged: ESTABLISHED and ASSURED, the client
    next sends at a+101, the server at b+1."""
    return handshake(a, b) + [Seg(C, "PA", a + 1, b + 1, length=100, note="data"),
                              Seg(S, "A", b + 1, a + 101, win=509, note="ACK of the data")]


def to_time_wait(a=A, b=B):
    """Handshake and a clean close started by the client: TIME_WAIT. Client next a+2, server
    next b+2."""
    return handshake(a, b) + [Seg(C, "FA", a + 1, b + 1, note="FIN"),
                              Seg(S, "FA", b + 1, a + 2, note="FIN-ACK"),
                              Seg(C, "A", a + 2, b + 2, note="last ACK")]


BIG = 10_000_000   # far outside any window used here, far inside 2^31

SEQUENCES = {
    "handshake_data_close": handshake() + [
        Seg(C, "PA", A + 1, B + 1, length=100),
        Seg(S, "A", B + 1, A + 101, win=509),
        Seg(S, "PA", B + 1, A + 101, win=509, length=50),
        Seg(C, "A", A + 101, B + 51),
        Seg(C, "FA", A + 101, B + 51),
        Seg(S, "FA", B + 51, A + 102, win=509),
        Seg(C, "A", A + 102, B + 52)],
    "data_on_third_segment": [
        Seg(C, "S", A, 0, 64240, opts=SYN_OPTS),
        Seg(S, "SA", B, A + 1, 65160, opts=SYN_OPTS),
        Seg(C, "PA", A + 1, B + 1, length=100, note="third segment carries data"),
        Seg(S, "A", B + 1, A + 101),
        Seg(S, "PA", B + 1, A + 101, length=20)],
    "server_data_before_third_ack": [
        Seg(C, "S", A, 0, 64240, opts=SYN_OPTS),
        Seg(S, "SA", B, A + 1, 65160, opts=SYN_OPTS),
        Seg(S, "PA", B + 1, A + 1, length=30, note="server speaks first, in SYN_RECV"),
        Seg(C, "A", A + 1, B + 31)],
    "out_of_window_data": handshake() + [
        Seg(C, "PA", A + 1 + BIG, B + 1, length=100, expect=DROP, note="far above the window"),
        Seg(C, "PA", A + 1, B + 1, length=100, note="in window"),
        Seg(S, "A", B + 1, A + 101),
        Seg(S, "PA", B + 1 + BIG, A + 101, length=10, expect=DROP,
            note="far above the window, other way"),
        Seg(S, "PA", B + 1, A + 101, length=10)],
    "ack_above_sent": handshake() + [
        Seg(C, "A", A + 1, B + 1 + 5000, expect=DROP, note="acks 5000 bytes never sent"),
        Seg(C, "PA", A + 1, B + 1, length=10),
        Seg(S, "PA", B + 1, A + 11, length=10),
        Seg(S, "A", B + 11, A + 11 + 100, expect=DROP, note="acks 100 bytes never sent"),
        Seg(C, "A", A + 11, B + 11)],
    "old_retransmission": handshake() + [
        Seg(C, "PA", A + 1, B + 1, length=1000),
        Seg(S, "A", B + 1, A + 1001, win=509),
        Seg(C, "PA", A + 1, B + 1, length=1000, note="retransmission of acked data"),
        Seg(C, "PA", A + 1 - 200_000, B + 1, length=100,
            note="ancient: below the window (kernel IGNORE)"),
        Seg(C, "PA", A + 1001, B + 1, length=10, note="the stream goes on"),
        Seg(S, "A", B + 1, A + 1011, win=509)],
    "rst_exact": established() + [
        Seg(C, "R", A + 101, 0, 0, note="RST at exactly the next sequence number"),
        Seg(S, "A", B + 1, A + 101, note="an ACK after the RST, state CLOSE")],
    "rst_in_window": established() + [
        Seg(C, "R", A + 101 + 1000, 0, 0, note="in window, not exact: challenge-ACK case"),
        Seg(S, "PA", B + 1, A + 101, length=10, note="connection still open"),
        Seg(C, "A", A + 101, B + 11),
        Seg(C, "RA", A + 101, B + 11, 0, note="now the exact RST")],
    "rst_out_of_window": established() + [
        Seg(C, "R", A + 101 + BIG, 0, 0, expect=DROP, note="above the window"),
        Seg(C, "R", A + 101 - BIG, 0, 0, expect=DROP, note="below what was acknowledged"),
        Seg(S, "RA", B + 1 + BIG, A + 101, 0, expect=DROP, note="server side, above"),
        Seg(C, "PA", A + 101, B + 1, length=10, note="the connection lives on"),
        Seg(S, "PA", B + 1, A + 111, length=10),
        Seg(C, "A", A + 111, B + 11)],
    "rst_in_time_wait": to_time_wait() + [
        Seg(S, "R", B + 2, 0, 0, note="exact RST in TIME_WAIT (assassination, RFC 1337)"),
        Seg(C, "A", A + 2, B + 2, note="retransmitted last ACK")],
    "rst_out_of_window_in_time_wait": to_time_wait() + [
        Seg(S, "R", B + 2 + BIG, 0, 0, note="out-of-window RST in TIME_WAIT")],
    "syn_reopens_time_wait": to_time_wait() + [
        Seg(C, "S", A + 100_000, 0, 64240, opts=SYN_OPTS, note="new SYN on the tuple"),
        Seg(S, "SA", B + 200_000, A + 100_001, 65160, opts=SYN_OPTS),
        Seg(C, "A", A + 100_001, B + 200_001),
        Seg(C, "PA", A + 100_001, B + 200_001, length=10),
        Seg(S, "A", B + 200_001, A + 100_011)],
    "simultaneous_open": [
        Seg(C, "S", A, 0, 64240, opts=SYN_OPTS),
        Seg(S, "S", B, 0, 65160, opts=SYN_OPTS, note="SYN from the other side: SYN_SENT2"),
        Seg(S, "SA", B, A + 1, 65160, opts=SYN_OPTS),
        Seg(C, "SA", A, B + 1, 64240, opts=SYN_OPTS),
        Seg(C, "A", A + 1, B + 1),
        Seg(S, "A", B + 1, A + 1),
        Seg(C, "PA", A + 1, B + 1, length=10),
        Seg(S, "PA", B + 1, A + 11, length=10)],
    "simultaneous_close": established() + [
        Seg(C, "FA", A + 101, B + 1, note="FIN"),
        Seg(S, "FA", B + 1, A + 101, note="FIN crossing it"),
        Seg(C, "A", A + 102, B + 2),
        Seg(S, "A", B + 2, A + 102)],
    "half_close_data_after_fin": handshake() + [
        Seg(C, "FA", A + 1, B + 1, note="client closes its half"),
        Seg(S, "A", B + 1, A + 2, note="CLOSE_WAIT"),
        Seg(S, "PA", B + 1, A + 2, length=100, note="server data after the client's FIN"),
        Seg(C, "A", A + 2, B + 101),
        Seg(S, "PA", B + 101, A + 2, length=100),
        Seg(C, "A", A + 2, B + 201),
        Seg(S, "FA", B + 201, A + 2, note="LAST_ACK"),
        Seg(C, "A", A + 2, B + 202, note="TIME_WAIT")],
    "invalid_flags_as_first_packet": [
        Seg(C, "", A, 0, expect=DROP, note="NULL"),
        Seg(C, "FPU", A, 0, expect=DROP, note="Xmas"),
        Seg(C, "SF", A, 0, opts=SYN_OPTS, expect=DROP, note="SYN|FIN"),
        Seg(C, "SR", A, 0, opts=SYN_OPTS, expect=DROP, note="SYN|RST"),
        Seg(C, "F", A, 0, expect=DROP, note="FIN without ACK"),
        Seg(C, "SU", A, 0, 64240, opts=SYN_OPTS, note="SYN|URG is a valid SYN"),
        Seg(S, "SA", B, A + 1, 65160, opts=SYN_OPTS)],
    "invalid_flags_in_connection": established() + [
        Seg(C, "", A + 101, B + 1, expect=DROP, note="NULL"),
        Seg(C, "FPU", A + 101, B + 1, expect=DROP, note="Xmas"),
        Seg(C, "SF", A + 101, B + 1, expect=DROP, note="SYN|FIN"),
        Seg(C, "SR", A + 101, B + 1, expect=DROP, note="SYN|RST"),
        Seg(C, "F", A + 101, B + 1, expect=DROP, note="FIN without ACK"),
        Seg(C, "SRA", A + 101, B + 1, expect=DROP, note="SYN|RST|ACK"),
        Seg(C, "PA", A + 101, B + 1, length=10, note="the connection is untouched"),
        Seg(S, "A", B + 1, A + 111)],
    "ecn_syn": [
        Seg(C, "SEC", A, 0, 64240, opts=SYN_OPTS, note="SYN|ECE|CWR (ECN setup)"),
        Seg(S, "SAE", B, A + 1, 65160, opts=SYN_OPTS, note="SYN-ACK|ECE"),
        Seg(C, "A", A + 1, B + 1),
        Seg(C, "PAC", A + 1, B + 1, length=10, note="data with CWR")],
    "non_syn_first_packet": [
        Seg(C, "A", A, B, expect=DROP, note="bare ACK"),
        Seg(C, "PA", A, B, length=10, expect=DROP, note="data"),
        Seg(C, "FA", A, B, expect=DROP, note="FIN|ACK"),
        Seg(C, "R", A, 0, 0, expect=DROP, note="RST"),
        Seg(C, "RA", A, B, 0, expect=DROP, note="RST|ACK")],
    "syn_ack_without_syn": [
        Seg(S, "SA", B, A + 1, 65160, opts=SYN_OPTS, expect=DROP, note="no SYN was seen"),
        Seg(C, "A", A + 1, B + 1, expect=DROP, note="and no connection after it")],
    "ack_before_syn_ack": [
        Seg(C, "S", A, 0, 64240, opts=SYN_OPTS),
        Seg(C, "A", A + 1, B + 1, expect=DROP, note="client ACK in SYN_SENT"),
        Seg(C, "FA", A + 1, B + 1, expect=DROP, note="client FIN in SYN_SENT"),
        Seg(S, "SA", B, A + 1, 65160, opts=SYN_OPTS),
        Seg(C, "A", A + 1, B + 1)],
    "refused_syn_then_retry": [
        Seg(C, "S", A, 0, 64240, opts=SYN_OPTS),
        Seg(S, "RA", 0, A + 1, 0, note="connection refused"),
        Seg(C, "S", A, 0, 64240, opts=SYN_OPTS, note="the client tries again"),
        Seg(S, "SA", B, A + 1, 65160, opts=SYN_OPTS),
        Seg(C, "A", A + 1, B + 1)],
    "stale_syn_ack": established() + [
        Seg(S, "SA", B, A + 1, 65160, opts=SYN_OPTS, note="late retransmitted SYN-ACK"),
        Seg(C, "PA", A + 101, B + 1, length=10)],
    "window_scaling_edges": handshake(sopts=[["MSS", 1460], ["SAckOK", ""], ["WScale", 2]],
                                      swin=65535) + [
        Seg(S, "A", B + 1, A + 1, win=65535, note="window 65535 << 2 = 262140"),
        Seg(C, "PA", A + 1 + 262140 - 100, B + 1, length=100,
            note="ends exactly at the right edge"),
        Seg(C, "PA", A + 1 + 262140, B + 1, length=100, note="starts exactly at the edge"),
        Seg(C, "PA", A + 1 + 262140 + 1, B + 1, length=100,
            note="one past the edge: overshoot within the receiver's window (kernel IGNORE)"),
        Seg(C, "PA", A + 1 + 262140 + 300_000, B + 1, length=100, expect=DROP,
            note="more than a window past the edge")],
    "window_scale_clamped_to_14": handshake(
            copts=[["MSS", 1460], ["SAckOK", ""], ["WScale", 15]],
            sopts=[["MSS", 1460], ["SAckOK", ""], ["WScale", 15]], swin=65535) + [
        Seg(S, "A", B + 1, A + 1, win=100, note="100 << 14 = 1638400 (not << 15)"),
        Seg(C, "PA", A + 1 + 1_638_400 - 10, B + 1, length=10, note="inside 100 << 14"),
        Seg(C, "PA", A + 1 + 3_276_800 + 1000, B + 1, length=10, expect=DROP,
            note="inside 100 << 15 but more than a window past 100 << 14")],
    "window_scale_needs_both_sides": handshake(sopts=NO_WS_OPTS, awin=502) + [
        Seg(S, "PA", B + 1, A + 1, win=65160, length=500, note="within 502, unscaled"),
        Seg(S, "PA", B + 1 + 502 * 128 + 1000, A + 1, win=65160, length=100, expect=DROP,
            note="inside 502 << 7, but the server sent no scale: far past 502")],
    "sequence_wraparound": handshake(a=M32 - 50, b=M32 - 10) + [
        Seg(C, "PA", M32 - 49, M32 - 9, length=100, note="crosses 2^32"),
        Seg(S, "A", M32 - 9, 51, note="acks across the wrap"),
        Seg(S, "PA", M32 - 9, 51, length=100, note="server data crosses 2^32"),
        Seg(C, "A", 51, 91),
        Seg(C, "PA", 51 + BIG, 91, length=10, expect=DROP, note="out of window after wrap"),
        Seg(S, "A", 91, 51 + 5000, expect=DROP, note="ack above sent after wrap"),
        Seg(C, "PA", 51, 91, length=10)],
    "sack_beyond_sent": handshake() + [
        Seg(C, "PA", A + 1, B + 1, length=1000),
        Seg(S, "A", B + 1, A + 1, opts=[["NOP", None], ["NOP", None],
                                          ["SAck", [A + 501, A + 1001]]],
            note="SACK up to the sent end"),
        Seg(S, "A", B + 1, A + 1, opts=[["NOP", None], ["NOP", None],
                                          ["SAck", [A + 1001, A + 3001]]], expect=DROP,
            note="SACK block beyond what was sent"),
        Seg(S, "A", B + 1, A + 1001)],
    "sack_ignored_without_sack_permitted": handshake(copts=NO_SACK_OPTS) + [
        Seg(C, "PA", A + 1, B + 1, length=1000),
        Seg(S, "A", B + 1, A + 1, opts=[["NOP", None], ["NOP", None],
                                          ["SAck", [A + 1001, A + 3001]]],
            note="SACK beyond sent, but the client never permitted SACK: ignored")],
    "challenge_ack": established() + [
        Seg(C, "S", A + 500_000, 0, 64240, opts=SYN_OPTS,
            note="the client restarted: new SYN in ESTABLISHED (kernel IGNORE)"),
        Seg(S, "A", B + 1, A + 101, note="challenge ACK (RFC 5961 4)"),
        Seg(C, "R", A + 101, 0, 0, note="the client answers it with an exact RST"),
        Seg(C, "S", A + 500_000, 0, 64240, opts=SYN_OPTS, note="its SYN again: reopens"),
        Seg(S, "SA", B + 700_000, A + 500_001, 65160, opts=SYN_OPTS),
        Seg(C, "A", A + 500_001, B + 700_001)],
    "syn_in_established_answered_by_syn_ack": established() + [
        Seg(C, "S", A + 500_000, 0, 64240, opts=SYN_OPTS,
            note="new SYN while we think the old connection lives"),
        Seg(S, "SA", B + 700_000, A + 500_001, 65160, opts=SYN_OPTS,
            note="the server had forgotten it: answers the SYN"),
        Seg(C, "A", A + 500_001, B + 700_001, note="new connection in sync"),
        Seg(C, "PA", A + 500_001, B + 700_001, length=10)],
    "syn_retransmitted_with_new_isn": [
        Seg(C, "S", A, 0, 64240, opts=SYN_OPTS),
        Seg(C, "S", A + 1000, 0, 64240, opts=SYN_OPTS, note="restarted client, higher ISN"),
        Seg(S, "SA", B, A + 1001, 65160, opts=SYN_OPTS, note="answers the second SYN"),
        Seg(C, "A", A + 1001, B + 1),
        Seg(C, "PA", A + 1001, B + 1, length=10)],
    "syn_ack_acking_unsent": [
        Seg(C, "S", A, 0, 64240, opts=SYN_OPTS),
        Seg(S, "SA", B, A + 5, 65160, opts=SYN_OPTS, expect=DROP, note="acks past the SYN"),
        Seg(S, "SA", B, A + 1, 65160, opts=SYN_OPTS),
        Seg(C, "A", A + 1, B + 1)],
    "rst_in_syn_sent_not_acking_syn": [
        Seg(C, "S", A, 0, 64240, opts=SYN_OPTS),
        Seg(S, "RA", 0, A + 5, 0, expect=DROP, note="RST|ACK whose ACK is not the SYN's"),
        Seg(S, "SA", B, A + 1, 65160, opts=SYN_OPTS, note="the handshake is intact"),
        Seg(C, "A", A + 1, B + 1)],
    "keepalive_and_zero_window_probe": established() + [
        Seg(C, "A", A + 100, B + 1, note="keepalive: one below the next sequence number"),
        Seg(S, "A", B + 1, A + 101, win=0, note="zero window"),
        Seg(C, "A", A + 101, B + 1, length=1, note="zero-window probe, one byte"),
        Seg(S, "A", B + 1, A + 101, win=509, note="window opens"),
        Seg(C, "PA", A + 101, B + 1, length=100)],
    "very_delayed_ack": handshake() + [
        Seg(S, "PA", B + 1, A + 1, length=100),
        Seg(C, "A", A + 1, B + 1 - 1_000_000,
            note="acks far below the window (kernel IGNORE: passes, changes nothing)"),
        Seg(C, "A", A + 1, B + 101)],
    "fin_retransmitted_and_data_after_own_fin": established() + [
        Seg(C, "FA", A + 101, B + 1),
        Seg(C, "FA", A + 101, B + 1, note="FIN retransmitted"),
        Seg(S, "A", B + 1, A + 102),
        Seg(C, "PA", A + 102, B + 1, length=10,
            note="data after its own FIN: in window, the receiver decides"),
        Seg(S, "FA", B + 1, A + 102),
        Seg(C, "A", A + 102, B + 2)],
    "rst_out_of_window_while_closing": established() + [
        Seg(C, "FA", A + 101, B + 1, note="FIN_WAIT"),
        Seg(S, "R", B + 1 + BIG, 0, 0,
            note="out-of-window RST while closing: the kernel checks no RST here"),
        Seg(S, "A", B + 1, A + 102,
            note="the kernel is in CLOSE, seqwall still in FIN_WAIT: both pass the ACK of the FIN")],
    "rst_answering_ignored_syn": established() + [
        Seg(C, "S", A + 500_000, 0, 64240, opts=SYN_OPTS, note="SYN in ESTABLISHED: ignored"),
        Seg(S, "RA", B + 1 + BIG, A + 500_001, 0,
            note="RST acking that SYN: it answers the ignored SYN, no window check"),
        Seg(C, "S", A + 500_000, 0, 64240, opts=SYN_OPTS, note="the SYN again"),
        Seg(S, "SA", B + 700_000, A + 500_001, 65160, opts=SYN_OPTS),
        Seg(C, "A", A + 500_001, B + 700_001)],
    "forged_syn_then_rst_same_side": established() + [
        Seg(C, "S", A + 500_000, 0, 64240, opts=SYN_OPTS, note="forged SYN in ESTABLISHED: ignored"),
        Seg(C, "RA", A + 101 + BIG, A + 500_001, 0, expect=DROP,
            note="forged RST from the same side, acking that SYN, far out of window: it "
                 "answers nothing (the kernel asks last_dir; older kernels let it close)"),
        Seg(C, "PA", A + 101, B + 1, length=10, note="the connection lives on"),
        Seg(S, "A", B + 1, A + 111)],
    "repeated_fin_then_rst_to_close_wait": established() + [
        Seg(C, "FA", A + 101, B + 1, note="FIN"),
        Seg(C, "FA", A + 101, B + 1, note="the same FIN again (a duplicate)"),
        Seg(S, "A", B + 1, A + 102, note="ACK of the FIN: the server is in CLOSE_WAIT"),
        Seg(S, "PA", B + 1, A + 102, length=20, note="the server still sends"),
        Seg(C, "A", A + 102, B + 21),
        Seg(C, "R", A + 102, 0, 0,
            note="the client aborts: exact RST to the server, which is in CLOSE_WAIT")],
    "rst_from_the_time_wait_side": to_time_wait() + [
        Seg(C, "R", A + 2, 0, 0, note="exact RST from the client, the side in TIME_WAIT")],
    "challenge_ack_in_last_ack": established() + [
        Seg(C, "FA", A + 101, B + 1),
        Seg(S, "FA", B + 1, A + 102, note="LAST_ACK"),
        Seg(C, "S", A + 600_000, 0, 64240, opts=SYN_OPTS, note="new SYN in LAST_ACK: ignored"),
        Seg(S, "A", B + 2, A + 102, note="challenge ACK: not the last ACK (RFC 5961 4)"),
        Seg(C, "R", A + 102, 0, 0, note="answer to the challenge ACK"),
        Seg(C, "S", A + 600_000, 0, 64240, opts=SYN_OPTS, note="reopens after the RST"),
        Seg(S, "SA", B + 900_000, A + 600_001, 65160, opts=SYN_OPTS),
        Seg(C, "A", A + 600_001, B + 900_001)],
    "syn_and_syn_ack_retransmitted": [
        Seg(C, "S", A, 0, 64240, opts=SYN_OPTS),
        Seg(S, "SA", B, A + 1, 65160, opts=SYN_OPTS),
        Seg(C, "S", A, 0, 64240, opts=SYN_OPTS, note="SYN retransmitted in SYN_RECV"),
        Seg(S, "SA", B, A + 1, 65160, opts=SYN_OPTS, note="SYN-ACK retransmitted"),
        Seg(C, "A", A + 1, B + 1),
        Seg(C, "PA", A + 1, B + 1, length=10)],
    "crashed_peer_reset": established() + [
        Seg(C, "PA", A + 101, B + 1, length=10, note="the server rebooted meanwhile"),
        Seg(S, "R", B + 1, 0, 0, note="its RST: seq = the segment's ACK, exact"),
        Seg(C, "S", A + 800_000, 0, 64240, opts=SYN_OPTS, note="the client starts over"),
        Seg(S, "SA", B + 900_000, A + 800_001, 65160, opts=SYN_OPTS),
        Seg(C, "A", A + 800_001, B + 900_001)],
    "rst_seq_zero_in_established": established() + [
        Seg(S, "R", 0, 0, 0, expect=DROP,
            note="RST with sequence number 0: below what was acknowledged"),
        Seg(C, "PA", A + 101, B + 1, length=10)],
    "wrong_direction_handshake_flags": established() + [
        Seg(S, "S", B + 100, 0, 65160, opts=SYN_OPTS, expect=DROP,
            note="SYN from the server in ESTABLISHED"),
        Seg(C, "SA", A + 100, B + 1, 64240, opts=SYN_OPTS, expect=DROP,
            note="SYN-ACK from the client in ESTABLISHED"),
        Seg(S, "FA", B + 1, A + 101),
        Seg(C, "A", A + 101, B + 2)],
    "fin_from_server_in_syn_sent": [
        Seg(C, "S", A, 0, 64240, opts=SYN_OPTS),
        Seg(S, "FA", B, A + 1, expect=DROP, note="FIN before any SYN-ACK"),
        Seg(S, "SA", B, A + 1, 65160, opts=SYN_OPTS),
        Seg(C, "A", A + 1, B + 1)],
    "syn_with_data_and_urgent_data": [
        Seg(C, "S", A, 0, 64240, length=20, opts=SYN_OPTS, note="SYN carrying data (TFO-like)"),
        Seg(S, "SA", B, A + 21, 65160, opts=SYN_OPTS, note="acks the SYN and its data"),
        Seg(C, "A", A + 21, B + 1),
        Seg(C, "PAU", A + 21, B + 1, length=10, note="urgent data")],
    "ipv6_extension_headers": [
        Seg(C, "S", A, 0, 64240, opts=SYN_OPTS, ext=["hbh"], note="hop-by-hop options"),
        Seg(S, "SA", B, A + 1, 65160, opts=SYN_OPTS, ext=["dest"], note="destination options"),
        Seg(C, "A", A + 1, B + 1, ext=["hbh", "dest"]),
        Seg(C, "PA", A + 1, B + 1, length=100, ext=["frag"],
            note="atomic fragment (RFC 6946): a whole packet"),
        Seg(S, "A", B + 1, A + 101, ext=["dest", "frag"]),
        Seg(C, "PA", A + 101 + BIG, B + 1, length=10, ext=["dest"], expect=DROP,
            note="out of window behind an extension header")],
    "ipv4_header_options": [
        Seg(C, "S", A, 0, 64240, opts=SYN_OPTS, ext=["nop"], note="IHL 6"),
        Seg(S, "SA", B, A + 1, 65160, opts=SYN_OPTS, ext=["nop"]),
        Seg(C, "A", A + 1, B + 1, ext=["nop"]),
        Seg(C, "PA", A + 1, B + 1, length=100, ext=["nop"]),
        Seg(C, "PA", A + 101 + BIG, B + 1, length=10, ext=["nop"], expect=DROP,
            note="out of window behind IP options")],
    "window_shrinks_old_edge_stays": handshake() + [
        Seg(S, "A", B + 1, A + 1, win=1000, note="window 1000 << 7 = 128000"),
        Seg(S, "A", B + 1, A + 1, win=10, note="shrinks to 1280"),
        Seg(C, "PA", A + 1 + 100_000, B + 1, length=100,
            note="inside the old window: the largest right edge counts")],
}

# Where seqwall is deliberately stricter than the kernel (docs/design.md, Deliberate
# differences from the kernel):
# (sequence, segment index) -> (kernel verdict, seqwall verdict, seqwall's reason, why).
DELIBERATE = {
    ("rst_in_time_wait", 6): (
        PASS, DROP, "time-wait-rst",
        "RFC 1337: TIME_WAIT ignores RSTs that would assassinate it. The kernel "
        "skips every check for an RST once the connection is closing (tcp_can_early_drop) "
        "and lets it end TIME_WAIT."),
    ("rst_out_of_window_in_time_wait", 6): (
        PASS, DROP, "time-wait-rst",
        "An out-of-window RST never closes a connection (RFC 5961), and TIME_WAIT ignores "
        "RSTs that would assassinate it (RFC 1337). The kernel does not check an RST's sequence "
        "number at all in TIME_WAIT."),
    ("rst_out_of_window_while_closing", 6): (
        PASS, DROP, "rst-out-of-window",
        "An out-of-window RST never closes a connection (RFC 5961). The kernel checks no RST once "
        "the connection is closing (FIN_WAIT, CLOSE_WAIT, LAST_ACK), and a half-closed "
        "connection still carries data one way, so seqwall keeps the RFC 5961 check there."),
}


class Side:
    """One firewall under test with its two scapy endpoints."""

    def __init__(self, kind, the_lab):
        self.kind = kind
        self.lab = the_lab
        for role in ("client", "server"):
            tcpagent.silence_kernel(lab, the_lab.ns[role])
        self.agents = {
            C: tcpagent.Agent(lab, the_lab.ns["client"], "eth0",
                              os.path.join(the_lab.workdir, "client-agent.stderr")),
            S: tcpagent.Agent(lab, the_lab.ns["server"], "eth0",
                              os.path.join(the_lab.workdir, "server-agent.stderr")),
        }
        self.tag = 0

    def stats(self):
        return self.lab.daemon.stats() if self.kind == "seqwall" else None

    def run(self, steps, family, sport):
        """Send each step in order; return one (verdict, seqwall drop reason or None) each."""
        ends = {C: (self.lab.client_addr(family), sport),
                S: (self.lab.server_addr(family), SERVER_PORT)}
        before = self.stats()
        last = before
        out, tags = [], []
        for step in steps:
            self.tag += 1
            tag = self.tag
            (src, sp), (dst, dp) = ends[step.side], ends[C if step.side == S else S]
            self.agents[step.side].send({
                "family": family, "src": src, "dst": dst, "sport": sp, "dport": dp,
                "flags": step.flags, "seq": step.seq, "ack": step.ack, "win": step.win,
                "len": step.length, "opts": step.opts, "ext": step.ext, "tag": tag})
            receiver = self.agents[C if step.side == S else S]
            arrived = receiver.wait(tag, sp, dp, ARRIVAL_WAIT)["arrived"]
            reason = None
            if not arrived and self.kind == "seqwall":
                now = self.stats()
                risen = {k: v - last["drops"].get(k, 0) for k, v in now["drops"].items()
                         if v != last["drops"].get(k, 0)}
                reason = ",".join(f"{k}" if v == 1 else f"{k}x{v}"
                                  for k, v in sorted(risen.items())) or "(no drop counted)"
                last = now
            out.append((PASS if arrived else DROP, reason))
            tags.append((step.side, tag, sp, dp))
        # Late arrivals: a segment judged dropped must not show up afterwards.
        late = []
        for i, (side, tag, sp, dp) in enumerate(tags):
            if out[i][0] == DROP:
                receiver = self.agents[C if side == S else S]
                if any(r["tag"] == tag for r in receiver.arrivals(sp, dp)):
                    late.append(i)
        seen = None
        if self.kind == "seqwall":
            after = self.stats()
            seen = after["packets"]["seen"] - before["packets"]["seen"]
        return out, late, seen


class KernelDifferentialTest(unittest.TestCase):
    """Each test runs one scripted sequence through both firewalls and compares."""

    labs = []
    sides = {}
    port = 20000
    table = []  # (family, sequence, index, kernel, seqwall, reason), for the summary

    @classmethod
    def setUpClass(cls):
        problem = lab.environment_problem() or lab.scapy_problem()
        if problem:
            raise unittest.SkipTest(problem)
        try:
            sw = lab.Lab(lab.GATEWAY, SEQWALL_RULES, server_ports=(8080,), client_ports=())
            cls.labs.append(sw)
            sw.build()
            sw.start_daemon()
            kern = lab.Lab(lab.GATEWAY, SEQWALL_RULES, server_ports=(8080,), client_ports=(),
                           iptables=KERNEL_IPTABLES)
            cls.labs.append(kern)
            kern.build()
            fw = kern.ns["fw"]
            for key in ("nf_conntrack_tcp_loose", "nf_conntrack_tcp_be_liberal"):
                lab.ns_run(fw, ["sysctl", "-qw", f"net.netfilter.{key}=0"])
                got = lab.ns_run(fw, ["sysctl", "-n", f"net.netfilter.{key}"]).stdout.strip()
                if got != "0":
                    raise RuntimeError(f"kernel lab: net.netfilter.{key} is {got}, not 0")
            cls.sides = {"seqwall": Side("seqwall", sw), "kernel": Side("kernel", kern)}
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for side in cls.sides.values():
            for agent in side.agents.values():
                agent.stop()
        for the_lab in cls.labs:
            the_lab.destroy()
        cls.labs, cls.sides = [], {}
        if os.environ.get("SEQWALL_DIFF_TABLE") and cls.table:
            sys.stderr.write("\nfamily sequence #seg kernel seqwall reason\n")
            for row in cls.table:
                sys.stderr.write(" ".join(str(x) for x in row) + "\n")

    def attempt(self, name, family):
        """Run the sequence once on both labs (fresh 4-tuple); return (problems, report)."""
        steps = SEQUENCES[name]
        type(self).port += 1
        sport = type(self).port
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            futures = {k: pool.submit(s.run, steps, family, sport)
                       for k, s in self.sides.items()}
            results = {k: f.result() for k, f in futures.items()}
        (kern, klate, _), (sw, slate, seen) = results["kernel"], results["seqwall"]
        lines, problems, rows = [], [], []
        for i, step in enumerate(steps):
            kv, sv, reason = kern[i][0], sw[i][0], sw[i][1]
            rows.append((f"ipv{family}", name, i, kv, sv, reason or ""))
            mark = ""
            deliberate = DELIBERATE.get((name, i))
            if deliberate:
                dk, ds, dreason, why = deliberate
                if (kv, sv, reason) != (dk, ds, dreason):
                    mark = (f"  <-- listed as deliberate (kernel {dk}, seqwall {ds} "
                            f"{dreason}) but got kernel {kv}, seqwall {sv} {reason}")
            elif kv != sv:
                mark = "  <-- kernel and seqwall disagree"
            elif kv != step.expect:
                mark = f"  <-- both {kv}, the script expects the kernel to {step.expect}"
            if mark:
                problems.append(i)
            lines.append(f"  {i:2} {step.describe():90} kernel={kv:4} seqwall={sv:4}"
                         f"{' ' + reason if reason else ''}{mark}")
        report = f"\nsequence {name} (IPv{family}, sport {sport}):\n" + "\n".join(lines)
        self.assertEqual(klate + slate, [], f"segments arrived after they were judged "
                                            f"dropped (kernel {klate}, seqwall {slate}): "
                                            f"the machine is too slow for ARRIVAL_WAIT{report}")
        self.assertEqual(seen, len(steps), f"seqwall saw {seen} packets, {len(steps)} were "
                                           f"sent: was it inline?{report}")
        if not problems:
            type(self).table.extend(rows)
        return problems, report

    def check(self, name, family):
        """The sequence must come out as scripted. A segment lost on the way looks like a
        drop: the machine's other labs can overflow the kernel's per-CPU backlog, which all
        namespaces share (/proc/net/softnet_stat). So a sequence that does not come out as
        scripted runs again on a fresh tuple, up to ATTEMPTS times; a real difference comes
        out every time, and every attempt's table is in the failure message."""
        reports = []
        for _ in range(ATTEMPTS):
            problems, report = self.attempt(name, family)
            if not problems:
                return
            reports.append(report)
        self.fail(f"{len(reports)} attempts, none as scripted:" + "".join(reports))


def _make_test(name, family):
    def test(self):
        self.check(name, family)
    test.__doc__ = f"{name}, IPv{family}"
    return test


# Sequences about one address family's headers.
ONLY = {"ipv6_extension_headers": (6,), "ipv4_header_options": (4,)}

for _name in SEQUENCES:
    for _family in ONLY.get(_name, (4, 6)):
        setattr(KernelDifferentialTest, f"test_ipv{_family}_{_name}", _make_test(_name, _family))


if __name__ == "__main__":
    unittest.main(verbosity=2)
