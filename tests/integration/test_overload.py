"""Overload and soak (issue 13), every stack as a real process on loopback.

Overload: the server under a 0.25-CPU cgroup quota (one generator core cannot send twice a fast
stack's uncapped peak), its closed-loop peak measured under the cap, then 2x that peak open loop
for 30 s (bench/reliability.py). The stack stays up, its memory stays bounded, and within 5 s of
the load's end its latency is back to normal. Soak, short for CI (``bench --soak 10`` is the
documented run): half the peak, 0 errors, RSS drift reported (held under 5 % only over the
documented run: 20 s is mostly warm-up).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fiber_endpoints import model, stacks
from fiber_endpoints.bench import reliability, servers

pytestmark = pytest.mark.slow

REGRESSION = model.MODELS_DIR / "regression" / "model.txt"
RSS_GROWTH_MIB = 256  # "bounded": what 2x overload may add to a stack's memory
# The control misses the 5 s recovery (measured 8.3 and 13.1 s): uvicorn keeps computing requests
# whose client gave up, and it has no option to bound that (docs/contract.md, "Overload": what
# to put in front). It must still come back within the probing window.
SLOW_RECOVERY = {"fastapi"}


@pytest.mark.parametrize("stack", sorted(stacks.STACKS))
def test_twice_the_capped_peak(stack: str, tmp_path: Path) -> None:
    result = reliability.overload(stack, REGRESSION, tmp_path)
    print(f"{stack}: {result}")
    reliability.record("overload", stack, result)
    assert result["up_after"]
    assert result["peak_rps"] > 0 and result["sent"] > 0
    assert result["rss_max_mib"] - result["rss_before_mib"] <= RSS_GROWTH_MIB
    assert result["recovery_s"] is not None
    if stack not in SLOW_RECOVERY:
        assert result["recovery_s"] <= reliability.RECOVERY_GOAL_S


@pytest.mark.parametrize("stack", sorted(stacks.STACKS))
def test_short_soak_has_no_errors(stack: str, tmp_path: Path) -> None:
    with servers.running(stack, REGRESSION, log_dir=tmp_path) as server:
        result = reliability.soak(server, minutes=20 / 60, slice_s=5)
    print(f"{stack}: {result['errors']} errors in {result['requests']}, "
          f"RSS drift {result['rss_drift_pct']:+.2f} %")  # fmt: skip
    assert result["errors"] == 0
    assert len(result["slices"]) == 4
