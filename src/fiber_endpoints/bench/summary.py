"""The sequential protocol's table, computed once from a results document (never from live
timing): ``bench`` prints it and the report shows it.

Columns: the proof of concept's (mean and median seconds per sample of C calls, its "mean diff."
formula), per-call percentiles, the stack's own Server-Timing, the client's CPU per call, and
the ratio of median per-call latency to the control with a CI from resampling whole interleaved
samples (calls within one sample are correlated). The loopback floor is a diagnostic row: no
ratio, no diff.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fiber_endpoints import stacks, stats

DIFF_FORMULA = "(control mean - stack mean) / ((control mean + stack mean) / 2)"


@dataclass(frozen=True)
class SequentialRow:
    stack: str
    diagnostic: bool  # the loopback floor: not a stack
    samples: int
    calls: int  # per sample
    mean_s: float  # per sample of C calls
    median_s: float
    diff_vs_control_pct: float | None
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    app_p50_ms: float | None  # from Server-Timing
    inference_p50_ms: float | None
    client_cpu_us: float | None
    ratio: dict[str, float] | None  # p50 × control [low, high]


def stack_order(names: Iterable[str], control: str = stacks.CONTROL) -> list[str]:
    """Control first, then registry order, then any other name (targets, peers) by name."""
    known = list(stacks.STACKS)
    unique = list(dict.fromkeys(names))
    rest = sorted(
        (n for n in unique if n != control),
        key=lambda n: (known.index(n) if n in known else len(known), n),
    )
    return ([control] if control in unique else []) + rest


def _median_or_none(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(present)) if present else None


def sequential_rows(seq: Mapping[str, Any], control: str = stacks.CONTROL) -> list[SequentialRow]:
    raw_stacks = seq.get("stacks", {})
    diagnostic = set(seq.get("diagnostic", []))
    totals = {n: [sum(s) for s in r["latencies_s"]] for n, r in raw_stacks.items()}
    means = {n: float(np.mean(t)) for n, t in totals.items() if t}
    ctrl_samples = raw_stacks.get(control, {}).get("latencies_s", [])
    rows = []
    names = stack_order([n for n in raw_stacks if n not in diagnostic], control)
    for name in [*names, *sorted(diagnostic & set(raw_stacks))]:
        raw = raw_stacks[name]
        flat = [v for sample in raw["latencies_s"] for v in sample]
        if not flat:
            continue
        pct = stats.percentile_p999(flat)
        timing = raw.get("server_timing_ms", [])
        cpu = raw.get("client_cpu_per_call_s")
        is_stack = name not in diagnostic
        ratio = None
        if is_stack and ctrl_samples and name != control:
            r = stats.bootstrap_ratio_of_medians_paired_blocks(raw["latencies_s"], ctrl_samples)
            ratio = {"ratio": r["ratio"], "low": r["low"], "high": r["high"]}
        rows.append(
            SequentialRow(
                stack=name,
                diagnostic=not is_stack,
                samples=len(raw["latencies_s"]),
                calls=len(raw["latencies_s"][0]),
                mean_s=means[name],
                median_s=float(np.median(totals[name])),
                diff_vs_control_pct=(
                    stats.mean_diff_percent(means[name], means[control])
                    if is_stack and control in means and name != control
                    else None
                ),
                p50_us=pct["p50"] * 1e6,
                p90_us=pct["p90"] * 1e6,
                p99_us=pct["p99"] * 1e6,
                p999_us=pct["p99.9"] * 1e6,
                app_p50_ms=_median_or_none(t[1] for t in timing),
                inference_p50_ms=_median_or_none(t[0] for t in timing),
                client_cpu_us=cpu * 1e6 if cpu is not None else None,
                ratio=ratio,
            )
        )
    return rows


def _fmt(v: float | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def diff_label(row: SequentialRow, control: str = stacks.CONTROL) -> str:
    if row.diagnostic:
        return "floor (diagnostic)"
    if row.stack == control:
        return "control"
    return _fmt(row.diff_vs_control_pct, ".2f") + "%"


def sequential_markdown(
    seq: Mapping[str, Any], placement: Mapping[str, Any], control: str = stacks.CONTROL
) -> str:
    """The proof of concept's table as ``bench`` prints it (plain Markdown, never wrapped)."""
    calls = seq["calls"]
    header = (
        f"| stack | mean s / {calls} calls | median s / {calls} calls | mean diff. vs control "
        "| p50 ms | p90 ms | p99 ms | server app p50 ms | inference p50 ms "
        "| client CPU µs/call |"
    )
    lines = [header, "|" + " --- |" * 10]
    for r in sequential_rows(seq, control):
        lines.append(
            f"| {r.stack} | {r.mean_s:.6f} | {r.median_s:.6f} | {diff_label(r, control)} "
            f"| {r.p50_us / 1e3:.3f} | {r.p90_us / 1e3:.3f} | {r.p99_us / 1e3:.3f} "
            f"| {_fmt(r.app_p50_ms, '.3f')} | {_fmt(r.inference_p50_ms, '.3f')} "
            f"| {_fmt(r.client_cpu_us, '.0f')} |"
        )
    awake = " CPUs kept awake (--keep-awake)." if seq.get("keep_awake") else ""
    lines += [
        "",
        f"{seq['samples']} samples × {calls} sequential keep-alive calls per stack, interleaved, "
        f"on {seq.get('rows', '?')} rows of the workload; client `{seq['client']}` on CPUs "
        f"{placement.get('client_cpus')}, servers on CPUs {placement.get('server_cpus')}.{awake} "
        f"Mean diff. vs control = {DIFF_FORMULA}, as in the proof of concept. Per-call "
        "percentiles over every call; server app/inference from each response's Server-Timing. "
        "The loopback floor is a trivial C server: what the machine and client cost alone.",
    ]
    return "\n".join(lines)
