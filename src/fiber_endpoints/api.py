"""The Python API, for notebooks and scripts: the same functions the CLI calls, no second
implementation.

>>> from fiber_endpoints import api
>>> run = api.bench(model="my_model.txt", rows="sample.parquet", samples=10, load=False)
>>> run.sequential_table()          # pandas DataFrame, one row per stack (+ the floor)
>>> run.figures()["sequential.png"]  # matplotlib Figure
>>> with api.serve("fiber", model="my_model.txt") as server:
...     server.url                   # a running stack, stopped when the block ends

Tables come from ``bench/summary.py`` and ``report/analysis.py``, figures from
``report/plots.py``, runs from ``bench/runner.py``: what the CLI prints and the report shows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fiber_endpoints import model as model_mod
from fiber_endpoints import stacks as stack_registry
from fiber_endpoints.bench import placement, results, runner, servers
from fiber_endpoints.bench.context import BenchConfig
from fiber_endpoints.bench.load import LoadConfig

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["LoadConfig", "Run", "bench", "load_results", "serve", "stacks", "trace"]


def stacks() -> list[str]:
    """The stacks this version can serve and time, by name."""
    return list(stack_registry.STACKS)


def _path(value: str | Path | None, default: Path | None = None) -> Path | None:
    return Path(value).resolve() if value is not None else default


@contextmanager
def serve(
    stack: str,
    model: str | Path | None = None,
    *,
    pin: bool = True,
    log_dir: str | Path | None = None,
) -> Iterator[servers.Server]:
    """One stack running on loopback, placed on the server CPUs from its start (as ``bench``
    does), until the ``with`` block ends. ``server.url`` is where it answers."""
    where = placement.plan(pin)
    path = _path(model, model_mod.default_model().resolve())
    assert path is not None
    with servers.running(stack, path, cpus=where.server_cpus, log_dir=_path(log_dir)) as server:
        yield server


@dataclass(frozen=True)
class Run:
    """A finished benchmark: its results file and the document in it (validated)."""

    path: Path
    doc: dict[str, Any]

    @property
    def ok(self) -> bool:
        return bool(self.doc["verdict"]["ok"])

    @property
    def problems(self) -> list[str]:
        return list(self.doc["verdict"]["problems"])

    def parity_table(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            [
                {"stack": name, "ok": s["parity"]["ok"], "rows": s["parity"]["checked_rows"],
                 "predictor": s["health"].get("predictor"), "not_eligible": s.get("not_eligible"),
                 "errors": "; ".join(s["parity"]["errors"])}
                for name, s in self.doc["stacks"].items()
            ]
        ).set_index("stack")  # fmt: skip

    def sequential_table(self, keep_awake: bool = False) -> pd.DataFrame:
        """The proof of concept's table (``bench``'s first table), one row per stack."""
        import pandas as pd

        from fiber_endpoints.bench import summary

        seq = self.doc.get("sequential_keep_awake" if keep_awake else "sequential")
        rows = summary.sequential_rows(seq) if seq else []
        return (
            pd.DataFrame([asdict(r) for r in rows]).set_index("stack") if rows else pd.DataFrame()
        )

    def load_table(self) -> pd.DataFrame:
        """Under load, per stack: peak, p99 at peak, rate at SLO, CPU/request, RSS, ratios."""
        import pandas as pd

        from fiber_endpoints.report import analysis

        load = self.doc.get("load")
        rows = analysis.summarise(load) if load else []
        return pd.DataFrame([asdict(r) for r in rows]).set_index("name") if rows else pd.DataFrame()

    def steps_table(self, mode: str = "closed") -> pd.DataFrame:
        """Every step of one load mode (closed, open, batch), merged over rounds, per stack."""
        import pandas as pd

        from fiber_endpoints.report import analysis

        merge = {"closed": analysis.closed_steps, "open": analysis.open_steps,
                 "batch": analysis.batch_steps}[mode]  # fmt: skip
        records = []
        for name, runs in analysis.runs_by_stack(self.doc.get("load") or {}).items():
            for step in merge(runs):
                lat = step.latency
                records.append(
                    {"stack": name, "step": step.key, "rounds": step.rounds, "rps": step.rps,
                     "p50_us": lat.get("p50"), "p99_us": lat.get("p99"),
                     "p999_us": lat.get("p99.9"), "errors": step.errors, "non2xx": step.non2xx,
                     "cpu_us_per_req": (step.cpu_ms_per_req or 0) * 1000 or None,
                     "peak_rss_mib": step.peak_rss_mib}
                )  # fmt: skip
        return pd.DataFrame(records)

    def figures(self) -> dict[str, Figure]:
        """The report's figures (matplotlib), by the file name the report gives them."""
        from fiber_endpoints.report import plots

        return plots.figures(self.doc)

    def report(self) -> Path:
        """Write the Markdown report and its PNGs beside the results; returns the report."""
        from fiber_endpoints.report import command

        return command.report(self.path)[0]


def load_results(path: str | Path) -> Run:
    """A results file (or run folder, or ``results/latest``), validated."""
    resolved = results.resolve(Path(path))
    return Run(resolved, dict(results.load(resolved)))


def bench(
    *,
    stacks: Sequence[str] | None = None,
    model: str | Path | None = None,
    rows: str | Path | None = None,
    targets: dict[str, str] | None = None,
    load: LoadConfig | bool = True,
    out: str | Path | None = None,
    show_progress: bool = False,
    **options: Any,
) -> Run:
    """``fiber-endpoints bench``: parity, the sequential protocol and (``load``: True for the
    default sweep, False for none, or a :class:`LoadConfig`) the load lab. Returns the run.

    ``options`` are :class:`~fiber_endpoints.bench.context.BenchConfig`'s other fields, by name:
    ``samples``, ``calls``, ``client``, ``warmup_calls``, ``protocol``, ``model_name``,
    ``headers``, ``peers``, ``v2_comparison``, ``keep_awake``, ``tracing_cost``, ``client_cpus``,
    ``server_cpus``... (a misspelt one is a TypeError, as for any call). Progress bars and
    per-stack lines go to stderr only with ``show_progress`` (in a notebook they are noise)."""
    targets = dict(targets or {})
    names = list(stacks) if stacks else (list(targets) or list(stack_registry.STACKS))
    config = BenchConfig(
        stacks=names,
        model_path=_path(model, model_mod.default_model().resolve()),  # type: ignore[arg-type]
        rows_file=_path(rows),
        targets=targets,
        load=LoadConfig() if load is True else (load or None),
        out_base=_path(out, results.RESULTS_DIR),  # type: ignore[arg-type]
        command=["fiber_endpoints.api.bench"],
        **options,
    )
    with _console(show_progress):
        path, doc = runner.run(config)
    return Run(path, dict(doc))


@contextmanager
def _console(show: bool) -> Iterator[None]:
    """The bench's progress console on or off for one call."""
    from fiber_endpoints.bench.progress import console

    was = console.quiet
    console.quiet = not show
    try:
        yield
    finally:
        console.quiet = was


@dataclass(frozen=True)
class TraceRun:
    """``fiber-endpoints trace``'s results: the breakdown per stack and part."""

    path: Path
    exit_code: int
    doc: dict[str, Any]

    def breakdown_table(self) -> pd.DataFrame:
        import pandas as pd

        records = [
            {"stack": name, "part": part, **values}
            for name, summary in self.doc.get("summaries", {}).items()
            for part, values in summary.items()
            if isinstance(values, dict)
        ]
        return pd.DataFrame(records)


def trace(
    *,
    stacks: Sequence[str] | None = None,
    requests: int = 1000,
    model: str | Path | None = None,
    rows: str | Path | None = None,
    out: str | Path,
    warmup: int = 200,
) -> TraceRun:
    """``fiber-endpoints trace``: every request traced into a real Jaeger, then broken down."""
    import json

    from fiber_endpoints.trace import command

    where = placement.plan()
    out_dir = Path(out)
    code = command.run(
        list(stacks or stack_registry.STACKS),
        requests,
        out_dir,
        _path(model, model_mod.default_model().resolve()),  # type: ignore[arg-type]
        warmup=warmup,
        server_cpus=where.server_cpus,
        client_cpus=where.client_cpus,
        rows_file=_path(rows),
    )
    return TraceRun(out_dir, code, json.loads((out_dir / "results.json").read_text()))
