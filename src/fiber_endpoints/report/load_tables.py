"""The report's sections under load: the headline throughput table (``bench`` prints it too) and
the closed-loop, open-loop and batch tables, each from ``analysis`` over raw round records."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from fiber_endpoints.bench import ceiling
from fiber_endpoints.report import analysis
from fiber_endpoints.report.cells import (
    fmt_n,
    fmt_ratio,
    fmt_us,
    md_table,
    slo_cell,
    stack_label,
    step_flags,
)


def throughput_table(
    load: dict[str, Any],
    summary: Sequence[analysis.StackSummary] | None = None,
    peers: Collection[str] = (),
) -> list[str]:
    """The headline table under load (``bench`` prints it; the report shows it)."""
    summary = analysis.summarise(load) if summary is None else summary
    slo_ms = load.get("config", {}).get("slo_ms")
    rows = []
    for s in summary:
        rows.append(
            [
                stack_label(s.name, peers) + (" **ERRORS**" if s.failed_steps else ""),
                str(s.rounds),
                fmt_n(s.peak_rps),
                fmt_us(s.p99_at_peak_us),
                fmt_n(s.slo_rate),
                fmt_ratio(s.ratios.get("slo_rate")),
                fmt_ratio(s.ratios.get("peak_rps")),
                fmt_n(s.cpu_ms_per_req * 1000 if s.cpu_ms_per_req else None, ",.0f"),
                fmt_ratio(s.ratios.get("cpu_per_req")),
                fmt_n(s.peak_rss_mib),
            ]
        )
    lines = md_table(
        [
            "stack",
            "rounds",
            "closed-loop peak req/s (2xx)",
            "p99 at peak (ms)",
            f"max rate with p99 ≤ {slo_ms} ms (req/s)",
            "× control (range over rounds)",
            "peak × control",
            "CPU µs/req at peak",
            "CPU × control",
            "peak RSS MiB",
        ],
        rows,
    )
    lines += [
        "Medians over rounds. Ratios are median over median against the control stack "
        f"(`{analysis.CONTROL}`), with the range of the per-round ratios (round r of a stack "
        "against round r of the control: slices run side by side). The rate at SLO is the highest "
        "rate tried, so its resolution is the spacing of the rate plan."
        + (
            " **ERRORS**: some steps of the stacks so marked had failed requests; their req/s "
            "count 2xx answers only."
            if any(s.failed_steps for s in summary)
            else ""
        ),
        "",
    ]
    drift = ceiling.drift(load.get("ceiling"), load.get("ceiling_end"))
    if drift is not None:
        moved = (
            "**the machine drifted**: compare within rounds only"
            if drift > ceiling.MAX_DRIFT
            else "within bounds"
        )
        lines += [
            f"Machine drift: the generators' ceiling moved {drift:.0%} between the start and the "
            f"end of the phase ({moved}; flagged past {ceiling.MAX_DRIFT:.0%}).",
            "",
        ]
    return lines


def load_sections(
    load: dict[str, Any],
    plot_dir: Path,
    rel: str,
    title: str = "Under load",
    peers: Collection[str] = (),
    prefix: str = "",
) -> list[str]:
    lines: list[str] = []
    closed_ceiling, open_ceiling = analysis.ceiling_rps(load)
    gens = load.get("generators", {})
    cfg = load.get("config", {})
    slo_ms = cfg.get("slo_ms")
    lines += [f"## {title}", ""]
    lines += [
        f"- Generators: closed loop and batch **{gens.get('closed', '?')}** (1 thread); open "
        f"loop **{gens.get('open', '?')}** (latency from each request's intended send time).",
        f"- Generator ceiling (against a trivial C server placed like the stacks): "
        f"**{fmt_n(closed_ceiling)} req/s** closed loop, **{fmt_n(open_ceiling)} req/s** open "
        "loop. "
        "A stack near these numbers is measured up to the tool, not its own limit.",
        f"- Placement: client CPUs {load.get('placement', {}).get('client_cpus')}, server CPUs "
        f"{load.get('placement', {}).get('server_cpus')}; stacks one at a time, "
        f"{cfg.get('rounds')} round(s), interleaved in slices, order rotated each round.",
        f"- Steps: closed {cfg.get('duration_s')} s after {cfg.get('warmup_s')} s warm-up; "
        f"open {cfg.get('open_duration_s')} s after {cfg.get('open_warmup_s')} s; "
        f"SLO: p99 ≤ {slo_ms} ms from each request's intended send time, no failed request, "
        "≥ 95 % of the rate delivered and ≤ 1 % left unsent, judged per round; a round where no "
        "rate met it counts as 0 in the median.",
        "",
    ]
    failed = analysis.failed_runs(load)
    if failed:
        lines += ["Runs that did not complete:", ""]
        lines += [f"- round {r['round']} `{r['stack']}`: {r['error']}" for r in failed] + [""]

    summary = analysis.summarise(load)
    lines += ["### Throughput at SLO", "", *throughput_table(load, summary, peers)]
    lat_rows = [
        [stack_label(s.name, peers), fmt_ratio(s.ratios.get("p50_latency"))]
        for s in summary
        if s.ratios.get("p50_latency")
    ]
    if lat_rows:
        lines += md_table(
            [
                "stack",
                "median latency × control, lowest connection count [95% CI resampling requests; "
                "requests in one step are correlated, so it understates the spread over rounds]",
            ],
            lat_rows,
        )

    for name, fname in [
        ("Latency CDF", f"{prefix}latency_cdf.png"),
        ("Throughput vs p99", f"{prefix}throughput_p99.png"),
    ]:
        if (plot_dir / fname).exists():
            lines += [f"![{name}]({rel}/{fname})", ""]

    by = analysis.runs_by_stack(load)

    lines += closed_section(by, closed_ceiling, peers)
    lines += open_section(by, open_ceiling, slo_ms, plot_dir, rel, peers, prefix)
    lines += batch_section(by, cfg, plot_dir, rel, peers, prefix)
    return lines


def closed_section(
    by: dict[str, list[dict[str, Any]]], closed_ceiling: float | None, peers: Collection[str] = ()
) -> list[str]:
    """Every closed-loop step of every stack, merged over rounds."""
    lines: list[str] = []
    lines += ["### Closed loop (wrk)", ""]
    rows = []
    for name, runs in by.items():
        for st in analysis.closed_steps(runs):
            lat = st.latency
            rows.append(
                [
                    stack_label(name, peers),
                    f"{st.key:g}",
                    fmt_n(st.rps),
                    fmt_us(lat.get("p50")),
                    fmt_us(lat.get("p90")),
                    fmt_us(lat.get("p99")),
                    fmt_us(lat.get("p99.9")),
                    fmt_us(lat.get("max")),
                    f"{st.errors}/{st.non2xx}",
                    fmt_n(st.cpu_ms_per_req * 1000 if st.cpu_ms_per_req else None),
                    fmt_n(st.peak_rss_mib),
                    step_flags(st, closed_ceiling, False),
                ]
            )
    lines += md_table(
        [
            "stack",
            "conns",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "errors/non-2xx",
            "CPU µs/req",
            "RSS MiB",
            "flags",
        ],
        rows,
    )

    return lines


def open_section(
    by: dict[str, list[dict[str, Any]]],
    open_ceiling: float | None,
    slo_ms: float | None,
    plot_dir: Path,
    rel: str,
    peers: Collection[str] = (),
    prefix: str = "",
) -> list[str]:
    """Every open-loop step, latency from intended send time, judged by the one SLO rule."""
    lines: list[str] = []
    lines += ["### Open loop, constant rate (latency from intended send time)", ""]
    rows = []
    for name, runs in by.items():
        for st in analysis.open_steps(runs):
            lat = st.latency
            ok = slo_ms is not None and st.within_slo(slo_ms)
            rows.append(
                [
                    stack_label(name, peers),
                    fmt_n(st.key),
                    fmt_n(st.rps),
                    fmt_us(lat.get("p50")),
                    fmt_us(lat.get("p99")),
                    fmt_us(lat.get("p99.9")),
                    fmt_us(lat.get("max")),
                    fmt_us(st.extra["service_latency"].get("p99")),
                    f"{st.errors}/{st.non2xx}",
                    fmt_n(st.cpu_ms_per_req * 1000 if st.cpu_ms_per_req else None),
                    slo_cell(ok, st),
                    step_flags(st, open_ceiling, True),
                ]
            )
    lines += md_table(
        [
            "stack",
            "rate req/s",
            "achieved",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "p99 from actual send (ms)",
            "errors/non-2xx",
            "CPU µs/req",
            "within SLO",
            "flags",
        ],
        rows,
    )
    if (plot_dir / f"{prefix}cpu_per_request.png").exists():
        lines += [f"![CPU per request]({rel}/{prefix}cpu_per_request.png)", ""]

    return lines


def batch_section(
    by: dict[str, list[dict[str, Any]]],
    cfg: dict[str, Any],
    plot_dir: Path,
    rel: str,
    peers: Collection[str] = (),
    prefix: str = "",
) -> list[str]:
    """The batch sweep: requests and rows per second per batch size."""
    lines: list[str] = []
    rows = []
    for name, runs in by.items():
        for st in analysis.batch_steps(runs):
            lat = st.latency
            rows.append(
                [
                    stack_label(name, peers),
                    f"{st.key:g}",
                    fmt_n(st.rps, ",.1f"),
                    fmt_n(st.extra["rows_per_s"]),
                    fmt_us(lat.get("p50")),
                    fmt_us(lat.get("p99")),
                    f"{st.errors}/{st.non2xx}",
                    fmt_n(st.cpu_ms_per_req * 1000 if st.cpu_ms_per_req else None),
                ]
            )
    if rows:
        lines += [
            f"### Batch sweep (`/inference/batch`, {cfg.get('batch_connections')} connections)",
            "",
        ]
        lines += md_table(
            [
                "stack",
                "rows",
                "req/s",
                "rows/s",
                "p50 ms",
                "p99 ms",
                "errors/non-2xx",
                "CPU µs/req",
            ],
            rows,
        )
        if (plot_dir / f"{prefix}batch_scaling.png").exists():
            lines += [f"![Batch scaling]({rel}/{prefix}batch_scaling.png)", ""]
    return lines
