"""Opt-in: keep the event loop polling for a while after each fast-path answer, not asleep.

Sequentially most of a call is the machine waking the server's idle CPU and loop up for the
next request. With the CPUs kept awake (``bench --keep-awake``) the fast Python stack's p50
matched Fiber's (100-101 against 100-103 µs, two runs, 2026-11-30), against 1.04-1.07x without.
Go's scheduler spins a little before it parks; uvloop sleeps in ``epoll_wait`` at once.

``FIBER_ENDPOINTS_IDLE_SPIN_US=N`` makes the loop poll (``call_soon`` keeps libuv's poll timeout
at 0) for N µs after each fast-path answer, so a request arriving in that time finds it awake.
Measured on the 2-core VM (2026-11-30, ``bench --no-load --samples 30``, three runs with): with
150 µs, sequential p50 88-99 µs against 143-148 without, Fiber 135-147; wrk at 1 connection
11,106 against 6,267 req/s. The price is CPU: up to N µs of spinning per idle gap (100 % of the
core under ping-pong traffic; none under load, where the loop never idles: 64 connections
31,378 against 30,015 req/s). Off by default: spinning spends a CPU quota (a container's
``cpu.max``) on nothing and would throttle the server that has one.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from time import perf_counter

IDLE_SPIN_ENV = "FIBER_ENDPOINTS_IDLE_SPIN_US"


def configured_s() -> float:
    """The spin after each answer, in seconds (0: off); ``serve`` calls it once at start."""
    text = os.environ.get(IDLE_SPIN_ENV, "") or "0"
    try:
        us = float(text)
    except ValueError:
        raise ValueError(f"{IDLE_SPIN_ENV}={text!r}: expected µs, a number such as 150") from None
    return max(0.0, us) / 1e6


class IdleSpin:
    """One per event loop: while armed, one callback per loop turn keeps the loop from sleeping."""

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        self._loop = loop
        self._seconds = seconds
        self._deadline = 0.0
        self._spinning = False

    @property
    def spinning(self) -> bool:
        return self._spinning

    def arm(self) -> None:
        """Poll until ``seconds`` from now (called after each answer; under load it only moves
        the deadline: one callback per turn is already scheduled)."""
        self._deadline = perf_counter() + self._seconds
        if not self._spinning:
            self._spinning = True
            self._loop.call_soon(self._turn)

    def _turn(self) -> None:
        if perf_counter() < self._deadline:
            self._loop.call_soon(self._turn)
        else:
            self._spinning = False


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, IdleSpin] = (
    weakref.WeakKeyDictionary()
)


def for_loop(loop: asyncio.AbstractEventLoop) -> IdleSpin | None:
    """The loop's spinner, or None when the spin is off."""
    seconds = configured_s()
    if seconds <= 0:
        return None
    spin = _by_loop.get(loop)
    if spin is None:
        spin = _by_loop[loop] = IdleSpin(loop, seconds)
    return spin
