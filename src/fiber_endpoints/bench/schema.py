"""The results file's schema, as code: what ``bench`` writes and ``report`` / ``compare`` read.

One JSON document per run (``results/<UTC timestamp>/results.json``). Every phase returns its own
typed part; :func:`validate` checks a document read back (pydantic over these TypedDicts), so a
file of another version or a damaged one is refused with a clear message instead of a KeyError
deep in a table. Bump :data:`SCHEMA` when a field changes meaning.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pydantic

# pydantic reads TypedDicts on Python < 3.12 only from typing_extensions.
from typing_extensions import NotRequired, TypedDict  # noqa: UP035

SCHEMA = "fiber-endpoints/results/2"
LOAD_SCHEMA = "fiber-endpoints.load/2"


class Latency(TypedDict, total=False):
    count: int
    min: float
    mean: float
    max: float
    p50: float
    p90: float
    p99: float
    # also "p99.9" (not an identifier)


class ServerCost(TypedDict, total=False):
    cpu_s: float
    cpu_s_per_1k: float | None  # = CPU ms per request
    wall_s: float
    cpu_util: float
    peak_rss_bytes: int
    processes: int


class ClosedStep(TypedDict):
    """One wrk run. ``rps`` counts 2xx answers only; ``rps_all_answers`` every answer."""

    connections: int
    duration_s: float
    requests: int
    ok: int
    rps: float
    rps_all_answers: float
    errors: int  # socket errors and timeouts
    non2xx: int
    latency_us: Latency
    hdr: str  # HdrHistogram, µs, base64
    client_cpu_s: float
    server: NotRequired[ServerCost]
    rows: NotRequired[int]  # batch steps
    rows_per_s: NotRequired[float]


class OpenStep(TypedDict):
    """One open-loop run (oha) at a constant rate, latency from intended send times."""

    rate: float
    duration_s: float
    scheduled: int
    unsent: int
    requests: int
    ok: int
    achieved_rps: float  # 2xx answers per second in the window
    errors: int
    non2xx: int
    latency_us: Latency
    hdr: str
    service_latency_us: Latency
    service_hdr: str
    max_send_lag_us: float  # sent after its intended time: generator late, or no connection free
    schedule_lag_us: NotRequired[float]  # the generator's own lateness alone (oha's steps)
    client_cpu_s: float
    server: NotRequired[ServerCost]


class Slo(TypedDict):
    slo_ms: float
    max_rate: float | None


class LoadRun(TypedDict):
    """One stack in one round: every step of every mode it ran in that round."""

    round: int
    position: int  # its place in the round's rotated order
    stack: str
    error: str | None
    closed: list[ClosedStep]
    open: list[OpenStep]
    batch: list[ClosedStep]
    health: NotRequired[dict[str, Any]]
    slo: NotRequired[Slo]
    external: NotRequired[bool]


class Ceiling(TypedDict):
    server: str
    closed: list[ClosedStep]
    open: list[OpenStep]
    closed_rps: float
    open_rps: float


class LoadResult(TypedDict):
    schema: str
    generators: dict[str, str]
    placement: dict[str, Any]
    config: dict[str, Any]
    ceiling: Ceiling | None
    # The trivial server again at the end of the phase: how far the machine drifted meanwhile.
    ceiling_end: NotRequired[Ceiling | None]
    runs: list[LoadRun]


class SequentialStack(TypedDict):
    latencies_s: list[list[float]]  # [sample][call]
    server_timing_ms: list[list[float | None]]  # per call: [inference ms, app ms]
    client_cpu_per_call_s: float | None


class SequentialResult(TypedDict):
    client: str
    samples: int
    calls: int
    rows: int
    keep_awake: bool
    stacks: dict[str, SequentialStack]
    diagnostic: list[str]  # rows that are not stacks (the loopback floor)


class Parity(TypedDict):
    ok: bool
    checked_rows: int
    errors: list[str]


class StackRecord(TypedDict):
    url: str
    started_by_bench: bool
    health: dict[str, Any]
    cpus: list[int] | None
    parity: Parity
    # Why the stack refused this model (it cannot compute it exactly): reported, never timed.
    not_eligible: NotRequired[str | None]
    protocol: NotRequired[str]  # what parity (and every phase) spoke to it
    peer: NotRequired[PeerInfo]  # set for a peer (peers/__init__.py), absent for our stacks


class PeerInfo(TypedDict):
    description: str
    protocol: str  # "v2" or "bentoml"
    on: str  # metrics, gRPC, tracing: what it has on besides inference
    ours: bool  # our re-implementation of a server not published as a package
    requirements: str  # its pinned requirements file in the repository


class Verdict(TypedDict):
    ok: bool
    problems: list[str]  # why the run failed (parity, errors under load, ...)


class Fairness(TypedDict):
    """What is the same for every stack and peer of the V2 comparison."""

    server_cpus: list[int] | None
    predictor_threads: int | None
    placement: str
    on: dict[str, str]  # name -> metrics / gRPC / tracing state


class V2Comparison(TypedDict):
    """Our stacks (those the run started) and the peers over V2 (BentoML over its own JSON
    API), through the run's own phases: a results document of its own, nested."""

    protocol: str
    stacks: dict[str, StackRecord]
    fairness: Fairness
    problems: list[str]
    sequential: NotRequired[SequentialResult]
    load: NotRequired[LoadResult]


class ObservabilitySlice(TypedDict):
    rps: float
    p50_us: float
    p99_us: float
    errors: int


class ObservabilityVariant(TypedDict):
    latencies_s: list[list[float]]  # [sample][call], sequential, interleaved with the others
    closed: list[ObservabilitySlice]  # one wrk slice per round


class ObservabilityCost(TypedDict):
    """``bench --observability-cost`` (``bench/observability.py``): per stack, the instances
    off / metrics / trace1 / trace100, measured interleaved."""

    samples: int
    calls: int
    rounds: int
    slice_s: float
    connections: int
    stacks: dict[str, dict[str, ObservabilityVariant]]
    skipped: NotRequired[str]


class StartupRun(TypedDict):
    """One start of a stack: seconds from exec to the first correct answer, and its parts."""

    seconds: float  # exec to the first correct POST /inference answer
    predictor: str


class Startup(TypedDict):
    """Start to first correct answer per stack (``bench/startup.py``)."""

    runs: int
    stacks: dict[str, list[StartupRun]]


class ResultsDoc(TypedDict):
    schema: str
    created: str
    command: list[str]
    machine: dict[str, Any]
    placement: dict[str, Any]
    config: dict[str, Any]
    model: dict[str, Any]
    workload: dict[str, Any]
    stacks: dict[str, StackRecord]
    verdict: Verdict
    sequential: NotRequired[SequentialResult]
    sequential_keep_awake: NotRequired[SequentialResult]
    tracing_cost: NotRequired[dict[str, Any]]
    observability_cost: NotRequired[ObservabilityCost]
    startup: NotRequired[Startup]
    load: NotRequired[LoadResult]
    v2_comparison: NotRequired[V2Comparison]
    soak: NotRequired[dict[str, Any]]  # bench --soak: bench/reliability.py's Soak per stack


class SchemaError(ValueError):
    """A results file this version cannot read."""


@cache
def _adapter() -> pydantic.TypeAdapter[ResultsDoc]:
    return pydantic.TypeAdapter(ResultsDoc)


def validate(doc: Any, where: str = "results") -> ResultsDoc:
    """``doc`` checked against :class:`ResultsDoc`; the document itself is returned unchanged."""
    version = doc.get("schema") if isinstance(doc, dict) else None
    if version != SCHEMA:
        raise SchemaError(
            f"{where}: schema {version!r}, this fiber-endpoints reads {SCHEMA!r} "
            "(rerun `fiber-endpoints bench` to get a file of this version)"
        )
    try:
        _adapter().validate_python(doc, strict=False)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        raise SchemaError(
            f"{where}: not a valid {SCHEMA} document: {path}: {first['msg']} "
            f"({exc.error_count()} problem(s))"
        ) from None
    typed: ResultsDoc = doc
    return typed
