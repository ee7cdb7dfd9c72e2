#!/usr/bin/env python3
"""A TCP proxy that holds every chunk DELAY_MS milliseconds in each direction, order kept.

    delay.py LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_MS [MARK]

The NAT lab (lab.sh late) runs it in a host's namespace, with nftables redirecting the host's connections
to the server's control port here: that host then learns of every session DELAY_MS later than its peer (no
tc netem in the lab). MARK (SO_MARK) tags the proxy's own connection so the redirect leaves it alone.
"""
import asyncio
import socket
import sys
import time


async def pump(reader, writer, delay):
    queue = asyncio.Queue()

    async def deliver():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            queue.put_nowait((time.monotonic() + delay, data))
    except ConnectionError:
        pass
    queue.put_nowait((0, None))
    try:
        await sender
    except ConnectionError:
        pass


async def main():
    (lhost, lport), (thost, tport) = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in sys.argv[1:3]]
    delay = int(sys.argv[3]) / 1000
    mark = int(sys.argv[4], 0) if len(sys.argv) > 4 else 0

    async def serve(client_r, client_w):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if mark:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, mark)
        sock.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (thost, tport))
        except OSError:
            client_w.close()
            return
        server_r, server_w = await asyncio.open_connection(sock=sock)
        await asyncio.gather(pump(client_r, server_w, delay), pump(server_r, client_w, delay))

    server = await asyncio.start_server(serve, lhost, lport)
    print(f"delay.py: {lhost}:{lport} -> {thost}:{tport}, {delay * 1000:.0f} ms each way", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
