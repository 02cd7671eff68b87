"""``fiber-endpoints report RESULTS...``: one Markdown report (+ plots) per results file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fiber_endpoints.bench import results, schema


def report(results_path: Path, output: Path | None = None) -> list[Path]:
    """Validate a results file (``bench/schema.py``) and write its report and plots."""
    from fiber_endpoints.report import markdown  # matplotlib: only when a report is written

    results_path = results.resolve(results_path)
    doc: dict[str, Any] = dict(results.load(results_path))
    out = output or results_path.with_name("report.md")
    return markdown.write(doc, out)


def _run(args: argparse.Namespace) -> int:
    if args.output is not None and len(args.results) != 1:
        raise SystemExit("--output needs exactly one results file")
    for path in args.results:
        try:
            written = report(path, args.output)
        except schema.SchemaError as exc:
            raise SystemExit(f"report: {exc}") from None
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
