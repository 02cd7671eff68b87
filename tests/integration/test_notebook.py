"""notebooks/benchmark.ipynb runs headless, top to bottom, against real servers (the sample
sizes shrunk by FIBER_ENDPOINTS_NOTEBOOK_QUICK), under its 3-minute goal; it is committed
without outputs, so what a reader opens is the code, and docs/notebook/ holds an executed copy."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "benchmark.ipynb"


def test_the_notebook_is_committed_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert not any("subprocess" in c.source or c.source.lstrip().startswith("!") for c in code)


def test_the_notebook_runs_top_to_bottom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIBER_ENDPOINTS_NOTEBOOK_QUICK", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    started = time.monotonic()
    client.execute(env={**os.environ, "FIBER_ENDPOINTS_NOTEBOOK_QUICK": "1"})
    elapsed = time.monotonic() - started
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # Tables came back as DataFrames and figures as images, not just text.
    assert sum("text/html" in o.get("data", {}) for o in outputs) >= 5
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2
    assert elapsed < 180, f"the notebook took {elapsed:.0f} s (goal: under 3 minutes)"
