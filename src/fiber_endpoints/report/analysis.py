"""From a raw results document to the numbers the report shows: pure functions, no I/O.

Rounds are the unit of repetition for throughput, throughput at SLO and CPU per request: a ratio
against the control stack is the ratio of the medians over rounds, with the range of the
per-round ratios. Latency ratios under load resample requests (from the merged HDR histograms of
all rounds); the sequential ratio resamples whole interleaved samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fiber_endpoints import headline, stacks, stats
from fiber_endpoints.bench import summary
from fiber_endpoints.headline import median

CONTROL = stacks.CONTROL
STALL_FACTOR = 20.0  # a closed-loop step whose max exceeds 20x its p99 hid a stall
STALL_MIN_US = 50_000.0
NEAR_CEILING = 0.7  # a stack above 70 % of the generator's ceiling is measured up to the tool
SEND_LAG_FLAG_US = 10_000  # an open-loop generator this far behind schedule is flagged


def runs_by_stack(load: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every stack's round records, in round order. A round that failed part-way keeps the steps
    it finished (its other numbers are missing, not zero); ``failed_runs`` lists why."""
    out: dict[str, list[dict[str, Any]]] = {}
    for run in sorted(load.get("runs", []), key=lambda r: r["round"]):
        out.setdefault(run["stack"], []).append(run)
    return {name: out[name] for name in summary.stack_order(out)}


def by_round(runs: Sequence[dict[str, Any]], value: Any, rounds: Sequence[int]) -> list[Any]:
    """``value(run)`` for each round in ``rounds`` (None where the stack has no such round), so
    a stack and the control are compared round by round, never by position."""
    at = {r["round"]: value(r) for r in runs}
    return [at.get(k) for k in rounds]


def failed_runs(load: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in load.get("runs", []) if r.get("error")]


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

    @property
    def failed(self) -> bool:
        """Some requests of this step failed: its req/s count 2xx only, and it is flagged."""
        return bool(self.errors or self.non2xx)

    def within_slo(self, slo_ms: float) -> bool:
        """An open-loop step merged over rounds met the SLO when it did in at least half of its
        rounds, each judged by the one rule (``headline.step_within_slo``) as the load lab
        judged it: the same decision as the median of the rounds' max rates at SLO."""
        met = self.extra.get("rounds_within_slo")
        return met is not None and 2 * met >= self.rounds


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
            "duration_s": median([s.get("duration_s") for s in steps]),
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
    """Open-loop steps by their position in the rate plan (one plan per stack, from its median
    closed-loop peak); ``key`` is the rate. Each step also says in how many rounds it met the SLO,
    judged per round as the load lab judged it (``rounds_within_slo``)."""
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
        slo_ms = next(((r.get("slo") or {}).get("slo_ms") for r in runs if r.get("slo")), None)
        summary.extra["rounds_within_slo"] = (
            sum(headline.step_within_slo(s, slo_ms) for s in steps) if slo_ms else None
        )
        out.append(summary)
    return out


def peak_rps(run: dict[str, Any]) -> float | None:
    return headline.peak_rps(run.get("closed", []))


def slo_rate(run: dict[str, Any]) -> float | None:
    """The round's throughput at SLO: 0 when no rate tried met it (a miss counts, it is not
    left out of the median), None when the round did not finish its open-loop sweep."""
    slo = run.get("slo")
    if not slo:
        return None
    return float(slo["max_rate"]) if slo.get("max_rate") is not None else 0.0


def peak_cpu(run: dict[str, Any]) -> float | None:
    return headline.cpu_ms_per_request_at_peak(run.get("closed", []))


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
    failed_steps: int  # steps (any mode, any round) with failed requests


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
            rounds = sorted({r["round"] for r in (*runs, *ctrl)})
            for key, value in (("peak_rps", peak_rps), ("slo_rate", slo_rate),
                               ("cpu_per_req", peak_cpu)):  # fmt: skip
                ratios[key] = headline.ratio_over_rounds(
                    by_round(runs, value, rounds), by_round(ctrl, value, rounds)
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
                failed_steps=sum(
                    1
                    for r in runs
                    for mode in ("closed", "open", "batch")
                    for step in r.get(mode, [])
                    if headline.failures(step)
                ),
            )
        )
    return out


def ceiling_rps(load: dict[str, Any]) -> tuple[float | None, float | None]:
    c = load.get("ceiling") or {}
    return c.get("closed_rps"), c.get("open_rps")
