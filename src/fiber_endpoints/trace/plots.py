"""The two charts of ``trace``: a stacked breakdown across stacks and each stack's median
request as a waterfall. Drawn from ``RequestBreakdown`` values only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fiber_endpoints.trace.breakdown import COMPONENTS, RequestBreakdown

LABELS = {
    "inference": "inference (model-inference span)",
    "server_outside_inference": "server outside inference",
    "client_outside_server": "client-observed outside server span",
}
COLORS = {
    "inference": "#2a9d8f",
    "server_outside_inference": "#e9c46a",
    "client_outside_server": "#9aa5b1",
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def breakdown_chart(summaries: Mapping[str, Mapping[str, Any]], out: Path) -> Path:
    """One stacked bar per stack: the median of each component (us), labelled with its share."""
    plt = _pyplot()
    names = list(summaries)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.8 * len(names) + 3), 4.5))
    bottoms = [0.0] * len(names)
    for comp in COMPONENTS:
        values = [float(summaries[n][comp]["p50"]) for n in names]
        bars = ax.bar(names, values, bottom=bottoms, color=COLORS[comp], label=LABELS[comp])
        for bar, name, value, bottom in zip(bars, names, values, bottoms, strict=True):
            share = float(summaries[name][comp]["share"]) * 100
            if value > 0.06 * max(float(summaries[n]["client"]["p50"]) for n in names):
                ax.text(
                    bar.get_x() + bar.get_width() / 2,
                    bottom + value / 2,
                    f"{value:,.0f} us\n{share:.0f} %",
                    ha="center",
                    va="center",
                    fontsize=8,
                )
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    for i, name in enumerate(names):
        ax.text(
            i,
            bottoms[i],
            f"client p50 {summaries[name]['client']['p50']:,.0f} us",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_ylabel("microseconds (median of each part)")
    ax.set_title("Where one /inference request's time goes (sequential, traced)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_ylim(0, max(bottoms) * 1.25)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def waterfall_chart(medians: Mapping[str, RequestBreakdown], out: Path) -> Path:
    """One panel per stack: the client call and every span of its median request on a shared
    time axis (microseconds from the moment the client sent the request)."""
    plt = _pyplot()
    names = list(medians)
    rows_per = [len(medians[n].spans) + 1 for n in names]
    fig, axes = plt.subplots(
        len(names),
        1,
        figsize=(9, 1.0 + 0.55 * sum(rows_per)),
        gridspec_kw={"height_ratios": rows_per},
        squeeze=False,
    )
    for ax, name in zip(axes[:, 0], names, strict=True):
        req = medians[name]
        t0 = req.call.start_unix_ns
        bars: list[tuple[str, float, float, str]] = [
            ("client: POST /inference", 0.0, req.client_ns / 1000, COLORS["client_outside_server"])
        ]
        for span in _tree_order(req.spans):
            color = (
                COLORS["inference"]
                if span is req.inference
                else COLORS["server_outside_inference"]
                if span is req.server
                else "#c9ada7"
            )
            label = f"{span.service}: {span.name}"
            bars.append((label, (span.start_ns - t0) / 1000, span.duration_ns / 1000, color))
        for i, (_label, start, width, color) in enumerate(bars):
            ax.barh(i, width, left=start, color=color, height=0.6)
            ax.text(start + width, i, f" {width:,.1f} us", va="center", fontsize=8)
        ax.set_yticks(range(len(bars)), [b[0] for b in bars], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(min(0.0, min(b[1] for b in bars)), req.client_ns / 1000 * 1.2)
        ax.set_title(
            f"{name}: median request ({req.client_ns / 1000:,.0f} us client-observed)",
            fontsize=9,
            loc="left",
        )
    axes[-1, 0].set_xlabel("microseconds since the client sent the request (wall clocks)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _tree_order(spans: Sequence[Any]) -> list[Any]:
    """Parents before children, siblings by start time."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[Any]] = {}
    for s in spans:
        children.setdefault(s.parent_id if s.parent_id in ids else "", []).append(s)
    ordered: list[Any] = []

    def walk(parent: str) -> None:
        for s in sorted(children.get(parent, []), key=lambda s: s.start_ns):
            ordered.append(s)
            walk(s.span_id)

    walk("")
    return ordered
