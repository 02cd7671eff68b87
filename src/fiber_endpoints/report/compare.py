"""``fiber-endpoints compare RUN_A RUN_B`` (also ``bench compare``): the same stacks in two
results files side by side, each headline number's change, and whether the change is outside
both runs' spread. A non-zero exit past a threshold lets a team gate a change of server, model or
machine in its own CI.

Spreads: the sequential p50 carries a 95 % interval from resampling whole samples; the numbers
under load (closed-loop peak, rate at SLO, CPU per request) the range over rounds. A change is
"outside the spread" when the two intervals do not overlap: only then can it count as a
regression.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fiber_endpoints import headline, stats
from fiber_endpoints.bench import servers
from fiber_endpoints.report import analysis

# (name, unit, True when higher is better)
METRICS = {
    "seq_p50_us": ("sequential p50", "µs", False),
    "peak_rps": ("closed-loop peak", "req/s", True),
    "slo_rate": ("max rate within SLO", "req/s", True),
    "cpu_us_per_req": ("CPU per request at peak", "µs", False),
}


@dataclass(frozen=True)
class Value:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Change:
    stack: str
    metric: str
    a: Value
    b: Value

    @property
    def relative(self) -> float:
        return self.b.value / self.a.value - 1.0 if self.a.value else float("inf")

    @property
    def outside_spread(self) -> bool:
        return self.b.low > self.a.high or self.b.high < self.a.low

    @property
    def worse_by(self) -> float:
        """How much worse B is than A, as a fraction (negative: better)."""
        higher_is_better = METRICS[self.metric][2]
        return -self.relative if higher_is_better else self.relative

    def regressed(self, threshold: float) -> bool:
        return self.outside_spread and self.worse_by > threshold


def headline_values(doc: Mapping[str, Any]) -> dict[str, dict[str, Value]]:
    """Per stack, every headline number of one run with its spread."""
    out: dict[str, dict[str, Value]] = {}
    seq = doc.get("sequential") or {}
    for name, raw in seq.get("stacks", {}).items():
        if name == servers.FLOOR or not raw["latencies_s"]:
            continue
        b = stats.bootstrap_median_blocks(raw["latencies_s"])
        out.setdefault(name, {})["seq_p50_us"] = Value(
            b["median"] * 1e6, b["low"] * 1e6, b["high"] * 1e6
        )
    by_stack: dict[str, list[dict[str, Any]]] = {}
    for run in (doc.get("load") or {}).get("runs", []):
        if not run.get("error"):
            by_stack.setdefault(run["stack"], []).append(run)
    for name, runs in by_stack.items():
        per_round = {
            "peak_rps": [headline.peak_rps(r["closed"]) for r in runs],
            "slo_rate": [analysis.slo_rate(r) for r in runs],
            "cpu_us_per_req": [
                (headline.cpu_ms_per_request_at_peak(r["closed"]) or 0) * 1000 or None for r in runs
            ],
        }
        for metric, values in per_round.items():
            present = [float(v) for v in values if v is not None]
            med = headline.median(present)
            if med is not None:
                out.setdefault(name, {})[metric] = Value(med, min(present), max(present))
    return out


def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Change]:
    """Every headline number present in both runs, for every stack in both."""
    va, vb = headline_values(a), headline_values(b)
    return [
        Change(stack, metric, va[stack][metric], vb[stack][metric])
        for stack in va
        if stack in vb
        for metric in METRICS
        if metric in va[stack] and metric in vb[stack]
    ]


def lost(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """What run A measured that run B did not (a stack that failed parity or did not start, a
    rate at SLO that no round reached...) and B's own verdict: each is a regression to gate on,
    never a row silently left out."""
    va, vb = headline_values(a), headline_values(b)
    out = [f"{stack}: not measured in B" for stack in va if stack not in vb]
    out += [
        f"{stack}: {METRICS[m][0]} not measured in B"
        for stack in va
        if stack in vb
        for m in va[stack]
        if m not in vb[stack]
    ]
    out += [f"B failed: {p}" for p in (b.get("verdict") or {}).get("problems", [])]
    return out


def markdown(changes: list[Change], threshold: float) -> str:
    lines = [
        "| stack | number | A | B | change | outside spread | verdict |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for c in changes:
        label, unit, _ = METRICS[c.metric]
        verdict = (
            "**REGRESSION**"
            if c.regressed(threshold)
            else ("better" if c.worse_by < 0 and c.outside_spread else "—")
        )
        lines.append(
            f"| {c.stack} | {label} ({unit}) | {c.a.value:,.1f} [{c.a.low:,.1f}, {c.a.high:,.1f}] "
            f"| {c.b.value:,.1f} [{c.b.low:,.1f}, {c.b.high:,.1f}] | {c.relative:+.1%} "
            f"| {'yes' if c.outside_spread else 'no'} | {verdict} |"
        )
    lines += [
        "",
        f"A regression: worse by more than {threshold:.0%} and outside both runs' spread "
        "(sequential p50: 95 % interval resampling whole samples; under load: range over rounds).",
    ]
    return "\n".join(lines)
