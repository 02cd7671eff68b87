"""A tiny TLS terminator for tests: accepts TLS on 127.0.0.1:PORT, forwards the plaintext to
127.0.0.1:UPSTREAM, and counts, in what clients sent, the requests (``POST ``, ``GET ``) and
the given header lines; the counts are written as JSON to OUT on SIGTERM.

    python tests/tls_proxy.py CERT KEY PORT UPSTREAM OUT 'Header: value' ...
"""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
import sys

cert, key, port, upstream, out, *wanted = sys.argv[1:]
patterns = {"POST": b"POST ", "GET": b"GET ", **{h: f"\r\n{h}\r\n".encode() for h in wanted}}
counts = dict.fromkeys(patterns, 0)


def scan(tail: bytes, data: bytes) -> bytes:
    """Count every pattern in ``tail + data`` not already counted in ``tail``."""
    both = tail + data
    for name, pattern in patterns.items():
        counts[name] += both.count(pattern) - tail.count(pattern)
    return both[-64:]


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: bool) -> None:
    tail = b""
    try:
        while data := await reader.read(65536):
            if count:
                tail = scan(tail, data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
    try:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", int(upstream))
    except OSError:
        client_w.close()
        return
    await asyncio.gather(pipe(client_r, up_w, True), pipe(up_r, client_w, False))


async def main() -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = await asyncio.start_server(handle, "127.0.0.1", int(port), ssl=context, backlog=512)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    with open(out, "w") as f:
        json.dump(counts, f)


asyncio.run(main())
