"""``fiber-endpoints report RESULTS...``: one Markdown report (+ plots) per results file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def resolve(path: Path) -> Path:
    """A results file, or a run directory holding ``results.json``."""
    return path / "results.json" if path.is_dir() else path


def report(results_path: Path, output: Path | None = None) -> list[Path]:
    from fiber_endpoints.report import markdown  # matplotlib: only when a report is written

    results_path = resolve(results_path)
    results: dict[str, Any] = json.loads(results_path.read_text())
    out = output or results_path.with_name("report.md")
    return markdown.write(results, out)


def _run(args: argparse.Namespace) -> int:
    if args.output is not None and len(args.results) != 1:
        raise SystemExit("--output needs exactly one results file")
    for path in args.results:
        written = report(path, args.output)
        print(f"report: {written[0]} ({len(written) - 1} plots in {written[0].parent / 'plots'})")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        "report", help="write a Markdown report + PNG plots from raw results files (no rerun)"
    )
    p.add_argument(
        "results",
        nargs="+",
        type=Path,
        help="results.json files or run directories (results/<timestamp>)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="report path (default: report.md beside each results file)",
    )
    p.set_defaults(func=_run)
    return p
