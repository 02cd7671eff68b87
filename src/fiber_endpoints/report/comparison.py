"""Our stacks and the peers over V2 (``v2_comparison`` in the results): tables, the issue's goals
stated against the peers, and its section of the report."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from fiber_endpoints.bench import summary as seq_summary
from fiber_endpoints.report import analysis
from fiber_endpoints.report.cells import fmt_n, fmt_ratio, md_table, parity_label, stack_label
from fiber_endpoints.report.load_tables import load_sections, throughput_table
from fiber_endpoints.report.sequential import sequential_section

FAST = ("asgi-msgspec", "fiber")  # the fast stacks the goals are stated for (issue 11)

GOALS = (  # (peer, what, times): a fast stack's closed-loop peak over the peer's
    ("mlserver-tuned", "closed-loop peak req/s", 10.0),
    ("kserve", "closed-loop peak req/s", 5.0),
    ("bentoml", "closed-loop peak req/s", 5.0),
)


def _peer_names(cmp: dict[str, Any]) -> list[str]:
    return [n for n, s in cmp.get("stacks", {}).items() if s.get("peer")]


def _seq_p50(seq: dict[str, Any] | None) -> dict[str, float]:
    if not seq:
        return {}
    return {r.stack: r.p50_us for r in seq_summary.sequential_rows(seq) if r.p50_us is not None}


def comparison_tables(doc: dict[str, Any]) -> list[str]:
    """The V2 comparison as ``bench`` prints it: who was compared and how, the contract's p50
    next to V2's for our stacks, the peers beside our stacks, and the goals' ratios."""
    cmp = doc.get("v2_comparison") or {}
    peers = _peer_names(cmp)
    fair = cmp.get("fairness", {})
    rows = []
    for name, rec in cmp.get("stacks", {}).items():
        peer = rec.get("peer") or {}
        parity = parity_label(rec)
        if not rec.get("parity", {}).get("ok") and rec.get("parity", {}).get("errors"):
            parity += ": " + rec["parity"]["errors"][0][:120].replace("|", "/")
        rows.append(
            [
                stack_label(name, peers),
                peer.get("description", "ours"),
                rec.get("protocol", peer.get("protocol", "v2")),
                parity,
                fair.get("on", {}).get(name, peer.get("on", "?")),
            ]
        )
    lines = [
        f"Every server on CPUs {fair.get('server_cpus')} with {fair.get('predictor_threads')} "
        f"predictor thread(s); {fair.get('placement', '')}.",
        "",
        *md_table(["stack", "what", "protocol", "parity with LightGBM", "also on"], rows),
    ]
    contract, over_v2 = _seq_p50(doc.get("sequential")), _seq_p50(cmp.get("sequential"))
    both = [n for n in over_v2 if n in contract]
    if both:
        lines += md_table(
            ["stack", "contract p50 µs", "V2 p50 µs", "V2 − contract µs"],
            [[f"`{n}`", fmt_n(contract[n]), fmt_n(over_v2[n]),
              fmt_n(over_v2[n] - contract[n], "+,.0f")] for n in both],
        )  # fmt: skip
        lines += [
            "Single-row sequential p50 over the contract (the run's own sequential phase) and "
            "over V2 (the comparison's), same client, same placement, same run; the two phases "
            "ran minutes apart, so part of the difference is the machine's drift.",
            "",
        ]
    if cmp.get("sequential"):
        lines += _seq_lines(cmp["sequential"], peers)
    if cmp.get("load"):
        lines += throughput_table(dict(cmp["load"]), peers=peers)
    lines += goal_lines(cmp)
    if cmp.get("problems"):
        lines += ["Problems in the comparison:", "", *[f"- {p}" for p in cmp["problems"]], ""]
    return lines


def _seq_lines(seq: dict[str, Any], peers: Collection[str]) -> list[str]:
    rows = [
        [
            stack_label(r.stack, peers),
            fmt_n(r.p50_us),
            fmt_n(r.p90_us),
            fmt_n(r.p99_us),
            fmt_ratio(r.ratio),
        ]
        for r in seq_summary.sequential_rows(seq)
    ]
    return md_table(["stack", "p50 µs", "p90 µs", "p99 µs", "p50 × control [95% CI]"], rows)


def goal_lines(cmp: dict[str, Any]) -> list[str]:
    """Issue 11's goals, as measured: each fast stack's closed-loop peak over each peer's, and
    its sequential p50 against MLServer's (goal: at most 1/5)."""
    load = cmp.get("load")
    peak = {s.name: s.peak_rps for s in analysis.summarise(dict(load))} if load else {}
    p50 = _seq_p50(cmp.get("sequential"))
    rows = []
    for fast in FAST:
        for peer, what, times in GOALS:
            a, b = peak.get(fast), peak.get(peer)
            if a and b:
                ratio = a / b
                met = "met" if ratio >= times else "**missed**"
                rows.append(
                    [f"`{fast}`", f"{what} × `{peer}`", f"≥ {times:g}", f"{ratio:.1f}", met]
                )
        for peer in ("mlserver", "mlserver-tuned"):
            a, b = p50.get(fast), p50.get(peer)
            if a and b:
                met = "met" if a <= b / 5 else "**missed**"
                rows.append([f"`{fast}`", f"sequential p50 ÷ `{peer}`'s", "≤ 0.2", f"{a / b:.3f}",
                             met])  # fmt: skip
    if not rows:
        return []
    return [
        "Goals (issue 11), from this run's medians:",
        "",
        *md_table(["stack", "measure", "goal", "measured", ""], rows),
    ]


def v2_sections(results: dict[str, Any], plot_dir: Path, rel: str) -> list[str]:
    """The report's part for the V2 comparison: the tables above, then the same sequential and
    load sections as the run's own, peers marked, with their own plots (``v2_*.png``)."""
    cmp = results["v2_comparison"]
    peers = _peer_names(cmp)
    lines = ["## Over V2: our stacks and the peers", "", *comparison_tables(results)]
    if cmp.get("sequential"):
        lines += sequential_section(
            dict(cmp["sequential"]), plot_dir, rel, "Over V2: sequential protocol", peers, "v2_"
        )
    if cmp.get("load"):
        lines += load_sections(
            dict(cmp["load"]), plot_dir, rel, "Over V2: under load", peers, "v2_"
        )
    return lines
