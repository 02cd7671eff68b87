"""Test tiers: every test belongs to exactly one, and each tier has a wall-time budget.

- ``unit``: everything under ``tests/unit/`` (in process, seconds), unless marked otherwise.
- ``contract``: marked ``contract``: each stack started as a real process on loopback, the
  contract suite and golden parity.
- ``slow``: marked ``slow``: a real Jaeger, the load lab, coordinated omission, the Dockerfiles'
  commands run natively, a short ``bench``; also a unit-style test too slow for the unit tier.

``pytest --tier NAME`` (``make test-NAME``) runs one tier, prints ``tier NAME: N s`` (wall time
of the whole pytest process) as its last line and fails when that exceeds the tier's budget
(``tier_budgets_s`` in pyproject.toml, the one place budgets are written). A tier that selects no
tests exits 0. Without ``--tier``, pytest runs every test and checks no budget.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

TIERS = ("unit", "contract", "slow")
MARKED_TIERS = ("contract", "slow")  # set by the tests themselves; "unit" comes from the folder
UNIT_DIR = Path(__file__).resolve().parent / "unit"
_LINE = pytest.StashKey[tuple[str, bool]]()  # the tier's last line, and whether it is bad news

_started = time.monotonic()


def _process_age_s() -> float:
    """Seconds since this process started (interpreter and pytest's own imports included)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _started


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tier",
        choices=TIERS,
        help="run one test tier and check its wall-time budget (tier_budgets_s)",
    )
    parser.addini(
        "tier_budgets_s",
        type="linelist",
        help="NAME=SECONDS: the most wall time `pytest --tier NAME` may take",
    )


def budgets(config: pytest.Config) -> dict[str, float]:
    out = {}
    for line in config.getini("tier_budgets_s"):
        name, _, seconds = str(line).partition("=")
        out[name.strip()] = float(seconds)
    missing = set(TIERS) - set(out)
    if missing:
        raise pytest.UsageError(f"tier_budgets_s has no budget for {sorted(missing)}")
    return out


def tier_of(item: pytest.Item) -> str | None:
    marked = [name for name in MARKED_TIERS if item.get_closest_marker(name)]
    if len(marked) > 1:
        return None
    if marked:
        return marked[0]
    return "unit" if UNIT_DIR in item.path.resolve().parents else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    untiered = [item.nodeid for item in items if tier_of(item) is None]
    if untiered:
        raise pytest.UsageError(
            "every test outside tests/unit/ needs exactly one tier marker (contract or slow; "
            f"tests/conftest.py): {untiered[:10]}"
        )
    for item in items:
        if tier_of(item) == "unit":
            item.add_marker(pytest.mark.unit)
    tier = config.getoption("tier")
    if tier is None:
        return
    budgets(config)  # a missing budget is a usage error before anything runs
    keep = [item for item in items if tier_of(item) == tier]
    dropped = [item for item in items if tier_of(item) != tier]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    tier = config.getoption("tier")
    if tier is None:
        return
    elapsed = _process_age_s()
    budget = budgets(config)[tier]
    line = f"tier {tier}: {elapsed:.1f} s (budget {budget:g} s)"
    red = False
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK
        line += ", no tests selected"
    if elapsed > budget:
        line += (
            f" -- OVER BUDGET by {elapsed - budget:.1f} s: make the slow tests faster, move them"
            " to a slower tier, or raise tier_budgets_s in pyproject.toml with the measured times"
        )
        red = True
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    config.stash[_LINE] = (line, red)


def pytest_unconfigure(config: pytest.Config) -> None:
    """The tier's line comes last, after pytest's own summary."""
    if _LINE not in config.stash:
        return
    line, red = config.stash[_LINE]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line, red=red, bold=True)
    else:
        print(line)
