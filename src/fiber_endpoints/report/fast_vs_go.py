"""The fast Python stack against Go under load: the tail side by side and issue 14's goals.

From the run's own load phase (same rows, same placement, slices interleaved) and sequential
phase: throughput and CPU per request at the closed-loop peak as ratios over rounds (median over
median, with the range of the per-round ratios), p99 and p99.9 at every connection count and
every open-loop rate (merged histograms of all rounds), and the sequential p50.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fiber_endpoints import headline
from fiber_endpoints.bench import summary as seq_summary
from fiber_endpoints.report import analysis
from fiber_endpoints.report.cells import md_table, step_flags

PYTHON, GO = "asgi-msgspec", "fiber"
OPEN_GOAL_FRACTION = 0.8  # the open-loop rate (a fraction of each stack's own peak) of the goal
GOAL_CONNECTIONS = 64


def _ms(us: float | None) -> str:
    return f"{us / 1000:.2f}" if us is not None else "—"


def _ratio_cell(ratio: dict[str, Any] | None) -> str:
    if ratio is None:
        return "—"
    spread = f" (rounds {ratio['min']:.2f}-{ratio['max']:.2f})" if "min" in ratio else ""
    return f"{ratio['ratio']:.2f}{spread}"


def _verdict(value: float | None, at_least: float | None = None,
             at_most: float | None = None) -> str:  # fmt: skip
    if value is None:
        return "not measured"
    ok = (at_least is None or value >= at_least) and (at_most is None or value <= at_most)
    return "met" if ok else "**missed**"


def _open_fraction_index(load: dict[str, Any], fraction: float) -> int | None:
    """Position of ``fraction`` in the run's open-loop rate plan (None with ``--rate``)."""
    config = load.get("config") or {}
    if config.get("rates"):
        return None
    fractions = [float(f) for f in config.get("rate_fractions", [])]
    return fractions.index(fraction) if fraction in fractions else None


def _tail_rows(name: str, runs: list[dict[str, Any]], load: dict[str, Any]) -> list[list[str]]:
    config = load.get("config") or {}
    fractions = [] if config.get("rates") else config.get("rate_fractions", [])  # not --rate
    closed_ceiling, open_ceiling = analysis.ceiling_rps(load)
    rows = []
    for step in analysis.closed_steps(runs):
        lat = step.latency
        rows.append([f"`{name}`", f"closed, {int(step.key)} conns", f"{step.rps or 0:,.0f}",
                     _ms(lat.get("p50")), _ms(lat.get("p99")), _ms(lat.get("p99.9")),
                     step_flags(step, closed_ceiling, False)])  # fmt: skip
    for i, step in enumerate(analysis.open_steps(runs)):
        lat = step.latency
        share = f"{fractions[i]:.0%} of peak, " if i < len(fractions) else ""
        rows.append([f"`{name}`", f"open, {share}{step.key:,.0f} req/s", f"{step.rps or 0:,.0f}",
                     _ms(lat.get("p50")), _ms(lat.get("p99")), _ms(lat.get("p99.9")),
                     step_flags(step, open_ceiling, True)])  # fmt: skip
    return rows


def _generator_bound(step: analysis.StepSummary, load: dict[str, Any]) -> bool:
    """An open-loop step the generator could not send on time: its tail is the generator's too.
    Its own lateness where the generator tells it apart (oha), not the wait for a connection
    that the server kept busy."""
    ceiling = analysis.ceiling_rps(load)[1]
    lag = step.extra.get("schedule_lag_us", step.extra.get("max_send_lag_us"))
    near = bool(ceiling and step.rps and step.rps >= analysis.NEAR_CEILING * ceiling)
    return near or (lag is not None and lag > analysis.SEND_LAG_FLAG_US)


def _latency_at(
    runs: list[dict[str, Any]], pick: Callable[[list[dict[str, Any]]], list[Any]], key: float
) -> float | None:
    for step in pick(runs):
        if step.key == key:
            p99 = step.latency.get("p99")
            return float(p99) if p99 is not None else None
    return None


def fast_vs_go_section(results: dict[str, Any]) -> list[str]:
    """The section, when the run's load phase had both fast stacks (else nothing)."""
    load = results.get("load") or {}
    by = analysis.runs_by_stack(load)
    py, go = by.get(PYTHON), by.get(GO)
    if not py or not go:
        return []
    rounds = sorted({r["round"] for r in (*py, *go)})

    def over_rounds(value: Callable[[dict[str, Any]], float | None]) -> dict[str, Any] | None:
        return headline.ratio_over_rounds(
            analysis.by_round(py, value, rounds), analysis.by_round(go, value, rounds)
        )

    peak = over_rounds(analysis.peak_rps)
    cpu = over_rounds(analysis.peak_cpu)
    p99_closed = [_latency_at(r, analysis.closed_steps, GOAL_CONNECTIONS) for r in (py, go)]
    index = _open_fraction_index(load, OPEN_GOAL_FRACTION)
    p99_open: list[float | None] = [None, None]
    bound = []  # the stacks whose step at the goal's rate was generator-bound
    if index is not None:
        for k, (name, runs) in enumerate(((PYTHON, py), (GO, go))):
            steps = analysis.open_steps(runs)
            if index < len(steps):
                p99_open[k] = steps[index].latency.get("p99")
                if _generator_bound(steps[index], load):
                    bound.append(f"`{name}`")
    seq = {r.stack: r.p50_us for r in seq_summary.sequential_rows(results.get("sequential") or {})}

    def quotient(pair: list[float | None]) -> float | None:
        a, b = pair
        return a / b if a is not None and b else None

    seq_ratio = quotient([seq.get(PYTHON), seq.get(GO)])
    closed_q, open_q = quotient(p99_closed), quotient(p99_open)
    goals = [
        ["closed-loop peak req/s", "≥ 1.00", _ratio_cell(peak),
         _verdict(peak["ratio"] if peak else None, at_least=1.0)],
        ["CPU µs per request at the peak", "≤ 1.00", _ratio_cell(cpu),
         _verdict(cpu["ratio"] if cpu else None, at_most=1.0)],
        [f"p99 at {GOAL_CONNECTIONS} connections", "≤ 1.00",
         f"{closed_q:.2f} ({_ms(p99_closed[0])} / {_ms(p99_closed[1])} ms)" if closed_q else "—",
         _verdict(closed_q, at_most=1.0)],
        [f"p99 in open loop at {OPEN_GOAL_FRACTION:.0%} of each stack's peak", "≤ 1.00",
         (f"{open_q:.2f} ({_ms(p99_open[0])} / {_ms(p99_open[1])} ms)" if open_q else "—")
         + (f"; generator-bound for {', '.join(bound)}: the tail is partly the generator's" if bound
            else ""),
         _verdict(open_q, at_most=1.0)],
        ["sequential p50", "≤ 1.00",
         f"{seq_ratio:.2f} ({seq[PYTHON]:.0f} / {seq[GO]:.0f} µs)" if seq_ratio else "—",
         _verdict(seq_ratio, at_most=1.0)],
    ]  # fmt: skip
    tail = _tail_rows(PYTHON, py, load) + _tail_rows(GO, go, load)
    return [
        f"## Fast Python against Go under load (`{PYTHON}` / `{GO}`)",
        "",
        f"Goals of issue 14, from this run: `{PYTHON}`'s figure over `{GO}`'s (throughput and CPU: "
        "median over median of the rounds, with the range of the per-round ratios; latency: "
        "percentiles of all rounds' requests).",
        "",
        *md_table(["measure", "goal", "measured", ""], goals),
        "Tail under load, side by side (open-loop rates are fractions of each stack's own "
        "median closed-loop peak; latency from each request's intended send time):",
        "",
        *md_table(["stack", "step", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "flags"], tail),
    ]
