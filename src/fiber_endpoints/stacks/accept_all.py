"""An event loop that accepts every waiting connection in one turn (the fast stack's listener).

libuv 1.49 and later (uvloop 0.23 bundles 1.52) accept *one* connection each time the listening
socket is reported readable, that is one per event-loop turn. Under load a turn serves every
ready request first, so 64 connections opened at once by a load generator were accepted one per
~1.3 ms turn: the last one's first request waited ~80 ms. That was the Python stack's p99 and
max at 64 connections (docs/fast-python.md, "The tail"). Go's accept loop and asyncio's own
(``selector_events._accept_connection``: up to ``backlog`` per turn) take them all at once.

:class:`AcceptAllLoop` is uvloop's loop with ``create_server`` answered by
:class:`AcceptAllServer`: the listening socket is watched with ``add_reader`` and drained with
``accept()`` until it would block, each connection handed to uvloop with the public
``connect_accepted_socket`` (a Task per connection, as asyncio's own loop makes). Everything after
the accept (transports, reads, writes) is uvloop's. uvicorn takes it as a custom ``loop`` factory.
``FIBER_ENDPOINTS_ACCEPT_ALL=0`` falls back to uvloop's own listener, as ``serve`` does with
several workers (they share one listening socket; one accept per turn spreads a burst over them).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Callable, Iterable
from typing import Any

import uvloop

ACCEPT_ALL_ENV = "FIBER_ENDPOINTS_ACCEPT_ALL"
LOOP = f"{__name__}:new_event_loop"  # uvicorn's ``loop=`` for this module's loop
# Out of descriptors or memory: stop accepting for this long, then try again (asyncio's delay).
ACCEPT_RETRY_DELAY_S = 1.0
# accept() errors that say "not now" for this process, not "this listener is broken".
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# accept() errors that concern one connection only (it went away before it was taken).
_CONNECTION_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})
_logger = logging.getLogger("uvicorn.error")  # where uvicorn logs the server's own errors


def enabled() -> bool:
    return os.environ.get(ACCEPT_ALL_ENV, "1") != "0"


class AcceptAllServer(asyncio.AbstractServer):
    """Listening sockets whose every waiting connection is accepted in the turn it is seen."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        listeners: Iterable[socket.socket],
        backlog: int,
    ) -> None:
        self._loop = loop
        self._protocol_factory = protocol_factory
        self._listeners = list(listeners)
        self._backlog = backlog
        self._serving = True
        self._retries: dict[int, asyncio.TimerHandle] = {}  # by listener fd, while paused
        for listener in self._listeners:
            # uvicorn's workers get a socket bound, not listening (Config.bind_socket); as
            # create_server(sock=...) does, listen here (again is harmless: it sets the backlog).
            listener.listen(backlog)
            listener.setblocking(False)
            loop.add_reader(listener.fileno(), self._accept_waiting, listener)

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._listeners)

    def _accept_waiting(self, listener: socket.socket) -> None:
        # At most ``backlog`` a turn, as asyncio: a flood cannot keep the loop here for ever.
        for _ in range(self._backlog):
            try:
                conn, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _CONNECTION_ERRNOS:
                    continue
                if exc.errno in _RESOURCE_ERRNOS:
                    _logger.error(
                        "accept() failed (%s); not accepting for %.0f s",
                        os.strerror(exc.errno),
                        ACCEPT_RETRY_DELAY_S,
                    )
                    self._loop.remove_reader(listener.fileno())
                    self._retries[listener.fileno()] = self._loop.call_later(
                        ACCEPT_RETRY_DELAY_S, self._resume, listener
                    )
                    return
                raise
            conn.setblocking(False)
            self._loop.create_task(self._connect(conn))

    def _resume(self, listener: socket.socket) -> None:
        self._retries.pop(listener.fileno(), None)
        if self._serving:
            self._loop.add_reader(listener.fileno(), self._accept_waiting, listener)

    async def _connect(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._protocol_factory, conn)
        except OSError:  # the client went away between accept() and the transport's start
            conn.close()
        except Exception:  # the protocol could not be made: this connection only
            _logger.exception("could not serve an accepted connection")
            conn.close()

    def close(self) -> None:
        if not self._serving:
            return
        self._serving = False
        for retry in self._retries.values():
            retry.cancel()
        for listener in self._listeners:
            self._loop.remove_reader(listener.fileno())
            listener.close()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        return None  # it serves from the start, as create_server's default start_serving=True

    async def serve_forever(self) -> None:
        raise NotImplementedError("uvicorn runs the loop; nothing here waits on the server")

    async def wait_closed(self) -> None:
        return None  # closing is synchronous: the listeners are closed by close()


def bind(host: str | None, port: int, backlog: int) -> list[socket.socket]:
    """Listening sockets for ``host``:``port`` as ``loop.create_server`` makes them: one per
    address ``host`` resolves to (every interface if it is empty), ``SO_REUSEADDR``, IPv6 only
    on IPv6 sockets."""
    infos = socket.getaddrinfo(
        host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )
    listeners: list[socket.socket] = []
    try:
        for family, address in dict.fromkeys((info[0], info[4]) for info in infos):
            listeners.append(socket.create_server(address, family=family, backlog=backlog))
    except OSError:
        for listener in listeners:
            listener.close()
        raise
    return listeners


class AcceptAllLoop(uvloop.Loop):
    """uvloop, but plain TCP servers accept every waiting connection per turn."""

    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int | None = None,
        *,
        sock: socket.socket | None = None,
        backlog: int = 100,
        ssl: Any = None,
        **kwargs: Any,
    ) -> asyncio.AbstractServer:
        if ssl is not None or kwargs or (sock is None and port is None):
            fallback: Any = super().create_server  # uvloop's stubs overload it per argument set
            return await fallback(  # type: ignore[no-any-return]
                protocol_factory, host, port, sock=sock, backlog=backlog, ssl=ssl, **kwargs
            )
        if sock is not None:
            listeners = [sock]
        else:
            assert port is not None
            listeners = bind(host, port, backlog)
        return AcceptAllServer(self, protocol_factory, listeners, backlog)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvicorn's custom ``loop`` factory: ``loop="<this module>:new_event_loop"``."""
    return AcceptAllLoop() if enabled() else uvloop.new_event_loop()
