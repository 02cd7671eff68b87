"""``bench --observability-cost`` and start-up timing, on hand-built results: the costs and their
intervals, the goals' verdicts (met only when the interval's worse end is within), the tables,
the schema; and the compiled model's certificate (bound to the model file's hash)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from fiber_endpoints import model, stats
from fiber_endpoints.bench import observability, schema, startup
from fiber_endpoints.stacks import lleaves_predictor


def test_diff_of_medians_paired_blocks() -> None:
    control = [[100.0, 101.0, 99.0]] * 20
    sample = [[103.0, 104.0, 102.0]] * 20
    got = stats.bootstrap_diff_of_medians_paired_blocks(sample, control)
    assert got["diff"] == pytest.approx(3.0)
    assert got["low"] == pytest.approx(3.0) and got["high"] == pytest.approx(3.0)
    noisy = [[100.0 + (i % 5)] * 3 for i in range(20)]
    wide = stats.bootstrap_diff_of_medians_paired_blocks(noisy, control)
    assert wide["low"] < wide["diff"] <= wide["high"]
    with pytest.raises(ValueError):
        stats.bootstrap_diff_of_medians_paired_blocks([], control)


def test_mean_ratio() -> None:
    got = stats.bootstrap_mean_ratio([90.0, 95.0, 100.0], [100.0, 100.0, 100.0])
    assert got["ratio"] == pytest.approx(0.95)
    assert 0.9 <= got["low"] <= got["ratio"] <= got["high"] <= 1.0


def _variant(p50_us: float, rps: float, p99_us: float) -> dict[str, Any]:
    blocks = [[(p50_us + (i % 3) * 0.1) * 1e-6 for i in range(10)] for _ in range(12)]
    closed = [{"rps": rps, "p50_us": p50_us, "p99_us": p99_us, "errors": 0}] * 4
    return {"latencies_s": blocks, "closed": closed}


def _doc(metrics_p50: float, trace100_rps: float) -> dict[str, Any]:
    stack = {
        "off": _variant(100.0, 10_000.0, 300.0),
        "metrics": _variant(metrics_p50, 9_900.0, 300.0),
        "trace1": _variant(101.0, 9_950.0, 310.0),
        "trace100": _variant(110.0, trace100_rps, 400.0),
    }
    return {"samples": 12, "calls": 10, "rounds": 4, "slice_s": 2.0, "connections": 64,
            "stacks": {"fiber": stack, "asgi-msgspec": stack}}  # fmt: skip


def test_summary_and_verdicts() -> None:
    doc = _doc(metrics_p50=101.0, trace100_rps=9_000.0)
    table = observability.summarize(doc)
    row = table["fiber"]["metrics"]
    assert row["p50_us"] == pytest.approx(1.0, abs=0.05)
    assert row["rps_ratio"] == pytest.approx(0.99)
    assert table["fiber"]["trace100"]["p99_ratio"] == pytest.approx(400 / 300)
    verdicts = observability.verdicts(table)
    assert len(verdicts) == 2 * len(observability.GOALS)
    assert all(v.split(": ")[1] == "met" for v in verdicts), verdicts
    worse = observability.verdicts(observability.summarize(_doc(104.0, 8_000.0)))
    missed = [v for v in worse if "MISSED" in v]
    assert any("metrics on" in v and "p50_us" in v for v in missed)
    assert any("tracing 100 %" in v and "req/s" in v for v in missed)
    text = observability.markdown(doc)
    assert text.count("\n") == 1 + 2 * len(observability.VARIANTS)
    assert "| fiber | metrics on | 100.1 | +1.0 [" in text


def test_variant_env() -> None:
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}
    assert observability.variant_env("off", otel) == {"FIBER_ENDPOINTS_METRICS": "0"}
    assert observability.variant_env("metrics", otel) == {"FIBER_ENDPOINTS_METRICS": "1"}
    on = observability.variant_env("trace1", otel)
    assert on["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert on["OTEL_TRACES_SAMPLER_ARG"] == "0.01" and on["FIBER_ENDPOINTS_METRICS"] == "0"


def test_startup_table_and_schema() -> None:
    runs = [{"seconds": s, "predictor": "lleaves"} for s in (0.9, 2.5, 1.1)]
    doc = {
        "runs": 3,
        "stacks": {"asgi-msgspec": runs, "fastapi": [{**r, "seconds": 3.0} for r in runs]},
    }
    text = startup.markdown(doc)
    assert "| asgi-msgspec | lleaves | 0.90, 2.50, 1.10 | 1.10 | met |" in text
    assert "missed by 1.00 s" in text
    from pydantic import TypeAdapter

    TypeAdapter(schema.Startup).validate_python(doc)
    TypeAdapter(schema.ObservabilityCost).validate_python(_doc(101.0, 9_000.0))


def test_model_shape_reads_the_header_only() -> None:
    for name, classes in (("regression", 1), ("binary", 1), ("multiclass", 3)):
        path = model.MODELS_DIR / name / "model.txt"
        assert lleaves_predictor.model_shape(path) == (20, classes)


def test_certificate_is_bound_to_the_model_files_hash(tmp_path: Path) -> None:
    """A certified artefact is used only for the exact model file it was checked with: another
    model at the same path finds no certificate (its hash names another artefact)."""
    shipped = model.MODELS_DIR / "binary" / "model.txt"
    path = tmp_path / "model.txt"
    shutil.copy(shipped, path)
    cache = tmp_path / "cache"
    cache.mkdir()
    # The compiled object from the user cache (same bytes, same key): only the check runs here.
    lleaves_predictor.LleavesPredictor(shipped, threads=1).close()
    obj = lleaves_predictor.cache_path(shipped)
    shutil.copy(obj, cache / obj.name)
    assert not lleaves_predictor.certified(path, cache)
    assert lleaves_predictor.compile_and_check(path, cache) == []
    assert lleaves_predictor.certified(path, cache)
    predictor = lleaves_predictor.LleavesPredictor(path, threads=1, directory=cache, check=True)
    golden = model.load_golden(model.MODELS_DIR / "binary" / "model.txt")
    rows = [[None if v != v else v for v in row] for row in golden.rows]
    assert model.parity_errors([predictor.predict_row(r) for r in rows], golden) == []
    assert predictor.shared  # linked: served without LLVM in the process
    # A model mounted over the shipped one: not certified until compiled and checked itself.
    shutil.copy(model.MODELS_DIR / "multiclass" / "model.txt", path)
    assert not lleaves_predictor.certified(path, cache)
    # A damaged certificate is no certificate.
    shutil.copy(model.MODELS_DIR / "binary" / "model.txt", path)
    lleaves_predictor.certificate_path(path, cache).write_text("{")
    assert not lleaves_predictor.certified(path, cache)


def test_shipped_artefact_is_bound_to_the_model_and_needs_no_compiler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an image carries (``compile --ship``): found by the served file's hash alone, loaded
    with neither lleaves nor llvmlite importable; any other model, or a changed .so or
    certificate, finds nothing (and then falls back as without a shipped artefact)."""
    from importlib import metadata

    from fiber_endpoints.stacks import asgi_msgspec

    # The 50-tree model: the 500-tree one took 17 s of the unit tier to compile on a fresh
    # machine (its user cache empty), over the tier's budget on its own.
    source = model.MODELS_DIR / "binary" / "model.txt"
    cache, into = tmp_path / "cache", tmp_path / "shipped"
    cache.mkdir()
    lleaves_predictor.LleavesPredictor(source, threads=1).close()  # the user cache's object
    obj = lleaves_predictor.cache_path(source)
    shutil.copy(obj, cache / obj.name)  # same bytes, same key: linked and checked, not compiled
    so = lleaves_predictor.ship(source, into, cache)
    assert so.parent == into and so.stem == lleaves_predictor.model_sha256(source)
    served = tmp_path / "models" / "model.txt"  # mounted elsewhere: the hash finds it
    served.parent.mkdir()
    shutil.copy(source, served)
    assert lleaves_predictor.shipped(served) is None, "no FIBER_ENDPOINTS_COMPILED: not looked up"
    monkeypatch.setenv(lleaves_predictor.SHIPPED_ENV, str(into))
    assert lleaves_predictor.shipped(served) == so

    # A serving image: no lleaves, no llvmlite.
    def not_installed(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setitem(sys.modules, "lleaves", None)  # `import lleaves` raises ImportError
    monkeypatch.setitem(sys.modules, "llvmlite", None)
    monkeypatch.setitem(sys.modules, "llvmlite.binding", None)
    monkeypatch.setattr(metadata, "version", not_installed)
    monkeypatch.setenv("FIBER_ENDPOINTS_CACHE", str(tmp_path / "empty-cache"))
    predictor = asgi_msgspec.load_predictor(served, 1, "lleaves")
    assert isinstance(predictor, lleaves_predictor.LleavesPredictor) and predictor.from_image
    golden = model.load_golden(source)
    rows = [[None if v != v else v for v in row] for row in golden.rows]
    assert model.parity_errors([predictor.predict_row(r) for r in rows], golden) == []
    assert lleaves_predictor.ensure_compiled(served) == so
    # Another model mounted over it: nothing shipped for its hash, no compiler: the C API.
    shutil.copy(model.MODELS_DIR / "multiclass" / "model.txt", served)
    assert lleaves_predictor.shipped(served) is None
    assert not isinstance(asgi_msgspec.load_predictor(served, 1, "lleaves"), type(predictor))
    # The shipped files themselves are checked: a changed .so, or a certificate for elsewhere.
    shutil.copy(source, served)
    cert = into / f"{so.stem}.parity.json"
    good = cert.read_text()
    for field, value in (("machine", "riscv64"), ("target_cpu", "znver4"), ("ok", False)):
        doc = json.loads(good)
        doc[field] = value
        cert.write_text(json.dumps(doc))
        assert lleaves_predictor.shipped(served) is None, field
    cert.write_text(good)
    assert lleaves_predictor.shipped(served) == so
    # A changed .so, written as a new file: the one this process loaded above stays mapped
    # (rewriting a loaded library in place crashed the test process at exit).
    predictor.close()
    changed = so.with_name("changed.so")
    changed.write_bytes(so.read_bytes() + b"\0")
    os.replace(changed, so)
    assert lleaves_predictor.shipped(served) is None


def test_portable_target(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, _ = lleaves_predictor.target()
    assert cpu in ("x86-64-v2", "generic")
    monkeypatch.setenv(lleaves_predictor.TARGET_ENV, "native")
    assert lleaves_predictor.target()[0] != "x86-64-v2" or cpu == "generic"
