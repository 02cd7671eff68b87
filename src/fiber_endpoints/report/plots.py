"""The report's PNGs (matplotlib, Agg). One colour per stack everywhere: :func:`colours`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

# Files only (Agg), except in a Jupyter kernel, whose inline backend shows returned figures.
if "inline" not in os.environ.get("MPLBACKEND", ""):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from fiber_endpoints import stats
from fiber_endpoints.bench import summary
from fiber_endpoints.report import analysis

DPI = 110


def colours(names: Sequence[str]) -> dict[str, str]:
    """Stable colours: the control stack is always the first of matplotlib's tab10."""
    from fiber_endpoints import stacks

    palette = list(matplotlib.colormaps["tab10"].colors)  # type: ignore[attr-defined]
    known = summary.stack_order([*stacks.STACKS, *names])
    return {n: matplotlib.colors.to_hex(palette[i % len(palette)]) for i, n in enumerate(known)}


def shown(name: str) -> str:
    """A stack's name in a legend; a peer (peers/__init__.py) is marked as one."""
    from fiber_endpoints import peers

    return f"{name} (peer)" if name in peers.PEERS else name


def _ms(ax: Axes, axis: str = "x") -> None:
    fmt = FuncFormatter(lambda v, _: f"{v:g}")
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(fmt)
    target.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _legend(ax: Axes, **kwargs: Any) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _measured(steps: list[analysis.StepSummary]) -> list[analysis.StepSummary]:
    """Steps with a latency to draw (a step whose every request failed has none)."""
    return [s for s in steps if s.latency.get("count")]


def _finish(fig: Figure) -> Figure:
    """Lay out and detach from pyplot: the caller owns the figure (saves it, or a notebook
    shows the returned object once, not again as an open pyplot figure)."""
    fig.tight_layout()
    plt.close(fig)
    return fig


def save(fig: Figure, path: Path) -> Path:
    """Write a figure as PNG."""
    fig.savefig(path, dpi=DPI)
    return path


def latency_cdf(load: dict[str, Any], connections: int | None = None) -> Figure | None:
    """Closed loop at one connection count, and open loop at each stack's highest rate within
    the SLO (or its lowest rate): fraction of requests at or below a latency (log x)."""
    by = analysis.runs_by_stack(load)
    if not by:
        return None
    col = colours(list(by))
    all_c = sorted(
        {s["connections"] for rs in by.values() for r in rs for s in r.get("closed", [])}
    )
    if connections is None and all_c:
        connections = 16 if 16 in all_c else all_c[len(all_c) // 2]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for name, runs in by.items():
        h = stats.merge_histograms(
            s["hdr"] for r in runs for s in r.get("closed", []) if s["connections"] == connections
        )
        if h.get_total_count():
            x, y = stats.histogram_cdf(h)
            axes[0].step(x / 1000.0, y, where="post", color=col[name], label=shown(name))
        opened = analysis.open_steps(runs)
        if opened:
            slo_ms = (runs[0].get("slo") or {}).get("slo_ms")
            within = [s for s in opened if slo_ms and s.within_slo(slo_ms)]
            step = within[-1] if within else opened[0]
            idx = opened.index(step)
            h2 = stats.merge_histograms(
                r["open"][idx]["hdr"] for r in runs if len(r.get("open", [])) > idx
            )
            x, y = stats.histogram_cdf(h2)
            axes[1].step(
                x / 1000.0,
                y,
                where="post",
                color=col[name],
                label=f"{shown(name)} @ {step.key:,.0f} req/s",
            )
    axes[0].set_title(f"closed loop (wrk), {connections} connections")
    axes[1].set_title(
        "open loop, from intended send time\nhighest rate within SLO (else lowest rate)"
    )
    for ax in axes:
        ax.set_xscale("log")
        _ms(ax)
        ax.set_xlabel("latency (ms, log scale)")
        ax.grid(True, which="both", alpha=0.3)
        _legend(ax, loc="lower right", fontsize=8)
        for q in (0.5, 0.99):
            ax.axhline(q, color="grey", lw=0.6, ls=":")
    axes[0].set_ylabel("fraction of requests ≤ latency")
    return _finish(fig)


def throughput_vs_p99(load: dict[str, Any]) -> Figure | None:
    by = analysis.runs_by_stack(load)
    if not by:
        return None
    col = colours(list(by))
    fig, ax = plt.subplots(figsize=(8, 5))
    slo_ms = None
    for name, runs in by.items():
        closed = _measured(analysis.closed_steps(runs))
        if closed:
            xs = [s.rps or 0 for s in closed]
            ys = [s.latency["p99"] / 1000.0 for s in closed]
            ax.plot(xs, ys, "o-", color=col[name], label=f"{shown(name)} closed (connections)")
            for s, x, y in zip(closed, xs, ys, strict=True):
                ax.annotate(
                    f"{s.key:g}",
                    (x, y),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                    color=col[name],
                )
        opened = _measured(analysis.open_steps(runs))
        if opened:
            ax.plot(
                [s.rps or 0 for s in opened],
                [s.latency["p99"] / 1000.0 for s in opened],
                "s--",
                color=col[name],
                alpha=0.8,
                label=f"{shown(name)} open (constant rate)",
            )
        slo_ms = slo_ms or (runs[0].get("slo") or {}).get("slo_ms")
        failed = [s for s in (*closed, *opened) if s.failed]
        if failed:  # an error is never throughput: show where a point counts 2xx only
            ax.plot(
                [s.rps or 0 for s in failed],
                [s.latency["p99"] / 1000.0 for s in failed],
                "x",
                color="red",
                markersize=10,
                label=f"{shown(name)}: step with failed requests (2xx only)",
            )
    if slo_ms:
        ax.axhline(slo_ms, color="red", lw=1, ls=":", label=f"SLO p99 ≤ {slo_ms:g} ms")
    closed_ceiling, _ = analysis.ceiling_rps(load)
    if closed_ceiling:
        ax.axvline(
            closed_ceiling,
            color="black",
            lw=1,
            ls="-.",
            label=f"generator ceiling {closed_ceiling:,.0f} req/s",
        )
    ax.set_yscale("log")
    ax.set_xscale("log")
    _ms(ax, "y")
    ax.set_xlabel("throughput (requests/s, log scale)")
    ax.set_ylabel("p99 latency (ms, log scale)")
    ax.set_title("throughput vs p99 (closed-loop labels: connections)")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax, fontsize=7)
    return _finish(fig)


def cpu_per_request(load: dict[str, Any]) -> Figure | None:
    by = analysis.runs_by_stack(load)
    if not by:
        return None
    col = colours(list(by))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names, rss = [], []
    for name, runs in by.items():
        closed = analysis.closed_steps(runs)
        pts = [(s.key, s.cpu_ms_per_req) for s in closed if s.cpu_ms_per_req is not None]
        if pts:
            xs, ys = [p[0] for p in pts], [p[1] * 1000.0 for p in pts]
            ax.plot(xs, ys, "o-", color=col[name], label=shown(name))
        names.append(name)
        rss.append(max((s.peak_rss_mib or 0.0 for s in closed), default=0.0))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    _ms(ax)
    _ms(ax, "y")
    ax.set_xlabel("closed-loop connections (log scale)")
    ax.set_ylabel("server CPU per request (µs, log scale)")
    ax.set_title("CPU per request (server process tree, /proc)")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax, fontsize=8)
    ax2.bar([shown(n) for n in names], rss, color=[col[n] for n in names])
    ax2.set_ylabel("peak RSS under load (MiB)")
    ax2.set_title("peak resident memory (process tree)")
    for i, v in enumerate(rss):
        ax2.annotate(f"{v:,.0f}", (i, v), ha="center", va="bottom", fontsize=8)
    return _finish(fig)


def batch_scaling(load: dict[str, Any]) -> Figure | None:
    by = analysis.runs_by_stack(load)
    if not any(r.get("batch") for rs in by.values() for r in rs):
        return None
    col = colours(list(by))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, runs in by.items():
        steps = _measured(analysis.batch_steps(runs))
        if not steps:
            continue
        xs = [s.key for s in steps]
        rows_per_s = [s.extra["rows_per_s"] or 0 for s in steps]
        ax.plot(xs, rows_per_s, "o-", color=col[name], label=shown(name))
        ax2.plot(
            xs,
            [s.latency["p50"] / 1000.0 for s in steps],
            "o-",
            color=col[name],
            label=f"{shown(name)} p50",
        )
        ax2.plot(
            xs,
            [s.latency["p99"] / 1000.0 for s in steps],
            "x:",
            color=col[name],
            label=f"{shown(name)} p99",
        )
    for a in (ax, ax2):
        a.set_xscale("log")
        a.set_yscale("log")
        a.set_xlabel("rows per request (log scale)")
        a.grid(True, which="both", alpha=0.3)
        _legend(a, fontsize=8)
        _ms(a)
    _ms(ax2, "y")
    ax.set_ylabel("rows predicted per second (log scale)")
    ax.set_title("/inference/batch throughput")
    ax2.set_ylabel("latency per request (ms, log scale)")
    ax2.set_title("/inference/batch latency")
    return _finish(fig)


def sequential(seq: dict[str, Any]) -> Figure | None:
    """Per-call latency distribution of the sequential protocol, one box per stack."""
    raw = seq.get("stacks", {})
    names = summary.stack_order(raw)
    data = [np.asarray([x for s in raw[n].get("latencies_s", []) for x in s]) * 1e3 for n in names]
    if not any(d.size for d in data):
        return None
    col = colours(names)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    parts = ax.boxplot(data, whis=(1, 99), showfliers=False, patch_artist=True)
    ax.set_xticks(range(1, len(names) + 1), [shown(n) for n in names])
    if len(names) > 4:  # peers too: slanted names, so they do not run into each other
        ax.tick_params(axis="x", labelrotation=25)
        for label in ax.get_xticklabels():
            label.set_horizontalalignment("right")
    for patch, n in zip(parts["boxes"], names, strict=True):
        patch.set_facecolor(col[n])
        patch.set_alpha(0.6)
    ax.set_yscale("log")
    _ms(ax, "y")
    ax.set_ylabel("latency per call (ms, log scale)")
    ax.set_title(f"sequential protocol ({seq.get('client', '?')} client), whiskers p1-p99")
    ax.grid(True, which="both", axis="y", alpha=0.3)
    return _finish(fig)


# The report's figures, in its order: file name -> (part of the results, what draws it).
FIGURES: dict[str, tuple[str, Callable[[dict[str, Any]], Figure | None]]] = {
    "sequential.png": ("sequential", sequential),
    "latency_cdf.png": ("load", latency_cdf),
    "throughput_p99.png": ("load", throughput_vs_p99),
    "cpu_per_request.png": ("load", cpu_per_request),
    "batch_scaling.png": ("load", batch_scaling),
}


def figures(doc: dict[str, Any]) -> dict[str, Figure]:
    """Every figure a results document has data for, by file name (for notebooks: not saved)."""
    out = {}
    for prefix, part_of in (("", doc), ("v2_", doc.get("v2_comparison") or {})):
        for name, (part, draw) in FIGURES.items():
            data = part_of.get(part)
            fig = draw(data) if data else None
            if fig is not None:
                out[prefix + name] = fig
    return out
