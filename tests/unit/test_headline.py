"""The SLO and the headline numbers, on hand-built steps (each value chosen to sit on one side of
one rule)."""

from __future__ import annotations

from typing import Any

import pytest

from fiber_endpoints import headline


def open_step(**changes: Any) -> dict[str, Any]:
    step: dict[str, Any] = {
        "rate": 1000.0,
        "achieved_rps": 1000.0,
        "scheduled": 1000,
        "unsent": 0,
        "requests": 1000,
        "errors": 0,
        "non2xx": 0,
        "latency_us": {"count": 1000, "p99": 9_000.0},
    }
    step.update(changes)
    return step


def closed_step(rps: float, cpu: float | None = None, **changes: Any) -> dict[str, Any]:
    step: dict[str, Any] = {"rps": rps, "requests": int(rps), "errors": 0, "non2xx": 0}
    if cpu is not None:
        step["server"] = {"cpu_s_per_1k": cpu}
    step.update(changes)
    return step


def test_a_clean_step_under_the_bound_meets_the_slo() -> None:
    assert headline.step_within_slo(open_step(), slo_ms=10.0)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"latency_us": {"count": 1000, "p99": 10_001.0}}, "p99 over the bound"),
        ({"latency_us": {"count": 0, "p99": 1.0}}, "nothing measured"),
        ({"non2xx": 1}, "one non-2xx"),
        ({"errors": 1}, "one socket error"),
        ({"achieved_rps": 949.0}, "under 95 % of the rate delivered"),
        ({"unsent": 11}, "over 1 % never sent"),
    ],
)
def test_each_rule_of_the_slo_can_fail_a_step(change: dict[str, Any], why: str) -> None:
    assert not headline.step_within_slo(open_step(**change), slo_ms=10.0), why


def test_the_slo_bound_is_inclusive() -> None:
    assert headline.step_within_slo(open_step(latency_us={"count": 5, "p99": 10_000.0}), 10.0)
    assert headline.step_within_slo(open_step(achieved_rps=950.0, unsent=10), 10.0)


def test_max_rate_under_slo_is_the_highest_passing_rate_not_the_last() -> None:
    steps = [
        open_step(rate=100.0, achieved_rps=100.0),
        open_step(rate=300.0, achieved_rps=300.0),
        open_step(rate=500.0, achieved_rps=500.0, latency_us={"count": 9, "p99": 50_000.0}),
        open_step(rate=200.0, achieved_rps=200.0),
    ]
    assert headline.max_rate_under_slo(steps, 10.0) == 300.0
    assert headline.max_rate_under_slo(steps[2:3], 10.0) is None
    assert headline.max_rate_under_slo([], 10.0) is None


def test_plan_rates_from_the_peak_or_as_given() -> None:
    assert headline.plan_rates(1000.0, (0.25, 0.5, 0.999)) == [250.0, 500.0, 999.0]
    assert headline.plan_rates(2.0, (0.1,)) == [1.0]  # never a rate of 0
    assert headline.plan_rates(None, (0.5,), fixed=(70, 80)) == [70.0, 80.0]
    with pytest.raises(ValueError, match="--rate"):
        headline.plan_rates(None, (0.5,))


def test_peak_and_its_cpu_come_from_the_same_step() -> None:
    steps = [
        closed_step(100.0, cpu=0.5),
        closed_step(900.0, cpu=0.04),
        closed_step(800.0, cpu=0.03),
    ]
    assert headline.peak_rps(steps) == 900.0
    assert headline.cpu_ms_per_request_at_peak(steps) == 0.04
    assert headline.peak_rps([]) is None
    assert headline.cpu_ms_per_request_at_peak([closed_step(5.0)]) is None


def test_error_share_counts_socket_errors_and_non_2xx() -> None:
    assert headline.error_share(closed_step(0.0, requests=100, non2xx=100)) == 1.0
    assert headline.error_share(closed_step(0.0, requests=60, non2xx=10, errors=40)) == 0.5
    assert headline.error_share(closed_step(0.0, requests=0)) == 0.0
    assert headline.failures(closed_step(0.0, non2xx=3, errors=2)) == 5
    # Open loop: requests are what was sent, the failed ones among them.
    assert headline.error_share(open_step(requests=100, errors=100)) == 1.0
    assert headline.error_share(open_step(requests=100, errors=70)) == pytest.approx(0.7)
    assert headline.error_share(open_step(requests=100, errors=30, non2xx=30)) == 0.6


def test_ratio_over_rounds_is_median_over_median_with_the_per_round_range() -> None:
    r = headline.ratio_over_rounds([10.0, 30.0, 20.0], [10.0, 10.0, 5.0])
    assert r is not None
    assert r["ratio"] == 2.0  # median 20 / median 10
    assert (r["min"], r["max"]) == (1.0, 4.0)  # 10/10, 30/10, 20/5
    assert r["n"] == 3


def test_ratio_over_rounds_skips_missing_rounds_and_needs_two_for_a_range() -> None:
    one = headline.ratio_over_rounds([6.0, None], [3.0, 2.0])
    assert one is not None and one["ratio"] == 6.0 / 2.5 and "min" not in one
    assert headline.ratio_over_rounds([None], [1.0]) is None
    assert headline.ratio_over_rounds([1.0], [0.0]) is None


def test_drift_is_relative_to_the_start() -> None:
    assert headline.drift(100.0, 70.0) == pytest.approx(0.3)
    assert headline.drift(100.0, 130.0) == pytest.approx(0.3)
    assert headline.drift(None, 1.0) is None and headline.drift(0.0, 1.0) is None
