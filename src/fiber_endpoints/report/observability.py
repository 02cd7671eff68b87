"""The report's section on what metrics and tracing cost, and how fast each stack starts."""

from __future__ import annotations

from typing import Any


def observability_sections(results: dict[str, Any]) -> list[str]:
    """The observability cost (``bench --observability-cost``) and start-up times, if run."""
    from fiber_endpoints.bench import observability, startup

    lines: list[str] = []
    cost = results.get("observability_cost")
    if cost and cost.get("stacks"):
        lines += [
            "## What metrics and tracing cost",
            "",
            f"Each stack against itself with nothing on, interleaved: p50 from the sequential "
            f"protocol ({cost['samples']} samples × {cost['calls']} calls, paired by sample), "
            f"req/s and p99 at {cost['connections']} connections from {cost['rounds']} rounds "
            f"of {cost['slice_s']:g} s wrk slices, alternating. 95 % CIs from resampling whole "
            "samples / rounds; a goal counts as met only when the CI's worse end is within it.",
            "",
            observability.markdown(cost),
            "",
            *[f"- {v}" for v in observability.verdicts(observability.summarize(cost))],
            "",
        ]
    start = results.get("startup")
    if start and start.get("stacks"):
        lines += [
            "## Start to first correct answer",
            "",
            "Exec to the first `POST /inference` equal to LightGBM's answer, fresh starts, "
            "compiled model present.",
            "",
            startup.markdown(start),
            "",
        ]
    return lines
