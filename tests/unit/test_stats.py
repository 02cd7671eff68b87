"""HDR histogram arithmetic, tail percentiles and the bootstrap, against numpy on known data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fiber_endpoints import stats

# HDR keeps 3 significant digits: every value within 0.1 % (one bucket) of the truth.
REL = 1e-3


def _lognormal(n: int = 20_000, seed: int = 3) -> np.ndarray:
    return np.round(np.random.default_rng(seed).lognormal(mean=6.0, sigma=0.8, size=n))


def test_histogram_percentiles_match_numpy_within_hdr_precision() -> None:
    values = _lognormal()
    h = stats.histogram_from_values(values)
    got = stats.histogram_percentiles(h)
    assert set(got) == {"p50", "p90", "p99", "p99.9"}
    ordered = np.sort(values)
    for q in stats.LOAD_PERCENTILES:
        # HDR's definition is nearest rank: the ceil(q % of n)-th value (numpy's "inverted_cdf",
        # with the rank rounded first: 0.999 * 20000 is 19980.000000000004 in floating point).
        rank = math.ceil(round(q / 100.0 * values.size, 6))
        want = float(ordered[rank - 1])
        assert got[f"p{q:g}"] == pytest.approx(want, rel=REL, abs=1)
    # ... and close to numpy's default (linear) where the data are dense.
    assert got["p50"] == pytest.approx(np.percentile(values, 50), rel=0.01)


def test_summary_min_max_mean_count() -> None:
    values = _lognormal(5_000)
    s = stats.histogram_summary(stats.histogram_from_values(values))
    assert s["count"] == values.size
    assert s["min"] == pytest.approx(values.min(), rel=REL, abs=1)
    assert s["max"] == pytest.approx(values.max(), rel=REL, abs=1)
    assert s["mean"] == pytest.approx(values.mean(), rel=2 * REL)
    assert stats.histogram_summary(stats.new_histogram()) == {"count": 0}


def test_counts_encode_decode_and_merge() -> None:
    # wrk's dump: (value, count) pairs; the same as recording each value count times.
    pairs = [(100.0, 5), (250.0, 3), (10_000.0, 1)]
    h = stats.histogram_from_counts(pairs)
    flat = stats.histogram_from_values([v for v, c in pairs for _ in range(c)])
    assert stats.histogram_summary(h) == stats.histogram_summary(flat)
    again = stats.decode_histogram(stats.encode_histogram(h))
    assert stats.histogram_summary(again) == stats.histogram_summary(h)
    merged = stats.merge_histograms([stats.encode_histogram(h)] * 2)
    assert merged.get_total_count() == 2 * h.get_total_count()
    assert stats.histogram_percentiles(merged) == stats.histogram_percentiles(h)


def test_cdf_is_monotone_and_ends_at_one() -> None:
    values = _lognormal(3_000)
    x, y = stats.histogram_cdf(stats.histogram_from_values(values))
    assert np.all(np.diff(x) > 0) and np.all(np.diff(y) >= 0)
    assert y[-1] == pytest.approx(1.0)
    # Half of the requests at or below the median.
    assert np.interp(np.median(values), x, y) == pytest.approx(0.5, abs=0.01)


def test_values_are_clamped_to_the_trackable_range() -> None:
    h = stats.histogram_from_values([0.0, 0.4, 1e12])
    assert h.get_min_value() == stats.HDR_LOWEST_US
    assert h.get_max_value() >= stats.HDR_HIGHEST_US * (1 - REL)


def test_percentile_p999_is_numpy() -> None:
    values = _lognormal(1_001).tolist()
    assert stats.percentile_p999(values)["p99.9"] == np.percentile(values, 99.9)


def test_weighted_median_matches_numpy_on_expanded_values() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(1, 50, size=30).astype(float)
    counts = rng.integers(1, 6, size=30)
    expanded = np.repeat(values, counts)
    assert stats.weighted_median(values, counts) == np.median(expanded)
    assert stats.weighted_median(values) == np.median(values)


def test_bootstrap_ratio_of_medians_covers_the_true_ratio_and_is_seeded() -> None:
    rng = np.random.default_rng(11)
    a = rng.normal(200.0, 20.0, size=400)  # true median 200
    b = rng.normal(100.0, 10.0, size=400)  # true median 100
    res = stats.bootstrap_ratio_of_medians(a, b, seed=5)
    assert res["ratio"] == pytest.approx(np.median(a) / np.median(b))
    assert res["low"] < 2.0 < res["high"]
    assert res["high"] - res["low"] < 0.2
    assert stats.bootstrap_ratio_of_medians(a, b, seed=5) == res
    # Identical samples: the interval holds 1.
    same = stats.bootstrap_ratio_of_medians(b, b, seed=1)
    assert same["ratio"] == 1.0 and same["low"] <= 1.0 <= same["high"]


def test_bootstrap_from_histograms_agrees_with_raw_values() -> None:
    rng = np.random.default_rng(2)
    a = np.round(rng.lognormal(5.0, 0.3, size=3000))
    b = np.round(rng.lognormal(4.0, 0.3, size=3000))
    va, ca = np.unique(a, return_counts=True)
    vb, cb = np.unique(b, return_counts=True)
    hist = stats.bootstrap_ratio_of_medians(va, vb, sample_counts=ca, control_counts=cb, seed=3)
    raw = stats.bootstrap_ratio_of_medians(a, b, seed=3)
    assert hist["ratio"] == pytest.approx(raw["ratio"])
    assert hist["low"] == pytest.approx(raw["low"], rel=0.02)
    assert hist["high"] == pytest.approx(raw["high"], rel=0.02)
    assert hist["n_sample"] == 3000


def test_bootstrap_needs_values() -> None:
    with pytest.raises(ValueError):
        stats.bootstrap_ratio_of_medians([], [1.0])


def test_block_bootstrap_sees_the_spread_between_samples() -> None:
    """Calls within a sample share the machine's state: a slow sample moves all its calls.
    Resampling whole samples must give a wider interval than resampling single calls."""
    rng = np.random.default_rng(3)
    level = rng.lognormal(sigma=0.3, size=40)  # per-sample drift, shared by both stacks
    noise = rng.lognormal(sigma=0.3, size=40)  # per-sample drift of the stack alone
    control = [list(lv * (1 + 0.01 * rng.standard_normal(100))) for lv in level]
    sample = [list(0.5 * lv * nv * (1 + 0.01 * rng.standard_normal(100)))
              for lv, nv in zip(level, noise, strict=True)]  # fmt: skip
    blocks = stats.bootstrap_ratio_of_medians_paired_blocks(sample, control, seed=1)
    calls = stats.bootstrap_ratio_of_medians(
        [x for b in sample for x in b], [x for b in control for x in b], resamples=500, seed=1
    )
    assert blocks["low"] <= blocks["ratio"] <= blocks["high"]
    assert (blocks["high"] - blocks["low"]) > 2 * (calls["high"] - calls["low"])
    same = stats.bootstrap_ratio_of_medians_paired_blocks(control, control)
    assert same["ratio"] == same["low"] == same["high"] == 1.0
