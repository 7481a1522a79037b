"""A TCP forwarder: ``python -m tests.processes.forwarder TARGET_HOST TARGET_PORT ADDRESS…``.

Listens on each ADDRESS (a free port, the same on every address, printed as the first
line) and forwards every connection to TARGET. Tests that play several hosts in network
namespaces run it in the machine's own namespace, bound to the veth addresses, so the
hosts reach a database that listens on 127.0.0.1 only. A cut link leaves its connections
open on the database's side, as a real partition does.
"""

from __future__ import annotations

import asyncio
import socket
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main(target_host: str, target_port: int, addresses: list[str]) -> None:
    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    first = socket.create_server((addresses[0], 0))
    port = first.getsockname()[1]
    sockets = [first, *(socket.create_server((address, port)) for address in addresses[1:])]
    servers = [await asyncio.start_server(forward, sock=sock) for sock in sockets]
    print(port, flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    host, port, *listen = sys.argv[1:]
    asyncio.run(main(host, int(port), listen))
