"""scripts/check_docs.py (run by ``make lint``) on small hand-made trees: it finds each kind of
drift, and is quiet on a tree without any."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_docs.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_docs", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


check_docs = _load()

ARCHITECTURE = """# Architecture

| piece | where |
| --- | --- |
| CLI | `src/fiber_endpoints/cli.py`, `__main__.py` |
| registry | `stacks/__init__.py` |
| load | `bench/load.py`, `bench/trivial_server.c` |
| Go | `fiber/main.go` (tests: `fiber/*_test.go`) |
"""


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write(
        tmp_path,
        {
            "README.md": "# Title\n\nSee [the method](docs/method.md#ratios-and-intervals), "
            "![a plot](docs/img/p.png), [a site](https://example.com) and `docs/method.md`.\n",
            "docs/method.md": "# Method\n\n## Ratios and intervals\n\n[up](../README.md#title); "
            "output `report.md`; test `tests/unit/test_x.py`.\n",
            "docs/img/p.png": "",
            "docs/architecture.md": ARCHITECTURE,
            "fiber/README.md": "Contract: `../docs/method.md`.\n",
            "fiber/main.go": "package main\n",
            "fiber/main_test.go": "package main\n",
            "tests/unit/test_x.py": "",
            "src/fiber_endpoints/__init__.py": '"""The package."""\n__version__ = "1"\n',
            "src/fiber_endpoints/__main__.py": "",
            "src/fiber_endpoints/cli.py": 'OUT = "report.md"\n',
            "src/fiber_endpoints/stacks/__init__.py": "def get() -> None: ...\n",
            "src/fiber_endpoints/bench/__init__.py": '"""Docstring only."""\n',
            "src/fiber_endpoints/bench/load.py": "",
            "src/fiber_endpoints/bench/trivial_server.c": "",
        },
    )
    return tmp_path


def test_a_consistent_tree_has_no_problems(tree: Path) -> None:
    assert check_docs.problems(tree) == []
    assert check_docs.main(["--root", str(tree)]) == 0


def test_broken_links_and_anchors(tree: Path) -> None:
    write(
        tree,
        {
            "docs/method.md": "# Method\n\n[gone](gone.md), [anchor](../README.md#nope), "
            "[outside](../../elsewhere/MEASURED.md), `[not a link](code.md)`\n",
        },
    )
    found = check_docs.problems(tree)
    assert any("docs/method.md:3: link to gone.md: no such file" in p for p in found), found
    assert any("#nope" in p for p in found)
    assert any("leaves the repository" in p for p in found)
    assert any("README.md:3: link to docs/method.md#ratios-and-intervals" in p for p in found)
    assert not any("code.md" in p for p in found)  # inside a code span: not a link


def test_files_cited_that_the_repository_does_not_have(tree: Path) -> None:
    write(
        tree,
        {
            "docs/extra.md": "Per `MEASURED.md` and `../../shared/MEASURED.md`; "
            "`tests/unit/test_gone.py`; `Booster.predict` is no file.\n"
        },
    )
    found = [p for p in check_docs.problems(tree) if p.startswith("docs/extra.md")]
    assert len(found) == 3, found
    assert "cites MEASURED.md" in found[0]
    assert "cites ../../shared/MEASURED.md, outside the repository" in found[1]
    assert "cites tests/unit/test_gone.py" in found[2]


def test_architecture_names_every_module_and_only_real_ones(tree: Path) -> None:
    write(
        tree,
        {
            "src/fiber_endpoints/bench/slo.py": "",
            "fiber/handler.go": "package main\n",
            "docs/architecture.md": ARCHITECTURE + "| old | `bench/summary.py` |\n",
        },
    )
    found = check_docs.problems(tree)
    assert "docs/architecture.md: names bench/summary.py, which does not exist" in found
    (missing,) = [p for p in found if "does not name" in p]
    assert "2 module(s): bench/slo.py, fiber/handler.go " in missing
    assert check_docs.main(["--root", str(tree)]) == 1


def test_heading_anchors_follow_github() -> None:
    text = "# Ratios and CIs\n## `bench --full`: 3 rounds\n## Ratios and CIs\n```\n# not\n```\n"
    assert check_docs.slugs(text) == {"ratios-and-cis", "bench---full-3-rounds", "ratios-and-cis-1"}
