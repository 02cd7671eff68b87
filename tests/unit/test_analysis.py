"""The report's numbers from hand-built round records: rounds are paired by their number, a
round with no rate within the SLO counts as 0, and the open table's SLO verdict is the load lab's
per-round verdict."""

from __future__ import annotations

from typing import Any

import pytest

from fiber_endpoints import stats
from fiber_endpoints.report import analysis


def closed(rps: float) -> dict[str, Any]:
    h = stats.histogram_from_counts([(100.0, 10)])
    return {"connections": 16, "rps": rps, "requests": int(rps), "errors": 0, "non2xx": 0,
            "latency_us": stats.histogram_summary(h), "hdr": stats.encode_histogram(h)}  # fmt: skip


def opened(rate: float, p99_us: float) -> dict[str, Any]:
    h = stats.histogram_from_counts([(p99_us, 100)])
    return {"rate": rate, "achieved_rps": rate, "scheduled": 100, "unsent": 0, "requests": 100,
            "errors": 0, "non2xx": 0, "latency_us": stats.histogram_summary(h),
            "hdr": stats.encode_histogram(h), "service_hdr": stats.encode_histogram(h)}  # fmt: skip


def run(stack: str, r: int, peak: float, max_rate: float | None, **extra: Any) -> dict[str, Any]:
    record = {"round": r, "position": 0, "stack": stack, "error": None, "closed": [closed(peak)],
              "open": [], "batch": [], "slo": {"slo_ms": 10.0, "max_rate": max_rate}}  # fmt: skip
    record.update(extra)
    return record


def test_ratios_pair_the_same_rounds_even_when_one_failed() -> None:
    load = {
        "runs": [
            run("fastapi", 0, 100.0, 50.0),
            run("fastapi", 1, 100.0, 50.0, error="open: server died", slo=None),
            run("fastapi", 2, 200.0, 100.0),
            run("fiber", 0, 200.0, 100.0),
            run("fiber", 1, 200.0, 100.0),
            run("fiber", 2, 400.0, 200.0),
        ]
    }
    by = {s.name: s for s in analysis.summarise(load)}
    peak = by["fiber"].ratios["peak_rps"]
    assert peak is not None and (peak["min"], peak["max"]) == (2.0, 2.0)  # 2x in every round
    slo = by["fiber"].ratios["slo_rate"]
    assert slo is not None and slo["n"] == 2  # round 1 of the control has no rate at SLO
    assert by["fastapi"].rounds == 3  # the failed round's finished steps still count


def test_a_round_with_no_rate_within_the_slo_counts_as_zero() -> None:
    load = {"runs": [run("fiber", 0, 500.0, None), run("fiber", 1, 500.0, None),
                     run("fiber", 2, 500.0, 3000.0)]}  # fmt: skip
    (fiber,) = analysis.summarise(load)
    assert fiber.slo_rate == 0.0  # not 3000: two rounds of three missed it at every rate


def test_the_open_tables_verdict_is_the_per_round_verdict() -> None:
    # Rounds 0 and 1 miss at 3000 req/s (p99 50 ms), round 2 meets it; merged, p99 would pass.
    runs = [
        {**run("fiber", r, 5000.0, None), "open": [opened(3000.0, 50_000.0 if r < 2 else 2_000.0)]}
        for r in range(3)
    ]
    (step,) = analysis.open_steps(runs)
    assert step.extra["rounds_within_slo"] == 1
    assert not step.within_slo(10.0)
    runs[1]["open"] = [opened(3000.0, 2_000.0)]
    (step,) = analysis.open_steps(runs)
    assert step.within_slo(10.0) and step.extra["rounds_within_slo"] == 2


@pytest.mark.parametrize("missing", ["closed", "open"])
def test_a_step_whose_every_request_failed_has_no_latency_to_merge(missing: str) -> None:
    step = closed(0.0) if missing == "closed" else opened(100.0, 1.0)
    sent = 0 if missing == "closed" else 100  # wrk counts answers; vegeta, what it sent
    step.update(latency_us={"count": 0}, hdr="", service_hdr="", errors=100, requests=sent)
    merged = (analysis.closed_steps if missing == "closed" else analysis.open_steps)(
        [{"round": 0, "stack": "x", missing: [step]}]
    )
    assert merged[0].failed and not merged[0].latency.get("count")


def test_the_report_draws_a_run_whose_step_failed_entirely() -> None:
    from fiber_endpoints.report import plots

    dead = {**closed(0.0), "latency_us": {"count": 0}, "hdr": "", "errors": 50, "requests": 0}
    load = {
        "runs": [run("fiber", 0, 100.0, None), {**run("fastapi", 0, 0.0, None), "closed": [dead]}]
    }
    figures = plots.figures({"load": load})
    assert "throughput_p99.png" in figures  # drawn, the dead step left out, no KeyError


def test_the_errors_legend_appears_only_when_a_step_failed() -> None:
    from fiber_endpoints.report.load_tables import throughput_table

    clean = {"runs": [run("fastapi", 0, 100.0, 50.0), run("fiber", 0, 200.0, 100.0)]}
    assert not any("ERRORS" in line for line in throughput_table(clean))
    failed = {**closed(150.0), "non2xx": 3}
    dirty = {"runs": [run("fastapi", 0, 100.0, 50.0), {**run("fiber", 0, 200.0, 100.0),
                                                        "closed": [failed]}]}  # fmt: skip
    text = "\n".join(throughput_table(dirty))
    assert "`fiber` **ERRORS**" in text and "some steps of the stacks so marked" in text
