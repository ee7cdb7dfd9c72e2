#!/usr/bin/env python3
"""An independent check of what a lab router does (RFC 4787 terms), so the lab itself is tested, not assumed.

  probe.py server IP1 IP2      answer on IP1:4000, IP1:4001 and IP2:4000
  probe.py client IP1 IP2      from one UDP socket: the mapping seen by each server address, then whether
                               answers from another port / another address get through; prints one JSON line

The server answers "map" with the source address it saw, "port" from its other port, "addr" from its other
address (the second socket keeps the first one's mapping untouched: only the reply source changes).
"""
import json
import select
import socket
import sys

PORT, PORT2 = 4000, 4001


def server(ip1, ip2):
    socks = {}
    for key, addr in (("a", (ip1, PORT)), ("p", (ip1, PORT2)), ("i", (ip2, PORT))):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(addr)
        socks[key] = s
    while True:
        ready, _, _ = select.select(list(socks.values()), [], [])
        for s in ready:
            data, peer = s.recvfrom(512)
            text = f"{peer[0]}:{peer[1]}".encode()
            out = {b"map": s, b"port": socks["p"], b"addr": socks["i"]}.get(data.strip())
            if out is not None:
                out.sendto(text, peer)


def ask(sock, dest, what, wait=0.6):
    for _ in range(3):
        sock.sendto(what, dest)
        r, _, _ = select.select([sock], [], [], wait)
        if r:
            return sock.recvfrom(512)[0].decode()
    return None


def client(ip1, ip2):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    local_port = s.getsockname()[1]
    m1 = ask(s, (ip1, PORT), b"map")
    m2 = ask(s, (ip1, PORT2), b"map")
    m3 = ask(s, (ip2, PORT), b"map")
    if not m1:
        print(json.dumps({"error": "no answer from the probe server"}))
        return 1
    mapping = "endpoint-independent" if m1 == m2 == m3 else (
        "address-dependent" if m1 == m2 else "address-and-port-dependent")
    # Filtering, from fresh sockets that have talked to IP1:PORT only (the first one has talked to all three).
    def answered(what):
        f = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        f.bind(("0.0.0.0", 0))
        ask(f, (ip1, PORT), b"map")
        return ask(f, (ip1, PORT), what) is not None
    from_port, from_addr = answered(b"port"), answered(b"addr")
    filtering = "endpoint-independent" if from_addr else (
        "address-dependent" if from_port else "address-and-port-dependent")
    # Hairpin: a second socket sends to the first one's public mapping.
    s2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s2.bind(("0.0.0.0", 0))
    host, port = m1.rsplit(":", 1)
    hairpin = False
    for _ in range(3):
        s2.sendto(b"hairpin", (host, int(port)))
        r, _, _ = select.select([s], [], [], 0.4)
        if r and s.recvfrom(512)[0] == b"hairpin":
            hairpin = True
            break
    print(json.dumps({
        "local_port": local_port, "mapped": [m1, m2, m3], "mapping": mapping, "filtering": filtering,
        "port_preserved": int(port) == local_port, "hairpin": hairpin,
    }))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("server", "client"):
        sys.exit(__doc__)
    sys.exit(server(*sys.argv[2:]) if sys.argv[1] == "server" else client(*sys.argv[2:]))
