"""The report's sequential tables (the proof of concept's protocol), from ``bench/summary``."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from fiber_endpoints.bench import summary as seq_summary
from fiber_endpoints.report.cells import fmt_n, fmt_ratio, md_table, stack_label


def sequential_section(
    seq: dict[str, Any],
    plot_dir: Path,
    rel: str,
    title: str,
    peers: Collection[str] = (),
    prefix: str = "",
) -> list[str]:
    rows_data = seq_summary.sequential_rows(seq)
    if not rows_data:
        return []
    awake = (
        " CPUs kept awake by SCHED_IDLE spinners (`--keep-awake`)." if seq.get("keep_awake") else ""
    )
    lines = [
        f"## {title}",
        "",
        f"{seq.get('samples')} samples × {seq.get('calls')} calls, one at a time, "
        f"client: {seq.get('client')}.{awake} The loopback floor is a trivial C server on the "
        "same CPUs: what the machine and the client cost with no server work (a diagnostic).",
        "",
    ]
    rows = []
    for r in rows_data:
        rows.append(
            [
                stack_label(r.stack, peers),
                fmt_n(r.mean_s, ".4f"),
                fmt_n(r.median_s, ".4f"),
                fmt_n(r.p50_us, ",.0f"),
                fmt_n(r.p90_us, ",.0f"),
                fmt_n(r.p99_us, ",.0f"),
                fmt_n(r.p999_us, ",.0f"),
                fmt_n(r.inference_p50_ms, ".3f"),
                fmt_n(r.app_p50_ms, ".3f"),
                seq_summary.diff_label(r),
                fmt_ratio(r.ratio),
            ]
        )
    lines += md_table(
        [
            "stack",
            f"mean s per {seq.get('calls')} calls",
            f"median s per {seq.get('calls')} calls",
            "p50 µs",
            "p90 µs",
            "p99 µs",
            "p99.9 µs",
            "inference ms",
            "app ms",
            "mean diff. vs control",
            "p50 × control [95% CI, resampling whole samples]",
        ],
        rows,
    )
    if (plot_dir / f"{prefix}sequential.png").exists() and not seq.get("keep_awake"):
        lines += [f"![Sequential]({rel}/{prefix}sequential.png)", ""]
    return lines
