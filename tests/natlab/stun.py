#!/usr/bin/env python3
"""A minimal STUN server (RFC 5389 binding + RFC 5780 CHANGE-REQUEST) for the NAT lab.

miniupnpd refuses to map ports while its WAN address is in a reserved range (198.18.0.0/15 is one) unless
a STUN check shows it is not behind a filtering NAT; this server answers that check from the lab's public
segment. It listens on PRIMARY:3478, PRIMARY:3479, SECONDARY:3478 and SECONDARY:3479 and answers each request
from the address and port the request's CHANGE-REQUEST asks for.

usage: stun.py PRIMARY_IP SECONDARY_IP
"""
import select
import socket
import struct
import sys

MAGIC = 0x2112A442
PORTS = (3478, 3479)


def parse(data):
    """Returns (transaction id, change ip, change port) of a binding request, or None."""
    if len(data) < 20:
        return None
    msg_type, length, magic = struct.unpack("!HHI", data[:8])
    if msg_type != 0x0001 or magic != MAGIC or len(data) < 20 + length:
        return None
    tid = data[8:20]
    change_ip = change_port = False
    pos = 20
    while pos + 4 <= 20 + length:
        attr, alen = struct.unpack("!HH", data[pos:pos + 4])
        if attr == 0x0003 and alen >= 4:
            (flags,) = struct.unpack("!I", data[pos + 4:pos + 8])
            change_ip, change_port = bool(flags & 4), bool(flags & 2)
        pos += 4 + alen + (-alen % 4)
    return tid, change_ip, change_port


def response(tid, addr):
    ip = socket.inet_aton(addr[0])
    port = addr[1]
    mapped = struct.pack("!HHBBH4s", 0x0001, 8, 0, 1, port, ip)
    xip = bytes(a ^ b for a, b in zip(ip, struct.pack("!I", MAGIC)))
    xmapped = struct.pack("!HHBBH4s", 0x0020, 8, 0, 1, port ^ (MAGIC >> 16), xip)
    attrs = mapped + xmapped
    return struct.pack("!HHI", 0x0101, len(attrs), MAGIC) + tid + attrs


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: stun.py PRIMARY_IP SECONDARY_IP")
    ips = sys.argv[1:3]
    socks = {}
    for i, ip in enumerate(ips):
        for j, port in enumerate(PORTS):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((ip, port))
            socks[(i, j)] = s
    where = {s: key for key, s in socks.items()}
    while True:
        ready, _, _ = select.select(list(where), [], [])
        for s in ready:
            data, peer = s.recvfrom(2048)
            req = parse(data)
            if req is None:
                continue
            tid, change_ip, change_port = req
            i, j = where[s]
            out = socks[(i ^ change_ip, j ^ change_port)]
            out.sendto(response(tid, peer), peer)


if __name__ == "__main__":
    main()
