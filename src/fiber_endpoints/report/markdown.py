"""The Markdown report: the run's header, parity, the sequential tables, and the sections of the
other report modules, from raw results only (plots from ``plots``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fiber_endpoints.bench import reliability
from fiber_endpoints.report import plots
from fiber_endpoints.report.cells import parity_label
from fiber_endpoints.report.comparison import v2_sections
from fiber_endpoints.report.fast_vs_go import fast_vs_go_section
from fiber_endpoints.report.load_tables import load_sections
from fiber_endpoints.report.observability import observability_sections
from fiber_endpoints.report.reliability_table import reliability_section
from fiber_endpoints.report.sequential import sequential_section


def write(results: dict[str, Any], out_md: Path) -> list[Path]:
    """Write ``out_md`` and its plots (in ``<out_md dir>/plots``); return every file written."""
    plot_dir = out_md.parent / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    load = results.get("load") or {}
    seq = results.get("sequential") or {}
    for name, fig in plots.figures(results).items():
        written.append(plots.save(fig, plot_dir / name))
    machine = results.get("machine", {})
    lines = [
        "# Fiber Endpoints: benchmark report",
        "",
        f"- Run: {results.get('created', '?')}; command: `{' '.join(results.get('command', []))}`",
        f"- Machine: {machine.get('cpu_model', machine.get('cpu', '?'))}, "
        f"{machine.get('logical_cpus', '?')} logical CPUs",
        f"- Placement: {results.get('placement', load.get('placement', {}))}",
        "",
    ]
    verdict = results.get("verdict", {})
    if verdict.get("problems"):
        lines += ["**This run failed:**", "", *[f"- {p}" for p in verdict["problems"]], ""]
    wl = results.get("workload", {})
    if wl:
        lines += [
            f"Workload: {wl.get('source')}; {wl.get('num_features')} features, "
            f"{wl.get('timed_rows')} rows timed, {wl.get('parity_rows')} checked.",
            "",
        ]
    parity = {n: parity_label(s) for n, s in results.get("stacks", {}).items()}
    if parity:
        lines += [
            "Parity with LightGBM checked before timing: "
            + ", ".join(f"`{n}` {label}" for n, label in parity.items()),
            "",
        ]
    lines += sequential_section(
        seq, plot_dir, "plots", "Sequential protocol (the proof of concept's)"
    )
    awake = results.get("sequential_keep_awake")
    if awake:
        lines += sequential_section(awake, plot_dir, "plots", "Sequential, CPUs kept awake")
    lines += observability_sections(results)
    if load:
        lines += load_sections(load, plot_dir, "plots")
        lines += fast_vs_go_section(results)
    if results.get("v2_comparison"):
        lines += v2_sections(results, plot_dir, "plots")
    rel = reliability.read(out_md.parent)  # bench/reliability.py, beside results.json
    if rel is not None:
        lines += reliability_section(rel)
    out_md.write_text("\n".join(lines).rstrip() + "\n")
    return [out_md, *written]
