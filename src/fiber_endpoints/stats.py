"""Statistics over raw latencies: pure functions, no I/O, heavily tested."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

PERCENTILES = (50.0, 90.0, 99.0)


def percentiles(values: Sequence[float], qs: Sequence[float] = PERCENTILES) -> dict[str, float]:
    """``{"p50": ..., "p90": ...}`` with numpy's default (linear) interpolation."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no values")
    return {f"p{q:g}": float(np.percentile(arr, q)) for q in qs}


def mean_diff_percent(value: float, control: float) -> float:
    """The proof of concept's "mean diff. vs control": the difference over the mean of the two,
    in percent (so 0.261 vs 0.086 gives 100.56 %)."""
    return (control - value) / ((control + value) / 2.0) * 100.0


# --- Load: HDR histograms, tail percentiles, bootstrap ------------------------------------------
#
# Latencies under load are recorded in HDR histograms of integer microseconds, 1 µs to 60 s at 3
# significant digits (every value is kept within 0.1 %), so a run of millions of requests is kept
# whole in a few kB and percentiles are read from the full distribution, never from a sample.

LOAD_PERCENTILES = (50.0, 90.0, 99.0, 99.9)
HDR_LOWEST_US = 1
HDR_HIGHEST_US = 60_000_000
HDR_SIGNIFICANT_DIGITS = 3


def new_histogram() -> Any:
    """An empty latency histogram (µs)."""
    from hdrh.histogram import HdrHistogram

    return HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_SIGNIFICANT_DIGITS)


def _clamp_us(value: float) -> int:
    return min(max(round(value), HDR_LOWEST_US), HDR_HIGHEST_US)


def histogram_from_values(values_us: Iterable[float]) -> Any:
    h = new_histogram()
    for v in values_us:
        h.record_value(_clamp_us(v))
    return h


def histogram_from_counts(pairs: Iterable[tuple[float, int]]) -> Any:
    """From ``(value µs, count)`` pairs, as wrk's ``done()`` dumps them."""
    h = new_histogram()
    for value, count in pairs:
        if count > 0:
            h.record_value(_clamp_us(value), int(count))
    return h


def encode_histogram(h: Any) -> str:
    """HDR's standard compressed base64 form (readable by every HdrHistogram implementation)."""
    return bytes(h.encode()).decode("ascii")


def decode_histogram(encoded: str) -> Any:
    from hdrh.histogram import HdrHistogram

    return HdrHistogram.decode(encoded.encode("ascii"))


def merge_histograms(encoded: Iterable[str | None]) -> Any:
    """One histogram of many (a step with no latency at all, every request failed, has none)."""
    total = new_histogram()
    for e in encoded:
        if e:
            total.add(decode_histogram(e))
    return total


def histogram_percentiles(h: Any, qs: Sequence[float] = LOAD_PERCENTILES) -> dict[str, float]:
    """``{"p50": µs, ..., "p99.9": µs}``: HDR's definition, the smallest recorded value (bucket's
    highest equivalent) with at least q % of the counts at or below it."""
    if h.get_total_count() == 0:
        raise ValueError("empty histogram")
    return {f"p{q:g}": float(h.get_value_at_percentile(q)) for q in qs}


def histogram_summary(h: Any) -> dict[str, Any]:
    """Count, min, mean, max and the load percentiles, all in µs."""
    n = int(h.get_total_count())
    if n == 0:
        return {"count": 0}
    return {
        "count": n,
        "min": float(h.get_min_value()),
        "mean": float(h.get_mean_value()),
        "max": float(h.get_max_value()),
        **histogram_percentiles(h),
    }


def histogram_values_counts(h: Any) -> tuple[np.ndarray, np.ndarray]:
    """The recorded distribution as (values µs, counts), values ascending."""
    values: list[float] = []
    counts: list[int] = []
    for item in h.get_recorded_iterator():
        values.append(float(item.value_iterated_to))
        counts.append(int(item.count_added_in_this_iter_step))
    return np.asarray(values, dtype=np.float64), np.asarray(counts, dtype=np.int64)


def histogram_cdf(h: Any) -> tuple[np.ndarray, np.ndarray]:
    """(values µs, fraction of requests at or below each value): the latency CDF to plot."""
    values, counts = histogram_values_counts(h)
    if counts.size == 0:
        return values, counts.astype(np.float64)
    return values, np.cumsum(counts) / counts.sum()


def percentile_p999(values: Sequence[float]) -> dict[str, float]:
    """Exact percentiles (numpy, linear) including p99.9, for raw latency lists."""
    return percentiles(values, LOAD_PERCENTILES)


def _median_of_resamples(
    values: np.ndarray, weights: np.ndarray | None, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Medians of ``n`` bootstrap resamples (rows) of ``values`` (optionally with counts)."""
    if weights is None and values.size > 2000:  # same distribution, bounded memory
        values, counts = np.unique(values, return_counts=True)
        weights = counts.astype(np.float64)
    if weights is None:
        idx = rng.integers(0, values.size, size=(n, values.size))
        medians: np.ndarray = np.median(values[idx], axis=1)
        return medians
    order = np.argsort(values)
    values, weights = values[order], weights[order]
    # A histogram: resample the same number of requests, multinomially over its buckets.
    total = int(weights.sum())
    p = weights / weights.sum()
    draws = rng.multinomial(total, p, size=n)
    cum = np.cumsum(draws, axis=1)
    half = (total - 1) / 2.0
    lo = np.argmax(cum > np.floor(half), axis=1)
    hi = np.argmax(cum > np.ceil(half), axis=1)
    out: np.ndarray = (values[lo] + values[hi]) / 2.0
    return out


def bootstrap_ratio_of_medians(
    sample: Sequence[float] | np.ndarray,
    control: Sequence[float] | np.ndarray,
    *,
    sample_counts: Sequence[int] | np.ndarray | None = None,
    control_counts: Sequence[int] | np.ndarray | None = None,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """median(sample) / median(control) with a percentile bootstrap confidence interval.

    Each side is resampled independently with replacement (its own size); with ``*_counts`` a
    side is a histogram (values, counts) and is resampled request by request. Seeded: the same
    inputs give the same interval. Returns ``{"ratio", "low", "high", "n_sample", "n_control"}``.
    """
    a = np.asarray(sample, dtype=np.float64)
    b = np.asarray(control, dtype=np.float64)
    wa = None if sample_counts is None else np.asarray(sample_counts, dtype=np.float64)
    wb = None if control_counts is None else np.asarray(control_counts, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        raise ValueError("both sides need at least one value")
    rng = np.random.default_rng(seed)
    ma = _median_of_resamples(a, wa, resamples, rng)
    mb = _median_of_resamples(b, wb, resamples, rng)
    point_a = weighted_median(a, wa)
    point_b = weighted_median(b, wb)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = ma / mb
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(ratios, [tail, 100.0 - tail])
    return {
        "ratio": point_a / point_b if point_b else float("inf"),
        "low": float(low),
        "high": float(high),
        "n_sample": float(a.size if wa is None else wa.sum()),
        "n_control": float(b.size if wb is None else wb.sum()),
    }


def bootstrap_ratio_of_medians_paired_blocks(
    sample_blocks: Sequence[Sequence[float]],
    control_blocks: Sequence[Sequence[float]],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """median(all sample values) / median(all control values), with a CI from resampling whole
    blocks, the same block indices on both sides.

    For the interleaved sequential protocol a block is one sample of C consecutive calls, and
    block i of each stack ran in the same turn: calls within a block are correlated (they share
    the machine's state), so resampling single calls would give far too narrow an interval.
    Blocks of unequal length are trimmed to the shortest."""
    (pa, pc), (ma, mc), k = _paired_block_medians([sample_blocks, control_blocks], resamples, seed)
    low, high = _interval(ma / mc, confidence)
    return {"ratio": pa / pc, "low": low, "high": high, "blocks": float(k)}


def bootstrap_median_blocks(
    blocks: Sequence[Sequence[float]],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """The median of all values with a CI from resampling whole blocks (one block = one sample
    of consecutive calls, which are correlated): how precisely one run pins its median."""
    (point,), (medians,), _ = _paired_block_medians([blocks], resamples, seed)
    low, high = _interval(medians, confidence)
    return {"median": point, "low": low, "high": high}


def _paired_block_medians(
    sides: Sequence[Sequence[Sequence[float]]], resamples: int, seed: int
) -> tuple[list[float], list[np.ndarray], int]:
    """Each side's median, and its medians over ``resamples`` resamplings of whole blocks, the
    same block indices on every side (block i of each side ran in the same turn); blocks are
    trimmed to the shortest. Returns (medians, resampled medians, blocks used)."""
    k = min(len(side) for side in sides)
    width = min((len(b) for side in sides for b in side[:k]), default=0)
    if k == 0 or width == 0:
        raise ValueError("every side needs at least one non-empty block")
    arrays = [np.asarray([list(b)[:width] for b in side[:k]], dtype=np.float64) for side in sides]
    idx = np.random.default_rng(seed).integers(0, k, size=(resamples, k))
    resampled = [np.median(a[idx].reshape(resamples, -1), axis=1) for a in arrays]
    return [float(np.median(a)) for a in arrays], resampled, k


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def weighted_median(values: np.ndarray, counts: np.ndarray | None = None) -> float:
    """The median of values (each repeated ``counts`` times); numpy's median when unweighted."""
    if counts is None:
        return float(np.median(values))
    order = np.argsort(values)
    v, c = values[order], counts[order]
    cum = np.cumsum(c)
    total = cum[-1]
    half = (total - 1) / 2.0
    lo = int(np.argmax(cum > np.floor(half)))
    hi = int(np.argmax(cum > np.ceil(half)))
    return float((v[lo] + v[hi]) / 2.0)


def bootstrap_diff_of_medians_paired_blocks(
    sample_blocks: Sequence[Sequence[float]],
    control_blocks: Sequence[Sequence[float]],
    *,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """median(all sample values) - median(all control values), with a CI from resampling whole
    blocks, the same block indices on both sides (as :func:`bootstrap_ratio_of_medians_paired_
    blocks`, for an added cost in the values' unit)."""
    (pa, pc), (ma, mc), k = _paired_block_medians([sample_blocks, control_blocks], resamples, seed)
    low, high = _interval(ma - mc, confidence)
    return {"diff": pa - pc, "low": low, "high": high, "blocks": float(k)}


def bootstrap_mean_ratio(
    sample: Sequence[float],
    control: Sequence[float],
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """mean(sample) / mean(control) over paired slices (slice i of each ran back to back), with
    a CI from resampling whole pairs: for throughput measured in alternating slices."""
    k = min(len(sample), len(control))
    if k == 0:
        raise ValueError("both sides need at least one slice")
    a = np.asarray(sample[:k], dtype=np.float64)
    c = np.asarray(control[:k], dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, k, size=(resamples, k))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = a[idx].mean(axis=1) / c[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(ratios, [tail, 100.0 - tail])
    return {"ratio": float(a.mean() / c.mean()), "low": float(low), "high": float(high),
            "pairs": float(k)}  # fmt: skip
