"""The opt-in idle spin (stacks/idle_spin.py): a real uvloop loop, timed by its own clock."""

from __future__ import annotations

import asyncio
import time

import pytest
import uvloop

from fiber_endpoints.stacks import idle_spin


def turns_while(loop: asyncio.AbstractEventLoop, spin: idle_spin.IdleSpin) -> tuple[int, float]:
    """Loop turns run, and seconds taken, until the armed spinner stops."""
    turns = 0

    async def count() -> None:
        nonlocal turns
        while spin.spinning:
            turns += 1
            await asyncio.sleep(0)

    started = time.perf_counter()
    spin.arm()
    loop.run_until_complete(count())
    return turns, time.perf_counter() - started


def test_an_armed_spinner_keeps_the_loop_turning_for_its_time_then_stops() -> None:
    loop = uvloop.new_event_loop()
    try:
        spin = idle_spin.IdleSpin(loop, 0.02)
        turns, took = turns_while(loop, spin)
        assert 0.02 <= took < 0.5
        assert turns > 100  # it polled, it did not sleep 20 ms in one turn
        assert not spin.spinning
    finally:
        loop.close()


def test_arming_again_while_spinning_moves_the_deadline() -> None:
    loop = uvloop.new_event_loop()
    try:
        spin = idle_spin.IdleSpin(loop, 0.02)

        async def rearm_halfway() -> float:
            await asyncio.sleep(0.01)
            spin.arm()  # as an answer in the middle of the spin does
            return time.perf_counter()

        spin.arm()
        rearmed = loop.run_until_complete(rearm_halfway())
        while spin.spinning:
            loop.run_until_complete(asyncio.sleep(0))
        assert time.perf_counter() - rearmed >= 0.02
    finally:
        loop.close()


def test_off_by_default_and_one_spinner_per_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = uvloop.new_event_loop()
    try:
        monkeypatch.delenv(idle_spin.IDLE_SPIN_ENV, raising=False)
        assert idle_spin.for_loop(loop) is None
        monkeypatch.setenv(idle_spin.IDLE_SPIN_ENV, "150")
        assert idle_spin.configured_s() == pytest.approx(150e-6)
        first = idle_spin.for_loop(loop)
        assert first is not None and idle_spin.for_loop(loop) is first
    finally:
        loop.close()


def test_a_malformed_setting_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(idle_spin.IDLE_SPIN_ENV, "150us")
    with pytest.raises(ValueError, match=idle_spin.IDLE_SPIN_ENV):
        idle_spin.configured_s()
