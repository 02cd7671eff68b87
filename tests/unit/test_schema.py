"""The results schema: what report refuses, and that a written document reads back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fiber_endpoints.bench import results, schema


def minimal() -> dict[str, Any]:
    return {
        "schema": schema.SCHEMA,
        "created": "2026-11-30T00:00:00+00:00",
        "command": ["fiber-endpoints", "bench"],
        "machine": {},
        "placement": {"client_cpus": [0], "server_cpus": [1], "note": ""},
        "config": {},
        "model": {},
        "workload": {},
        "stacks": {
            "fiber": {
                "url": "http://127.0.0.1:1",
                "started_by_bench": True,
                "health": {},
                "cpus": [1],
                "parity": {"ok": True, "checked_rows": 3, "errors": []},
            }
        },
        "verdict": {"ok": True, "problems": []},
    }


def test_a_written_run_reads_back_and_moves_latest_only_then(tmp_path: Path) -> None:
    run = results.run_dir(tmp_path)
    assert not (tmp_path / "latest").exists(), "latest moves only when a run finished"
    doc = minimal()
    del doc["schema"]  # write() stamps it
    results.write(doc, run)
    assert (tmp_path / "latest").resolve() == run.resolve()
    assert results.load(run)["stacks"]["fiber"]["parity"]["ok"] is True
    assert results.run_dir(tmp_path) != run  # a second run in the same second: its own folder


def test_an_unknown_version_is_refused_with_what_to_do(tmp_path: Path) -> None:
    old = minimal() | {"schema": "fiber-endpoints/results/1"}
    (tmp_path / "results.json").write_text(json.dumps(old))
    with pytest.raises(schema.SchemaError, match=r"results/1.*rerun `fiber-endpoints bench`"):
        results.load(tmp_path)


def test_a_damaged_document_names_the_field() -> None:
    doc = minimal()
    doc["stacks"]["fiber"]["parity"]["ok"] = "maybe"
    with pytest.raises(schema.SchemaError, match=r"stacks\.fiber\.parity\.ok"):
        schema.validate(doc)
    doc = minimal()
    del doc["verdict"]
    with pytest.raises(schema.SchemaError, match="verdict"):
        schema.validate(doc)


def test_not_json_is_a_schema_error(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(schema.SchemaError, match="cannot read"):
        results.load(tmp_path)
