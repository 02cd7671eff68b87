"""The fast stack's listener (stacks/accept_all.py): every waiting connection accepted in one turn.

Real sockets on loopback and real uvloop loops: the clients connect while the server's loop is
not running, so the kernel holds them all in the listening socket's queue, then the loop runs a
bounded number of turns.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import ClassVar

import pytest
import uvloop

from fiber_endpoints.stacks import accept_all

WAITING = 50


class Counting(asyncio.Protocol):
    made: ClassVar[list[asyncio.BaseTransport]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        Counting.made.append(transport)


@contextmanager
def clients(port: int, n: int) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        yield [stack.enter_context(socket.create_connection(("127.0.0.1", port))) for _ in range(n)]


def accepted_after_turns(loop: asyncio.AbstractEventLoop, turns: int) -> int:
    """Connections made after ``WAITING`` clients connected to a server of ``loop`` that was
    not running, then ``turns`` runs of the loop until a ``sleep(0)`` is done (a few turns
    each)."""
    Counting.made = []
    server = loop.run_until_complete(
        loop.create_server(Counting, "127.0.0.1", 0, backlog=2 * WAITING)
    )
    port = server.sockets[0].getsockname()[1]
    try:
        with clients(port, WAITING):
            for _ in range(turns):
                loop.run_until_complete(asyncio.sleep(0))
            made = len(Counting.made)
            for transport in Counting.made:
                transport.close()
            loop.run_until_complete(asyncio.sleep(0))
    finally:
        server.close()
        loop.run_until_complete(asyncio.sleep(0))
    return made


def test_every_waiting_connection_is_made_at_once() -> None:
    loop = accept_all.new_event_loop()
    try:
        assert isinstance(loop, accept_all.AcceptAllLoop)
        assert accepted_after_turns(loop, 3) == WAITING
    finally:
        loop.close()


def test_uvloops_own_listener_takes_one_per_turn() -> None:
    """Why accept_all exists: the libuv uvloop bundles accepts one connection per turn (11 of
    50 here). If this fails, uvloop's listener takes them all again: retire accept_all."""
    loop = uvloop.new_event_loop()
    try:
        assert accepted_after_turns(loop, 3) < WAITING // 2
    finally:
        loop.close()


def test_a_bound_socket_is_served_as_uvicorns_workers_pass_it() -> None:
    """uvicorn's workers get ``sockets=`` bound by ``Config.bind_socket``, not listening."""
    loop = accept_all.new_event_loop()
    bound = socket.socket()
    bound.bind(("127.0.0.1", 0))
    port = bound.getsockname()[1]
    Counting.made = []
    try:
        server = loop.run_until_complete(loop.create_server(Counting, sock=bound))
        with clients(port, 3):
            loop.run_until_complete(asyncio.sleep(0))
            assert len(Counting.made) == 3
        server.close()
    finally:
        loop.close()


def test_uvicorn_finds_the_loop_by_its_name() -> None:
    from uvicorn.importer import import_from_string

    assert import_from_string(accept_all.LOOP) is accept_all.new_event_loop


def test_the_switch_falls_back_to_uvloops_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(accept_all.ACCEPT_ALL_ENV, "0")
    loop = accept_all.new_event_loop()
    try:
        assert not isinstance(loop, accept_all.AcceptAllLoop)
    finally:
        loop.close()


def test_bind_refuses_a_port_in_use() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        try:
            accept_all.bind("127.0.0.1", port, 16)
        except OSError as exc:
            assert exc.errno is not None
        else:
            raise AssertionError("bound a port already listening")


def test_close_stops_accepting() -> None:
    loop = accept_all.new_event_loop()
    try:
        server = loop.run_until_complete(loop.create_server(Counting, "127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        assert server.is_serving()
        server.close()
        loop.run_until_complete(server.wait_closed())
        assert not server.is_serving()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except ConnectionRefusedError:
            pass
        else:
            raise AssertionError("a closed server still accepted")
    finally:
        loop.close()


# Out of file descriptors: the server stops accepting for ACCEPT_RETRY_DELAY_S, says so, and
# takes connections again once descriptors are free; it does not spin or die. The limit is
# lowered in a child process so that the test's own sockets are not counted.
_FD_STARVED_SERVER = textwrap.dedent(
    """
    import asyncio, resource, sys
    from fiber_endpoints.stacks import accept_all

    class Hello(asyncio.Protocol):
        def connection_made(self, transport):
            transport.write(b"hello")

    loop = accept_all.new_event_loop()
    server = loop.run_until_complete(loop.create_server(Hello, "127.0.0.1", 0, backlog=512))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    print(server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()
    """
)


@pytest.mark.contract  # a child process and the 1 s pause: ~4 s
def test_out_of_descriptors_pauses_accepting_then_serves_again() -> None:
    server = subprocess.Popen(
        [sys.executable, "-c", _FD_STARVED_SERVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with clients(port, 100) as flood:  # more than the 64 descriptors the server may open
            time.sleep(0.3)
            greeted = 0
            for client in flood:
                client.settimeout(0.05)
                try:
                    greeted += client.recv(5) == b"hello"
                except TimeoutError:
                    pass
            assert 0 < greeted < 100
        assert server.poll() is None, "the server died when it ran out of descriptors"
        deadline = time.monotonic() + 10 * accept_all.ACCEPT_RETRY_DELAY_S
        while True:  # the flood's sockets are freed as it reads their EOFs
            with socket.create_connection(("127.0.0.1", port), timeout=5) as fresh:
                fresh.settimeout(0.5)
                try:
                    if fresh.recv(5) == b"hello":
                        break
                except TimeoutError:
                    pass
            assert time.monotonic() < deadline, "never accepted again after running out"
    finally:
        server.terminate()
        _, err = server.communicate(timeout=10)
    assert "not accepting for 1 s" in err
