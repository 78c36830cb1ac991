"""Sync datagrams on the wire, for test_sync_refusal.py (docs/sync-protocol.md).

Run inside a lab namespace:
  capture IFACE PORT OUT   every UDP datagram from or to PORT that IFACE sends or receives,
                           as JSON lines {"out": bool, "frame": hex} appended to OUT, until
                           SIGTERM
  send IFACE GAP           a JSON list of Ethernet frames (hex) on stdin, sent as they are
                           (AF_PACKET), in order, GAP seconds apart

Imported by the test: datagrams taken out of frames and put back into them (the IP and UDP
lengths and checksums made right, so the receiver's kernel hands them to the socket), and
sync messages opened and sealed the way Sources/SeqwallSync/SyncCipher.swift does it.
"""

import json
import os
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
HEADER_LENGTH = 24
TAG_LENGTH = 16


# -- frames --

def _udp_offset(frame):
    """(offset of the UDP header, IP version) in an Ethernet frame, or None when it is not
    UDP over IPv4 or IPv6 without extension headers."""
    if len(frame) < 14:
        return None
    ethertype = struct.unpack("!H", frame[12:14])[0]
    if ethertype == 0x0800 and len(frame) >= 34 and frame[23] == socket.IPPROTO_UDP:
        return 14 + (frame[14] & 0x0F) * 4, 4
    if ethertype == 0x86DD and len(frame) >= 62 and frame[20] == socket.IPPROTO_UDP:
        return 54, 6
    return None


def ports(frame):
    found = _udp_offset(frame)
    if found is None:
        return None
    offset = found[0]
    return struct.unpack("!HH", frame[offset:offset + 4])


def datagram(frame):
    """The UDP payload of a frame (None when it is not UDP)."""
    found = _udp_offset(frame)
    if found is None:
        return None
    offset = found[0]
    length = struct.unpack("!H", frame[offset + 4:offset + 6])[0]
    return frame[offset + 8:offset + length]


def _sum16(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _checksum(data):
    return (~_sum16(data)) & 0xFFFF


def with_payload(template, payload):
    """template, a captured UDP frame, carrying payload instead (RFC 768 checksum; RFC 8200,
    8.1: mandatory over IPv6)."""
    offset, version = _udp_offset(template)
    sport, dport = struct.unpack("!HH", template[offset:offset + 4])
    udp_length = 8 + len(payload)
    if version == 4:
        ip = bytearray(template[14:offset])
        struct.pack_into("!H", ip, 2, len(ip) + udp_length)
        struct.pack_into("!H", ip, 10, 0)
        struct.pack_into("!H", ip, 10, _checksum(bytes(ip)))
        pseudo = bytes(ip[12:20]) + struct.pack("!BBH", 0, socket.IPPROTO_UDP, udp_length)
    else:
        ip = bytearray(template[14:54])
        struct.pack_into("!H", ip, 4, udp_length)
        pseudo = bytes(ip[8:40]) + struct.pack("!IxxxB", udp_length, socket.IPPROTO_UDP)
    udp = struct.pack("!HHHH", sport, dport, udp_length, 0) + payload
    check = _checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", check) + udp[8:]
    return bytes(template[:14]) + bytes(ip) + udp


# -- messages --

def header_fields(message):
    """(version, kind, node, epoch, sequence) of a sync message's clear header."""
    _, version, kind, _, node, epoch, sequence = struct.unpack("!4sBBHIIQ", message[:HEADER_LENGTH])
    return version, kind, node, epoch, sequence


def _node_key(key, node):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"seqwall-sync-1",
                info=b"seqwall sync node" + struct.pack("!I", node)).derive(key)


def open_message(key, message):
    """The body of an authentic message (raises when it is not one)."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    _, _, node, epoch, sequence = header_fields(message)
    nonce = struct.pack("!IQ", epoch, sequence)
    return ChaCha20Poly1305(_node_key(key, node)).decrypt(nonce, message[HEADER_LENGTH:], message[:HEADER_LENGTH])


def seal_message(key, body, kind, node, epoch, sequence, version=1):
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    header = b"SQWS" + struct.pack("!BBHIIQ", version, kind, 0, node, epoch, sequence)
    nonce = struct.pack("!IQ", epoch, sequence)
    return header + ChaCha20Poly1305(_node_key(key, node)).encrypt(nonce, body, header)


# -- in the namespace --

def _capture(iface, port, out_path):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((iface, 0))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    s.settimeout(0.2)
    with open(out_path, "a") as out:
        print("listening", flush=True)
        while not stop:
            try:
                frame, address = s.recvfrom(65535)
            except socket.timeout:
                continue
            except InterruptedError:
                continue
            found = ports(frame)
            if found is None or port not in found:
                continue
            out.write(json.dumps({"out": address[2] == PACKET_OUTGOING, "frame": frame.hex()}) + "\n")
            out.flush()


def _send(iface, gap):
    frames = json.load(sys.stdin)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for frame in frames:
        s.send(bytes.fromhex(frame))
        # Paced: the barrage is to be refused by the daemon, not lost in a full socket buffer.
        time.sleep(gap)
    print(len(frames))


if __name__ == "__main__":
    if sys.argv[1] == "capture":
        _capture(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1] == "send":
        _send(sys.argv[2], float(sys.argv[3]))
    else:
        sys.exit(f"usage: {os.path.basename(sys.argv[0])} capture IFACE PORT OUT | send IFACE GAP")
