"""From a raw results document to the numbers the report shows: pure functions, no I/O.

Rounds are the unit of repetition for throughput, throughput at SLO and CPU per request: a ratio
against the control stack is the ratio of the medians over rounds, with the range of the
per-round ratios. Latency ratios under load resample requests (from the merged HDR histograms of
all rounds); the sequential ratio resamples whole interleaved samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fiber_endpoints import stats
from fiber_endpoints.bench import summary

CONTROL = "fastapi"
STALL_FACTOR = 20.0  # a closed-loop step whose max exceeds 20x its p99 hid a stall
STALL_MIN_US = 50_000.0
NEAR_CEILING = 0.7  # a stack above 70 % of the generator's ceiling is measured up to the tool
MIN_ROUNDS_FOR_RANGE = 2


def stack_order(names: Iterable[str], control: str = CONTROL) -> list[str]:
    """Control first, then the others in a stable order (registry order where known)."""
    from fiber_endpoints import stacks

    known = list(stacks.STACKS)
    unique = list(dict.fromkeys(names))
    rest = sorted(
        (n for n in unique if n != control),
        key=lambda n: (known.index(n) if n in known else len(known), n),
    )
    return ([control] if control in unique else []) + rest


def runs_by_stack(load: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for run in load.get("runs", []):
        if not run.get("error"):
            out.setdefault(run["stack"], []).append(run)
    return {name: out[name] for name in stack_order(out)}


def failed_runs(load: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in load.get("runs", []) if r.get("error")]


def median(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return float(np.median(vals)) if vals else None


@dataclass
class StepSummary:
    """One step (a connection count, a rate, a batch size) merged over rounds."""

    key: float
    rounds: int
    rps: float | None  # median over rounds
    latency: dict[str, Any]  # of the merged histogram
    errors: int
    non2xx: int
    cpu_ms_per_req: float | None
    peak_rss_mib: float | None
    client_cpu_util: float | None
    extra: dict[str, Any]

    @property
    def stalled(self) -> bool:
        return closed_loop_stall(self.latency)


def closed_loop_stall(latency: dict[str, Any]) -> bool:
    """A closed loop records a stall as ONE slow request per connection: p99 stays low while the
    max is huge. Flag it, so the stall is not hidden (the open loop measures what it costs)."""
    if not latency.get("count"):
        return False
    mx, p99 = float(latency["max"]), float(latency["p99"])
    return mx >= STALL_MIN_US and mx >= STALL_FACTOR * max(p99, 1.0)


def _merge_steps(
    steps: Sequence[dict[str, Any]], key: float, hdr: str = "hdr", rps_key: str = "rps"
) -> StepSummary:
    merged = stats.merge_histograms(s[hdr] for s in steps if s.get(hdr))
    cpu = [s.get("server", {}).get("cpu_s_per_1k") for s in steps]
    rss = [s.get("server", {}).get("peak_rss_bytes") for s in steps]
    util = [s.get("client_cpu_util") for s in steps]
    rss_med = median(rss)
    return StepSummary(
        key=key,
        rounds=len(steps),
        rps=median([s.get(rps_key) for s in steps]),
        latency=stats.histogram_summary(merged),
        errors=sum(int(s.get("errors", 0)) for s in steps),
        non2xx=sum(int(s.get("non2xx", 0)) for s in steps),
        cpu_ms_per_req=median(cpu),  # s per 1,000 requests == ms per request
        peak_rss_mib=rss_med / 2**20 if rss_med is not None else None,
        client_cpu_util=median(util),
        extra={
            "max_send_lag_us": median([s.get("max_send_lag_us") for s in steps]),
            "rows_per_s": median([s.get("rows_per_s") for s in steps]),
            "unsent": median([s.get("unsent") for s in steps]),
        },
    )


def closed_steps(runs: Sequence[dict[str, Any]]) -> list[StepSummary]:
    by: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        for s in run.get("closed", []):
            by.setdefault(int(s["connections"]), []).append(s)
    return [_merge_steps(v, k) for k, v in sorted(by.items())]


def batch_steps(runs: Sequence[dict[str, Any]]) -> list[StepSummary]:
    by: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        for s in run.get("batch", []):
            by.setdefault(int(s["rows"]), []).append(s)
    return [_merge_steps(v, k) for k, v in sorted(by.items())]


def open_steps(runs: Sequence[dict[str, Any]]) -> list[StepSummary]:
    """Open-loop steps by their position in the rate plan (rates are per-round fractions of each
    round's own peak, so they differ a little between rounds); ``key`` is the median rate."""
    by: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        for i, s in enumerate(run.get("open", [])):
            by.setdefault(i, []).append(s)
    out = []
    for _, steps in sorted(by.items()):
        summary = _merge_steps(
            steps, median([s["rate"] for s in steps]) or 0.0, rps_key="achieved_rps"
        )
        summary.extra["service_latency"] = stats.histogram_summary(
            stats.merge_histograms(s["service_hdr"] for s in steps if s.get("service_hdr"))
        )
        out.append(summary)
    return out


def ratio_over_rounds(
    values: Sequence[float | None], control: Sequence[float | None]
) -> dict[str, Any] | None:
    """Median over median, and the range of the per-round ratios (round r of the stack against
    round r of the control: they ran back to back). A bootstrap over 2-3 rounds would pretend
    to a precision the data do not have; the range shows the spread as it is."""
    pairs = [(float(v), float(c)) for v, c in zip(values, control, strict=False)
             if v is not None and c is not None and c]  # fmt: skip
    a = [float(v) for v in values if v is not None]
    b = [float(v) for v in control if v is not None]
    if not a or not b:
        return None
    out: dict[str, Any] = {"ratio": float(np.median(a) / np.median(b)), "n": len(pairs)}
    if len(pairs) >= MIN_ROUNDS_FOR_RANGE:
        per_round = [v / c for v, c in pairs]
        out["min"], out["max"] = min(per_round), max(per_round)
    return out


def peak_rps(run: dict[str, Any]) -> float | None:
    vals = [s["rps"] for s in run.get("closed", [])]
    return max(vals) if vals else None


def slo_rate(run: dict[str, Any]) -> float | None:
    slo = run.get("slo") or {}
    value = slo.get("max_rate")
    return float(value) if value is not None else None


def peak_cpu(run: dict[str, Any]) -> float | None:
    """CPU ms per request at the closed-loop step with the highest throughput."""
    steps = run.get("closed", [])
    if not steps:
        return None
    best = max(steps, key=lambda s: s["rps"])
    value = best.get("server", {}).get("cpu_s_per_1k")
    return float(value) if value is not None else None


def latency_ratio(
    runs: Sequence[dict[str, Any]], control: Sequence[dict[str, Any]], connections: int
) -> dict[str, Any] | None:
    """Ratio of median latencies at one closed-loop step, resampling requests."""

    def hist(rs: Sequence[dict[str, Any]]) -> Any:
        return stats.merge_histograms(
            s["hdr"] for r in rs for s in r.get("closed", []) if s["connections"] == connections
        )

    ha, hb = hist(runs), hist(control)
    if ha.get_total_count() == 0 or hb.get_total_count() == 0:
        return None
    va, ca = stats.histogram_values_counts(ha)
    vb, cb = stats.histogram_values_counts(hb)
    res = stats.bootstrap_ratio_of_medians(
        va, vb, sample_counts=ca, control_counts=cb, resamples=1000
    )
    return {
        "ratio": res["ratio"],
        "low": res["low"],
        "high": res["high"],
        "n": int(min(res["n_sample"], res["n_control"])),
    }


@dataclass
class StackSummary:
    name: str
    rounds: int
    peak_rps: float | None
    p99_at_peak_us: float | None
    slo_rate: float | None
    cpu_ms_per_req: float | None
    peak_rss_mib: float | None
    ratios: dict[str, dict[str, Any] | None]


def summarise(load: dict[str, Any], control: str = CONTROL) -> list[StackSummary]:
    by = runs_by_stack(load)
    ctrl = by.get(control, [])
    first_c = min((s["connections"] for r in ctrl for s in r.get("closed", [])), default=None)
    out = []
    for name, runs in by.items():
        closed = closed_steps(runs)
        best = max(closed, key=lambda s: s.rps or 0.0) if closed else None
        ratios: dict[str, dict[str, Any] | None] = {}
        if ctrl:
            ratios["peak_rps"] = ratio_over_rounds(
                [peak_rps(r) for r in runs], [peak_rps(r) for r in ctrl]
            )
            ratios["slo_rate"] = ratio_over_rounds(
                [slo_rate(r) for r in runs], [slo_rate(r) for r in ctrl]
            )
            ratios["cpu_per_req"] = ratio_over_rounds(
                [peak_cpu(r) for r in runs], [peak_cpu(r) for r in ctrl]
            )
            if first_c is not None:
                ratios["p50_latency"] = latency_ratio(runs, ctrl, first_c)
        out.append(
            StackSummary(
                name=name,
                rounds=len(runs),
                peak_rps=median([peak_rps(r) for r in runs]),
                p99_at_peak_us=best.latency.get("p99") if best else None,
                slo_rate=median([slo_rate(r) for r in runs]),
                cpu_ms_per_req=median([peak_cpu(r) for r in runs]),
                peak_rss_mib=max((s.peak_rss_mib or 0.0 for s in closed), default=None),
                ratios=ratios,
            )
        )
    return out


def ceiling_rps(load: dict[str, Any]) -> tuple[float | None, float | None]:
    c = load.get("ceiling") or {}
    return c.get("closed_rps"), c.get("open_rps")


def sequential_rows(seq: dict[str, Any], control: str = CONTROL) -> list[dict[str, Any]]:
    """Per stack: the proof of concept's columns as ``bench`` prints them (``bench/summary.py``:
    mean and median seconds per sample, mean diff. vs control, Server-Timing medians), plus
    per-call percentiles incl. p99.9 (µs) and the ratio of median per-call latency to the control
    with a CI from resampling whole interleaved samples (calls within one are correlated)."""
    stacks_raw = seq.get("stacks", {})
    if not stacks_raw:
        return []
    base = {r.stack: r for r in summary.sequential_rows({"sequential": seq}, control)}
    ctrl_samples = stacks_raw.get(control, {}).get("latencies_s", [])
    rows = []
    for name in stack_order(stacks_raw, control):
        samples = stacks_raw[name].get("latencies_s", [])
        calls = np.asarray([x for s in samples for x in s], dtype=np.float64)
        if calls.size == 0:
            continue
        b = base[name]
        row: dict[str, Any] = {
            "stack": name,
            "samples": len(samples),
            "calls": int(calls.size),
            "mean_total_s": b.mean_s,
            "total_s": b.median_s,
            **{k: v * 1e6 for k, v in stats.percentile_p999(calls.tolist()).items()},
            "inference_ms": b.inference_p50_ms,
            "app_ms": b.app_p50_ms,
            "mean_diff_pct": b.diff_vs_control_pct,
        }
        if ctrl_samples:
            r = stats.bootstrap_ratio_of_medians_paired_blocks(samples, ctrl_samples)
            row["ratio"] = {"ratio": r["ratio"], "low": r["low"], "high": r["high"]}
        rows.append(row)
    return rows
