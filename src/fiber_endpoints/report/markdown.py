"""The Markdown report: tables from :mod:`analysis`, plots from :mod:`plots`, from raw results."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from fiber_endpoints.bench import ceiling, reliability
from fiber_endpoints.bench import summary as seq_summary
from fiber_endpoints.report import analysis, plots


def _n(v: float | None, fmt: str = ",.0f", unit: str = "") -> str:
    return "—" if v is None else f"{v:{fmt}}{unit}"


def _us(v: float | None) -> str:
    """Microseconds shown in ms with 3 significant-ish decimals."""
    return "—" if v is None else f"{v / 1000.0:,.3g}"


def _ratio(r: dict[str, Any] | None) -> str:
    if not r:
        return "—"
    if "low" in r:
        return f"{r['ratio']:.2f} [{r['low']:.2f}, {r['high']:.2f}]"
    if "min" in r:
        return f"{r['ratio']:.2f} (rounds {r['min']:.2f}-{r['max']:.2f})"
    return f"{r['ratio']:.2f} (n={r['n']})"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


def _flags(step: analysis.StepSummary, ceiling: float | None, open_loop: bool) -> str:
    flags = []
    if not open_loop and step.stalled:
        flags.append(f"STALL: max {_us(step.latency['max'])} ms ≫ p99 (closed loop hides it)")
    if ceiling and step.rps and step.rps >= analysis.NEAR_CEILING * ceiling:
        flags.append("near generator ceiling")
    if step.client_cpu_util is not None and step.client_cpu_util > 0.9:
        flags.append("generator CPU-bound")
    lag = step.extra.get("max_send_lag_us")
    if open_loop and lag is not None and lag > 10_000:
        flags.append(f"sent up to {lag / 1000:.0f} ms behind schedule (charged to latency)")
    unsent = step.extra.get("unsent")
    if open_loop and unsent is not None and unsent >= 1:
        flags.append(
            f"{unsent:,.0f} requests never sent (every vegeta worker waiting on the server, "
            "or vegeta CPU-bound)"
        )
    if step.failed:
        flags.append(
            f"**ERRORS**: {step.errors} socket errors, {step.non2xx} non-2xx (req/s count 2xx only)"
        )
    return "; ".join(flags)


def _name(name: str, peers: Collection[str] = ()) -> str:
    """A stack's name in a table; a peer is marked as one."""
    return f"`{name}`" + (" (peer)" if name in peers else "")


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
                _name(s.name, peers) + (" **ERRORS**" if s.failed_steps else ""),
                str(s.rounds),
                _n(s.peak_rps),
                _us(s.p99_at_peak_us),
                _n(s.slo_rate),
                _ratio(s.ratios.get("slo_rate")),
                _ratio(s.ratios.get("peak_rps")),
                _n(s.cpu_ms_per_req * 1000 if s.cpu_ms_per_req else None, ",.0f"),
                _ratio(s.ratios.get("cpu_per_req")),
                _n(s.peak_rss_mib),
            ]
        )
    lines = _table(
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
        "rate tried, so its resolution is the spacing of the rate plan. **ERRORS**: some steps "
        "had failed requests; their req/s count 2xx answers only.",
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
        f"**{_n(closed_ceiling)} req/s** closed loop, **{_n(open_ceiling)} req/s** open loop. "
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
        [_name(s.name, peers), _ratio(s.ratios.get("p50_latency"))]
        for s in summary
        if s.ratios.get("p50_latency")
    ]
    if lat_rows:
        lines += _table(
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
                    _name(name, peers),
                    f"{st.key:g}",
                    _n(st.rps),
                    _us(lat.get("p50")),
                    _us(lat.get("p90")),
                    _us(lat.get("p99")),
                    _us(lat.get("p99.9")),
                    _us(lat.get("max")),
                    f"{st.errors}/{st.non2xx}",
                    _n(st.cpu_ms_per_req * 1000 if st.cpu_ms_per_req else None),
                    _n(st.peak_rss_mib),
                    _flags(st, closed_ceiling, False),
                ]
            )
    lines += _table(
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
    lines += ["### Open loop, constant rate (vegeta; latency from intended send time)", ""]
    rows = []
    for name, runs in by.items():
        for st in analysis.open_steps(runs):
            lat = st.latency
            ok = slo_ms is not None and st.within_slo(slo_ms)
            rows.append(
                [
                    _name(name, peers),
                    _n(st.key),
                    _n(st.rps),
                    _us(lat.get("p50")),
                    _us(lat.get("p99")),
                    _us(lat.get("p99.9")),
                    _us(lat.get("max")),
                    _us(st.extra["service_latency"].get("p99")),
                    f"{st.errors}/{st.non2xx}",
                    _n(st.cpu_ms_per_req * 1000 if st.cpu_ms_per_req else None),
                    _slo_cell(ok, st),
                    _flags(st, open_ceiling, True),
                ]
            )
    lines += _table(
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
                    _name(name, peers),
                    f"{st.key:g}",
                    _n(st.rps, ",.1f"),
                    _n(st.extra["rows_per_s"]),
                    _us(lat.get("p50")),
                    _us(lat.get("p99")),
                    f"{st.errors}/{st.non2xx}",
                    _n(st.cpu_ms_per_req * 1000 if st.cpu_ms_per_req else None),
                ]
            )
    if rows:
        lines += [
            f"### Batch sweep (`/inference/batch`, {cfg.get('batch_connections')} connections)",
            "",
        ]
        lines += _table(
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


def sequential_section(
    seq: dict[str, Any],
    plot_dir: Path,
    rel: str,
    title: str,
    peers: Collection[str] = (),
    prefix: str = "",
) -> list[str]:
    rows_data = seq_summary.sequential_rows(seq)
    if not rows_data:
        return []
    awake = (
        " CPUs kept awake by SCHED_IDLE spinners (`--keep-awake`)." if seq.get("keep_awake") else ""
    )
    lines = [
        f"## {title}",
        "",
        f"{seq.get('samples')} samples × {seq.get('calls')} calls, one at a time, "
        f"client: {seq.get('client')}.{awake} The loopback floor is a trivial C server on the "
        "same CPUs: what the machine and the client cost with no server work (a diagnostic).",
        "",
    ]
    rows = []
    for r in rows_data:
        rows.append(
            [
                _name(r.stack, peers),
                _n(r.mean_s, ".4f"),
                _n(r.median_s, ".4f"),
                _n(r.p50_us, ",.0f"),
                _n(r.p90_us, ",.0f"),
                _n(r.p99_us, ",.0f"),
                _n(r.p999_us, ",.0f"),
                _n(r.inference_p50_ms, ".3f"),
                _n(r.app_p50_ms, ".3f"),
                seq_summary.diff_label(r),
                _ratio(r.ratio),
            ]
        )
    lines += _table(
        [
            "stack",
            f"mean s per {seq.get('calls')} calls",
            f"median s per {seq.get('calls')} calls",
            "p50 µs",
            "p90 µs",
            "p99 µs",
            "p99.9 µs",
            "inference ms",
            "app ms",
            "mean diff. vs control",
            "p50 × control [95% CI, resampling whole samples]",
        ],
        rows,
    )
    if (plot_dir / f"{prefix}sequential.png").exists() and not seq.get("keep_awake"):
        lines += [f"![Sequential]({rel}/{prefix}sequential.png)", ""]
    return lines


def _slo_cell(ok: bool, st: analysis.StepSummary) -> str:
    met = st.extra.get("rounds_within_slo")
    rounds = f" ({met}/{st.rounds} rounds)" if met is not None else ""
    return ("yes" if ok else "**no**") + rounds


def _parity_label(stack: dict[str, Any]) -> str:
    if stack.get("not_eligible"):
        return f"not eligible ({stack['not_eligible']})"
    return "ok" if stack.get("parity", {}).get("ok") else "FAILED"


def write(results: dict[str, Any], out_md: Path) -> list[Path]:
    """Write ``out_md`` and its plots (in ``<out_md dir>/plots``); return every file written."""
    plot_dir = out_md.parent / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    load = results.get("load") or {}
    seq = results.get("sequential") or {}
    for name, fig in plots.figures(results).items():
        written.append(plots.save(fig, plot_dir / name))
    machine = results.get("machine", {})
    lines = [
        "# Fiber Endpoints: benchmark report",
        "",
        f"- Run: {results.get('created', '?')}; command: `{' '.join(results.get('command', []))}`",
        f"- Machine: {machine.get('cpu_model', machine.get('cpu', '?'))}, "
        f"{machine.get('logical_cpus', '?')} logical CPUs",
        f"- Placement: {results.get('placement', load.get('placement', {}))}",
        "",
    ]
    verdict = results.get("verdict", {})
    if verdict.get("problems"):
        lines += ["**This run failed:**", "", *[f"- {p}" for p in verdict["problems"]], ""]
    wl = results.get("workload", {})
    if wl:
        lines += [
            f"Workload: {wl.get('source')}; {wl.get('num_features')} features, "
            f"{wl.get('timed_rows')} rows timed, {wl.get('parity_rows')} checked.",
            "",
        ]
    parity = {n: _parity_label(s) for n, s in results.get("stacks", {}).items()}
    if parity:
        lines += [
            "Parity with LightGBM checked before timing: "
            + ", ".join(f"`{n}` {label}" for n, label in parity.items()),
            "",
        ]
    lines += sequential_section(
        seq, plot_dir, "plots", "Sequential protocol (the proof of concept's)"
    )
    awake = results.get("sequential_keep_awake")
    if awake:
        lines += sequential_section(awake, plot_dir, "plots", "Sequential, CPUs kept awake")
    lines += observability_sections(results)
    if load:
        lines += load_sections(load, plot_dir, "plots")
    if results.get("v2_comparison"):
        lines += v2_sections(results, plot_dir, "plots")
    rel = reliability.read(out_md.parent)  # bench/reliability.py, beside results.json
    if rel is not None:
        lines += reliability_section(rel)
    out_md.write_text("\n".join(lines).rstrip() + "\n")
    return [out_md, *written]


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


def _opt(v: Any, fmt: str = "{}") -> str:
    return "–" if v is None else fmt.format(v)


def reliability_section(doc: reliability.ReliabilityDoc) -> list[str]:
    """The reliability table per stack (issue 13), then every hostile case; "–" = not run."""
    m = doc["machine"]
    lines = [
        "## Reliability under abuse and faults",
        "",
        f"Measured {m.get('when', '?')} on {m.get('cpus', '?')} CPUs, load average "
        f"{m.get('load_average', '?')} at the end (a shared VM: read latencies with it). Goals: "
        "0 fuzz failures, every hostile case held with the bystander's p99 ≤ 5x alone, "
        "recovery from 2x overload ≤ 5 s, 0 requests lost across SIGTERM, soak 0 errors and "
        "RSS drift < 5 %.",
        "",
    ]
    rows = []
    for name, part in doc["stacks"].items():
        cases = part.get("hostile", [])
        held = sum(c["held"] for c in cases)
        ratios = [c["bystander_p99_ms"] / c["alone_p99_ms"] for c in cases if c["alone_p99_ms"]]
        ov = part.get("overload")
        sd = part.get("shutdown")
        so = part.get("soak")
        rows.append(
            [
                f"`{name}`",
                _opt(part.get("fuzz_requests"), "{:,}"),
                _opt(part.get("fuzz_failures")),
                f"{held}/{len(cases)}" if cases else "–",
                f"{max(ratios):.1f}x" if ratios else "–",
                f"{ov['peak_rps']:,.0f} → {ov['rate']:,.0f}/s" if ov else "–",
                _opt(ov and ov["shed_503"], "{:,}"),
                ("not in 15 s" if ov["recovery_s"] is None else f"{ov['recovery_s']:.1f} s")
                if ov
                else "–",
                f"{ov['rss_before_mib']:.0f} → {ov['rss_max_mib']:.0f}" if ov else "–",
                f"{sd['failed']}/{sd['before']}, exit {sd['exit']}" if sd else "–",
                f"{so['errors']} in {so['requests']:,} ({so.get('unsent', 0):,} unsent)"
                if so
                else "–",
                f"{so['rss_drift_pct']:+.2f} %" if so else "–",
            ]
        )
    lines += _table(
        [
            "stack",
            "fuzz requests",
            "fuzz failures",
            "hostile held",
            "worst bystander p99 ÷ alone",
            "overload (0.25 CPU): peak → 2x",
            "503 shed",
            "recovery",
            "RSS MiB before → max",
            "SIGTERM lost / sent before",
            "soak errors",
            "soak RSS drift",
        ],
        rows,
    )
    case_rows = []
    for name, part in doc["stacks"].items():
        for c in part.get("hostile", []):
            ratio = c["bystander_p99_ms"] / c["alone_p99_ms"] if c["alone_p99_ms"] else 0.0
            case_rows.append(
                [
                    f"`{name}`",
                    c["case"],
                    "held" if c["held"] else "**not held**",
                    c["detail"],
                    f"{c['bystander_p99_ms']:.2f} ({ratio:.1f}x)",
                    f"{c['bystander_requests']:,} / {c['bystander_errors']}",
                    f"{c['attack_cpu_s']:.2f}",
                ]
            )
    if case_rows:
        lines += [
            "",
            "Hostile cases (`bench/hostile.py`; the attack's own CPU is the generator thread's):",
            "",
        ]
        lines += _table(
            [
                "stack",
                "case",
                "",
                "what happened",
                "bystander p99 ms (× alone)",
                "bystander requests / errors",
                "attack CPU s",
            ],
            case_rows,
        )
    return [*lines, ""]


FAST = ("asgi-msgspec", "fiber")  # the fast stacks the goals are stated for (issue 11)
GOALS = (  # (peer, what, times): a fast stack's closed-loop peak over the peer's
    ("mlserver-tuned", "closed-loop peak req/s", 10.0),
    ("kserve", "closed-loop peak req/s", 5.0),
    ("bentoml", "closed-loop peak req/s", 5.0),
)


def _peer_names(cmp: dict[str, Any]) -> list[str]:
    return [n for n, s in cmp.get("stacks", {}).items() if s.get("peer")]


def _seq_p50(seq: dict[str, Any] | None) -> dict[str, float]:
    if not seq:
        return {}
    return {r.stack: r.p50_us for r in seq_summary.sequential_rows(seq) if r.p50_us is not None}


def comparison_tables(doc: dict[str, Any]) -> list[str]:
    """The V2 comparison as ``bench`` prints it: who was compared and how, the contract's p50
    next to V2's for our stacks, the peers beside our stacks, and the goals' ratios."""
    cmp = doc.get("v2_comparison") or {}
    peers = _peer_names(cmp)
    fair = cmp.get("fairness", {})
    rows = []
    for name, rec in cmp.get("stacks", {}).items():
        peer = rec.get("peer") or {}
        parity = _parity_label(rec)
        if not rec.get("parity", {}).get("ok") and rec.get("parity", {}).get("errors"):
            parity += ": " + rec["parity"]["errors"][0][:120].replace("|", "/")
        rows.append(
            [
                _name(name, peers),
                peer.get("description", "ours"),
                rec.get("protocol", peer.get("protocol", "v2")),
                parity,
                fair.get("on", {}).get(name, peer.get("on", "?")),
            ]
        )
    lines = [
        f"Every server on CPUs {fair.get('server_cpus')} with {fair.get('predictor_threads')} "
        f"predictor thread(s); {fair.get('placement', '')}.",
        "",
        *_table(["stack", "what", "protocol", "parity with LightGBM", "also on"], rows),
    ]
    contract, over_v2 = _seq_p50(doc.get("sequential")), _seq_p50(cmp.get("sequential"))
    both = [n for n in over_v2 if n in contract]
    if both:
        lines += _table(
            ["stack", "contract p50 µs", "V2 p50 µs", "V2 − contract µs"],
            [[f"`{n}`", _n(contract[n]), _n(over_v2[n]), _n(over_v2[n] - contract[n], "+,.0f")]
             for n in both],
        )  # fmt: skip
        lines += [
            "Single-row sequential p50 over the contract (the run's own sequential phase) and "
            "over V2 (the comparison's), same client, same placement, same run; the two phases "
            "ran minutes apart, so part of the difference is the machine's drift.",
            "",
        ]
    if cmp.get("sequential"):
        lines += _seq_lines(cmp["sequential"], peers)
    if cmp.get("load"):
        lines += throughput_table(dict(cmp["load"]), peers=peers)
    lines += goal_lines(cmp)
    if cmp.get("problems"):
        lines += ["Problems in the comparison:", "", *[f"- {p}" for p in cmp["problems"]], ""]
    return lines


def _seq_lines(seq: dict[str, Any], peers: Collection[str]) -> list[str]:
    rows = [
        [_name(r.stack, peers), _n(r.p50_us), _n(r.p90_us), _n(r.p99_us), _ratio(r.ratio)]
        for r in seq_summary.sequential_rows(seq)
    ]
    return _table(["stack", "p50 µs", "p90 µs", "p99 µs", "p50 × control [95% CI]"], rows)


def goal_lines(cmp: dict[str, Any]) -> list[str]:
    """Issue 11's goals, as measured: each fast stack's closed-loop peak over each peer's, and
    its sequential p50 against MLServer's (goal: at most 1/5)."""
    load = cmp.get("load")
    peak = {s.name: s.peak_rps for s in analysis.summarise(dict(load))} if load else {}
    p50 = _seq_p50(cmp.get("sequential"))
    rows = []
    for fast in FAST:
        for peer, what, times in GOALS:
            a, b = peak.get(fast), peak.get(peer)
            if a and b:
                ratio = a / b
                met = "met" if ratio >= times else "**missed**"
                rows.append(
                    [f"`{fast}`", f"{what} × `{peer}`", f"≥ {times:g}", f"{ratio:.1f}", met]
                )
        for peer in ("mlserver", "mlserver-tuned"):
            a, b = p50.get(fast), p50.get(peer)
            if a and b:
                met = "met" if a <= b / 5 else "**missed**"
                rows.append([f"`{fast}`", f"sequential p50 ÷ `{peer}`'s", "≤ 0.2", f"{a / b:.3f}",
                             met])  # fmt: skip
    if not rows:
        return []
    return [
        "Goals (issue 11), from this run's medians:",
        "",
        *_table(["stack", "measure", "goal", "measured", ""], rows),
    ]


def v2_sections(results: dict[str, Any], plot_dir: Path, rel: str) -> list[str]:
    """The report's part for the V2 comparison: the tables above, then the same sequential and
    load sections as the run's own, peers marked, with their own plots (``v2_*.png``)."""
    cmp = results["v2_comparison"]
    peers = _peer_names(cmp)
    lines = ["## Over V2: our stacks and the peers", "", *comparison_tables(results)]
    if cmp.get("sequential"):
        lines += sequential_section(
            dict(cmp["sequential"]), plot_dir, rel, "Over V2: sequential protocol", peers, "v2_"
        )
    if cmp.get("load"):
        lines += load_sections(
            dict(cmp["load"]), plot_dir, rel, "Over V2: under load", peers, "v2_"
        )
    return lines
