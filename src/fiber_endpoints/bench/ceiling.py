"""The load generators' own ceiling: wrk and oha against the trivial C server placed like a
stack. A stack whose numbers approach it is measured up to the tool, not to its own limit.

Measured at the start and again at the end of the load phase: the same server, the same
settings, so how far the two differ is how far the machine itself drifted during the run.
"""

from __future__ import annotations

from collections.abc import Sequence

from fiber_endpoints import contract, headline
from fiber_endpoints.bench import oha, servers, wrk
from fiber_endpoints.bench.schema import Ceiling

CONNECTIONS = 16
SECONDS = 1.5
WARMUP_S = 0.3
# A run whose ceiling moved by more than this between its start and its end is flagged.
MAX_DRIFT = 0.25


def measure(
    server_cpus: Sequence[int], client_cpus: Sequence[int], bodies: Sequence[bytes]
) -> Ceiling:
    with servers.floor_server(server_cpus) as floor:
        wrk.run(floor.url, contract.INFERENCE_PATH, bodies, connections=CONNECTIONS,
                duration_s=WARMUP_S, cpus=client_cpus)  # fmt: skip
        closed = wrk.run(
            floor.url,
            contract.INFERENCE_PATH,
            bodies,
            connections=CONNECTIONS,
            duration_s=SECONDS,
            cpus=client_cpus,
        ).to_json()
        # Ask oha for what wrk reached: what it achieves is its own ceiling.
        opened = oha.run(
            floor.url,
            contract.INFERENCE_PATH,
            bodies,
            rate=max(1.0, round(closed["rps"])),
            duration_s=SECONDS,
            warmup_s=WARMUP_S,
            cpus=client_cpus,
        ).to_json()
    return {
        "server": servers.FLOOR_DESCRIPTION,
        "closed": [closed],  # type: ignore[list-item]
        "open": [opened],  # type: ignore[list-item]
        "closed_rps": float(closed["rps"]),
        "open_rps": float(opened["achieved_rps"]),
    }


def drift(start: Ceiling | None, end: Ceiling | None) -> float | None:
    """How far the closed-loop ceiling moved between the start and the end of the phase."""
    if not start or not end:
        return None
    return headline.drift(start["closed_rps"], end["closed_rps"])
