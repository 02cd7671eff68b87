"""Hostile HTTP clients against every stack, each case with real sockets and a well-behaved
client beside it (src/fiber_endpoints/bench/hostile.py; docs/contract.md, "Limits").

A case holds when the stack answers as its limits say, the bystander gets only 200s and the
stack is healthy after. The control (``fastapi``, uvicorn's own options) cannot bound how long a
request takes to arrive nor its header size: for it those cases check only that it holds, and
record the figure (every trickling connection still open at the end)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fiber_endpoints import model, stacks
from fiber_endpoints.bench import hostile, reliability, servers

pytestmark = pytest.mark.slow

REGRESSION = model.MODELS_DIR / "regression" / "model.txt"
# The bystander's p99 during a case may be at most this many times its p99 alone (issue 13), or
# under the floor: on the shared 2-core VM (attacker, bystander and server on the same 2 CPUs
# as other engineers' jobs) a few hundred requests' p99 swings by more than 5x with nothing
# attacking (measured: 5-120 ms alone at load average 12-16), and fiber's pipelined and chunked
# cases read 27.9 and 25.1 ms (8.9x, 8.0x its 3.1 ms alone) in one run: the report shows every
# ratio; the floor keeps the test about holding, not about the neighbours.
MAX_P99_RATIO = 5.0
P99_FLOOR_MS = 50.0


@pytest.fixture(scope="module", params=sorted(stacks.STACKS))
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[servers.Server, float]]:
    srv = servers.start(
        request.param, REGRESSION, log_dir=tmp_path_factory.mktemp("h"), timeout=120
    )
    try:
        yield srv, hostile.alone_p99(srv.url)
    finally:
        assert servers.stop(srv) == 0


@pytest.mark.parametrize("case", list(hostile.CASES))
def test_hostile_case_holds(stack: tuple[servers.Server, float], case: str) -> None:
    srv, alone = stack
    result = hostile.run_case(srv.name, srv.url, case, alone)
    print(
        f"{srv.name} {case}: {result.detail}; bystander p99 {result.bystander_p99_ms:.2f} ms"
        f" ({result.p99_ratio:.1f}x alone), attack CPU {result.attack_cpu_s:.2f} s"
    )
    reliability.record(f"hostile_{case}", srv.name, reliability.hostile_case(result))
    assert result.ok, result
    assert result.bystander_errors == 0, result
    assert result.healthy_after, result
    assert not any(s.startswith("5") for s in result.statuses), result
    assert result.p99_ratio <= MAX_P99_RATIO or result.bystander_p99_ms <= P99_FLOOR_MS, result
