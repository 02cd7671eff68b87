"""The SLO and the headline numbers, one definition each: pure functions over raw load steps.

The load lab decides with these which open-loop rate met the SLO, the report prints them and the
plots mark them; nothing else decides what "within SLO", "peak" or "× control" means.

A step is a raw record of the results file (``bench/load.py``): a closed-loop step has
``rps`` (2xx answers per second), an open-loop step ``rate`` and ``achieved_rps``; both have
``requests``, ``errors`` (socket errors) and ``non2xx``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DEFAULT_SLO_MS = 10.0
# An open-loop step must deliver this share of its rate (else the server fell behind).
MIN_ACHIEVED_SHARE = 0.95
# At most this share of a step's scheduled requests may go unsent by the generator.
MAX_UNSENT_SHARE = 0.01
# A stack whose answers in a step were mostly failures did not serve: the run fails.
MOSTLY_ERRORS_SHARE = 0.5
MIN_ROUNDS_FOR_RANGE = 2

Step = Mapping[str, Any]


def failures(step: Step) -> int:
    """Answers that were not 2xx plus requests lost to socket errors or timeouts."""
    return int(step.get("errors", 0)) + int(step.get("non2xx", 0))


def error_share(step: Step) -> float:
    """Failures over everything attempted in the step (0 when nothing was attempted). An open
    step's ``requests`` are the requests sent, failed ones included; a closed step's are the
    answers, and its socket errors come on top."""
    sent = int(step.get("requests", 0))
    attempted = sent if "rate" in step else sent + int(step.get("errors", 0))
    return min(1.0, failures(step) / attempted) if attempted else 0.0


def within_slo(
    *,
    p99_us: float | None,
    slo_ms: float,
    failures: int,
    achieved_rps: float,
    rate: float,
    unsent: float = 0.0,
    scheduled: float = 0.0,
) -> bool:
    """The SLO: p99 (from each request's intended send time) at most ``slo_ms``, no failed
    request, at least 95 % of the rate delivered, and (almost) every scheduled request sent."""
    return bool(
        p99_us is not None
        and p99_us <= slo_ms * 1000.0
        and failures == 0
        and achieved_rps >= MIN_ACHIEVED_SHARE * rate
        and unsent <= MAX_UNSENT_SHARE * scheduled
    )


def step_within_slo(step: Step, slo_ms: float) -> bool:
    """:func:`within_slo` of one raw open-loop step."""
    lat = step.get("latency_us") or {}
    return within_slo(
        p99_us=lat.get("p99") if lat.get("count", 0) > 0 else None,
        slo_ms=slo_ms,
        failures=failures(step),
        achieved_rps=float(step.get("achieved_rps", 0.0)),
        rate=float(step["rate"]),
        unsent=float(step.get("unsent", 0)),
        scheduled=float(step.get("scheduled", 0)),
    )


def max_rate_under_slo(open_steps: Sequence[Step], slo_ms: float) -> float | None:
    """Throughput at SLO: the highest rate tried whose step met the SLO (None: none did)."""
    ok = [float(s["rate"]) for s in open_steps if step_within_slo(s, slo_ms)]
    return max(ok) if ok else None


def plan_rates(
    peak_rps: float | None, fractions: Sequence[float], fixed: Sequence[float] = ()
) -> list[float]:
    """Open-loop rates: ``fixed`` when given, else fractions of the closed-loop peak."""
    if fixed:
        return [float(r) for r in fixed]
    if not peak_rps or peak_rps <= 0:
        raise ValueError("no closed-loop peak to derive open-loop rates from: give --rate")
    return [float(max(1, round(f * peak_rps))) for f in fractions]


def peak_step(closed_steps: Sequence[Step]) -> Step | None:
    """The closed-loop step with the most 2xx answers per second."""
    return max(closed_steps, key=lambda s: float(s["rps"]), default=None)


def peak_rps(closed_steps: Sequence[Step]) -> float | None:
    best = peak_step(closed_steps)
    return float(best["rps"]) if best is not None else None


def cpu_ms_per_request_at_peak(closed_steps: Sequence[Step]) -> float | None:
    """The server's CPU per request (ms) at the peak step (cpu s per 1,000 = ms per request)."""
    best = peak_step(closed_steps)
    value = (best or {}).get("server", {}).get("cpu_s_per_1k")
    return float(value) if value is not None else None


def median(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return float(np.median(vals)) if vals else None


def ratio_over_rounds(
    values: Sequence[float | None], control: Sequence[float | None]
) -> dict[str, Any] | None:
    """A stack against the control: median over median, with the range of the per-round ratios
    (round r of the stack against round r of the control: they ran side by side). With 2-6
    rounds a bootstrap would pretend to a precision the data do not have; the range shows it."""
    pairs = [(float(v), float(c)) for v, c in zip(values, control, strict=False)
             if v is not None and c is not None and c]  # fmt: skip
    a, b = median(values), median(control)
    if a is None or not b:
        return None
    out: dict[str, Any] = {"ratio": a / b, "n": len(pairs)}
    if len(pairs) >= MIN_ROUNDS_FOR_RANGE:
        per_round = [v / c for v, c in pairs]
        out["min"], out["max"] = min(per_round), max(per_round)
    return out


def drift(first: float | None, last: float | None) -> float | None:
    """How far a reference moved over a run: |last - first| / first."""
    if first is None or last is None or first <= 0:
        return None
    return abs(last - first) / first
