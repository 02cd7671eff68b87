"""Table cells of the report: numbers, µs shown as ms, ratios with their spread, flags, and
one Markdown table writer, used by every report module."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from fiber_endpoints.report import analysis


def fmt_n(v: float | None, fmt: str = ",.0f", unit: str = "") -> str:
    return "—" if v is None else f"{v:{fmt}}{unit}"


def fmt_us(v: float | None) -> str:
    """Microseconds shown in ms with 3 significant-ish decimals."""
    return "—" if v is None else f"{v / 1000.0:,.3g}"


def fmt_ratio(r: dict[str, Any] | None) -> str:
    if not r:
        return "—"
    if "low" in r:
        return f"{r['ratio']:.2f} [{r['low']:.2f}, {r['high']:.2f}]"
    if "min" in r:
        return f"{r['ratio']:.2f} (rounds {r['min']:.2f}-{r['max']:.2f})"
    return f"{r['ratio']:.2f} (n={r['n']})"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


def step_flags(step: analysis.StepSummary, ceiling: float | None, open_loop: bool) -> str:
    flags = []
    if not open_loop and step.stalled:
        flags.append(f"STALL: max {fmt_us(step.latency['max'])} ms ≫ p99 (closed loop hides it)")
    if ceiling and step.rps and step.rps >= analysis.NEAR_CEILING * ceiling:
        flags.append("near generator ceiling")
    if step.client_cpu_util is not None and step.client_cpu_util > 0.9:
        flags.append("generator CPU-bound")
    lag = step.extra.get("max_send_lag_us")
    if open_loop and lag is not None and lag > analysis.SEND_LAG_FLAG_US:
        flags.append(f"sent up to {lag / 1000:.0f} ms behind schedule (charged to latency)")
    unsent = step.extra.get("unsent")
    if open_loop and unsent is not None and unsent >= 1:
        flags.append(
            f"{unsent:,.0f} requests never sent (every generator connection waiting on the "
            "server, or the generator CPU-bound)"
        )
    if step.failed:
        flags.append(
            f"**ERRORS**: {step.errors} socket errors, {step.non2xx} non-2xx (req/s count 2xx only)"
        )
    return "; ".join(flags)


def stack_label(name: str, peers: Collection[str] = ()) -> str:
    """A stack's name in a table; a peer is marked as one."""
    return f"`{name}`" + (" (peer)" if name in peers else "")


def fmt_opt(v: Any, fmt: str = "{}") -> str:
    return "–" if v is None else fmt.format(v)


def slo_cell(ok: bool, st: analysis.StepSummary) -> str:
    met = st.extra.get("rounds_within_slo")
    rounds = f" ({met}/{st.rounds} rounds)" if met is not None else ""
    return ("yes" if ok else "**no**") + rounds


def parity_label(stack: dict[str, Any]) -> str:
    if stack.get("not_eligible"):
        return f"not eligible ({stack['not_eligible']})"
    return "ok" if stack.get("parity", {}).get("ok") else "FAILED"
