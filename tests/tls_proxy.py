"""A tiny TLS terminator for tests: accepts TLS on 127.0.0.1:PORT, forwards the plaintext to
127.0.0.1:UPSTREAM, and counts, in what clients sent, the requests (``POST ``, ``GET ``) and
the given header lines (the name in any case, as HTTP allows and hyper-based clients such as oha
send it: lower case); the counts are written as JSON to OUT on SIGTERM.

    python tests/tls_proxy.py CERT KEY PORT UPSTREAM OUT 'Header: value' ...
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import ssl
import sys

cert, key, port, upstream, out, *wanted = sys.argv[1:]


def header_line(line: str) -> re.Pattern[bytes]:
    name, _, value = line.partition(":")
    name_re, value_re = re.escape(name.strip().encode()), re.escape(value.strip().encode())
    return re.compile(b"\r\n(?i:" + name_re + b"):[ \t]*" + value_re + b"\r\n")


patterns = {
    "POST": re.compile(b"POST "),
    "GET": re.compile(b"GET "),
    **{h: header_line(h) for h in wanted},
}
counts = dict.fromkeys(patterns, 0)


def scan(tail: bytes, data: bytes) -> bytes:
    """Count every pattern in ``tail + data`` not already counted in ``tail``."""
    both = tail + data
    for name, pattern in patterns.items():
        counts[name] += len(pattern.findall(both)) - len(pattern.findall(tail))
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
