"""The proof of concept's table, computed from a results document (never from live timing)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from fiber_endpoints import stacks, stats

DIFF_FORMULA = "(control mean - stack mean) / ((control mean + stack mean) / 2)"


@dataclass(frozen=True)
class SequentialRow:
    stack: str
    mean_s: float  # per sample of C calls
    median_s: float
    diff_vs_control_pct: float | None
    p50_ms: float
    p90_ms: float
    p99_ms: float
    app_p50_ms: float | None  # from Server-Timing
    inference_p50_ms: float | None
    client_cpu_us: float | None


def _median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(present)) if present else None


def sequential_rows(doc: dict[str, Any], control: str = stacks.CONTROL) -> list[SequentialRow]:
    seq = doc["sequential"]
    totals = {n: [sum(s) for s in r["latencies_s"]] for n, r in seq["stacks"].items()}
    means = {n: float(np.mean(t)) for n, t in totals.items()}
    rows = []
    for name, raw in seq["stacks"].items():
        flat = [v for sample in raw["latencies_s"] for v in sample]
        pct = stats.percentiles(flat)
        timing = raw.get("server_timing_ms", [])
        cpu = raw.get("client_cpu_per_call_s")
        rows.append(
            SequentialRow(
                stack=name,
                mean_s=means[name],
                median_s=float(np.median(totals[name])),
                diff_vs_control_pct=(
                    stats.mean_diff_percent(means[name], means[control])
                    if control in means
                    else None
                ),
                p50_ms=pct["p50"] * 1e3,
                p90_ms=pct["p90"] * 1e3,
                p99_ms=pct["p99"] * 1e3,
                app_p50_ms=_median_or_none([t[1] for t in timing]),
                inference_p50_ms=_median_or_none([t[0] for t in timing]),
                client_cpu_us=cpu * 1e6 if cpu is not None else None,
            )
        )
    return rows


def _fmt(v: float | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def sequential_markdown(doc: dict[str, Any], control: str = stacks.CONTROL) -> str:
    seq = doc["sequential"]
    calls = seq["calls"]
    header = (
        f"| stack | mean s / {calls} calls | median s / {calls} calls | mean diff. vs control "
        "| p50 ms | p90 ms | p99 ms | server app p50 ms | inference p50 ms "
        "| client CPU µs/call |"
    )
    lines = [header, "|" + " --- |" * 10]
    for r in sequential_rows(doc, control):
        diff = "control" if r.stack == control else _fmt(r.diff_vs_control_pct, ".2f") + "%"
        lines.append(
            f"| {r.stack} | {r.mean_s:.6f} | {r.median_s:.6f} | {diff} | {r.p50_ms:.3f} "
            f"| {r.p90_ms:.3f} | {r.p99_ms:.3f} | {_fmt(r.app_p50_ms, '.3f')} "
            f"| {_fmt(r.inference_p50_ms, '.3f')} | {_fmt(r.client_cpu_us, '.0f')} |"
        )
    place = doc.get("placement", {})
    lines += [
        "",
        f"{seq['samples']} samples × {calls} sequential keep-alive calls per stack, interleaved, "
        f"on the seed's {seq.get('rows', 100)} rows; client `{seq['client']}` on CPUs "
        f"{place.get('client_cpus')}, servers on CPUs {place.get('server_cpus')}. "
        f"Mean diff. vs control = {DIFF_FORMULA}, as in the proof of concept. Per-call "
        "percentiles over every call; server app/inference from each response's Server-Timing.",
    ]
    return "\n".join(lines)
