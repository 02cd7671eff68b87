"""``fiber-endpoints bench``'s flags, mapped to ``BenchConfig`` (and nothing else: the run is
``bench/runner.py``), and what it prints when the run is done."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fiber_endpoints import model, stacks, v2
from fiber_endpoints.report import command as report_command


def _parse_targets(values: list[str]) -> dict[str, str]:
    targets = {}
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            raise SystemExit(f"--target wants NAME=URL (http://host:port), got {value!r}")
        targets[name] = url
    return targets


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.replace(" ", "").split(",") if x)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.replace(" ", "").split(",") if x)


def _headers(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip():
            raise SystemExit(f"--header wants 'Name: value', got {value!r}")
        out[name.strip()] = text.strip()
    return out


def _peer_names(args: argparse.Namespace, only_targets: bool) -> list[str]:
    """The peers of the V2 comparison: ``--peers``, else all (none with ``--no-peers``, or when
    only ``--target`` endpoints are measured)."""
    from fiber_endpoints import peers

    if args.no_peers:
        return []
    if args.peers is not None:
        names = [n for n in args.peers.split(",") if n]
        for name in names:
            peers.get(name)
        return names
    return [] if only_targets else list(peers.PEERS)


def _compare_over_v2(
    args: argparse.Namespace, names: list[str], targets: dict[str, str], peer_names: list[str]
) -> bool:
    """The V2 comparison runs when it has something to add: peers, or stacks the run starts
    that the run itself times over the contract."""
    ours = [n for n in names if n not in targets]
    return bool(args.v2_comparison and (peer_names or (ours and args.protocol != "v2")))


def _load_config(args: argparse.Namespace) -> Any:
    """The load phase's configuration from its flags (unset flags: short or ``--full``)."""
    from dataclasses import replace

    from fiber_endpoints.bench.load import LoadConfig

    if not args.load:
        return None
    base = LoadConfig.full() if args.full else LoadConfig()
    given = {
        "modes": args.load_modes,
        "connections": args.connections,
        "duration_s": args.duration,
        "open_duration_s": args.duration,
        "warmup_s": args.load_warmup,
        "open_warmup_s": args.load_warmup,
        "rates": args.rate,
        "slo_ms": args.slo_ms,
        "batch_sizes": args.batch_sizes,
        "rounds": args.rounds,
        "ceiling": False if args.no_ceiling else None,
    }
    return replace(base, **{k: v for k, v in given.items() if v is not None})


def _bench(args: argparse.Namespace) -> int:
    from fiber_endpoints.bench import results, runner, schema, summary, workload
    from fiber_endpoints.bench.context import BenchConfig

    targets = _parse_targets(args.target)
    # Default: every registered stack; with --target only, just the given endpoints.
    names = args.stacks.split(",") if args.stacks else (list(targets) or list(stacks.STACKS))
    try:
        for name in names:
            if name not in targets:
                stacks.get(name)
        peer_names = _peer_names(args, only_targets=bool(targets) and not args.stacks)
    except (KeyError, ValueError) as exc:
        print(f"bench: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    try:
        config = BenchConfig(
            stacks=names,
            model_path=args.model.resolve(),
            rows_file=args.rows.resolve() if args.rows else None,
            targets=targets,
            protocol=args.protocol,
            model_name=args.model_name,
            headers=_headers(args.header),
            peers=peer_names,
            v2_comparison=_compare_over_v2(args, names, targets, peer_names),
            samples=args.samples,
            calls=args.calls,
            client=args.client,
            warmup_calls=args.warmup,
            pin=not args.no_pin,
            client_cpus=args.client_cpus,
            server_cpus=args.server_cpus,
            floor=not args.no_floor,
            keep_awake=args.keep_awake,
            tracing_cost=args.tracing_cost,
            observability_cost=args.observability_cost,
            observability_rounds=args.observability_rounds,
            observability_slice_s=args.observability_slice,
            # With the load lab (a full benchmark) unless --no-startup; --startup forces it.
            startup=(args.startup or args.load) and not args.no_startup,
            load=_load_config(args),
            soak_minutes=args.soak,
            out_base=args.out or results.RESULTS_DIR,
        )
        path, doc = runner.run(config)
    except (workload.WorkloadError, ValueError, FileNotFoundError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    for key in ("sequential", "sequential_keep_awake"):
        if key in doc:
            print(summary.sequential_markdown(doc[key], doc["placement"]))
    if "tracing_cost" in doc:
        from fiber_endpoints.trace import cost

        print("\ntracing cost (same stack, tracing off vs on, interleaved):")
        print(cost.markdown(doc["tracing_cost"]))
    if "observability_cost" in doc:
        from fiber_endpoints.bench import observability

        print("\nobservability cost (same stack, interleaved A/B against nothing on):")
        print(observability.markdown(doc["observability_cost"]))
        print("\n".join(observability.verdicts(observability.summarize(doc["observability_cost"]))))
    if "startup" in doc:
        from fiber_endpoints.bench import startup

        print("\nstart to first correct answer:")
        print(startup.markdown(doc["startup"]))
    if "load" in doc:
        from fiber_endpoints.report import load_tables

        print("\nunder load:\n")
        print("\n".join(load_tables.throughput_table(dict(doc["load"]))))
    if "v2_comparison" in doc:
        from fiber_endpoints.report import comparison

        print("\nover V2, our stacks and the peers (same phases, same placement):\n")
        print("\n".join(comparison.comparison_tables(dict(doc))))
    print(f"\nraw results: {path}")
    print(f"report: {report_command.report(path)[0]}")
    verdict: schema.Verdict = doc["verdict"]
    for problem in verdict["problems"]:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 0 if verdict["ok"] else 1


def add_parser(sub: Any) -> None:
    """``bench``: the flags, mapped to ``BenchConfig`` by :func:`_bench`."""
    p = sub.add_parser("bench", help="parity, then the seed protocol (and more) on every stack")
    p.add_argument("--stacks", help=f"comma-separated (default: all: {','.join(stacks.STACKS)})")
    p.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="an endpoint already running (repeatable); parity is checked too",
    )
    p.add_argument("--model", type=Path, default=model.default_model())
    p.add_argument(
        "--protocol",
        choices=["contract", "v2"],
        default="contract",
        help="what every phase speaks: the project's contract, or the Open Inference Protocol V2 "
        "(MLServer, KServe, Triton) on every stack and --target",
    )
    p.add_argument(
        "--model-name",
        type=stacks.model_name_arg,
        default=v2.DEFAULT_MODEL_NAME,
        help="the model's name in V2 URLs (/v2/models/NAME/infer) for --target endpoints",
    )
    p.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'Name: value'",
        help="extra header on every request to the endpoints (repeatable): Host, Authorization",
    )
    p.add_argument(
        "--peers",
        default=None,
        metavar="mlserver,kserve,...",
        help="peers measured beside our stacks over V2 (default: all; see docs/peers.md)",
    )
    p.add_argument("--no-peers", action="store_true", help="no peers in the V2 comparison (faster)")
    p.add_argument(
        "--v2-comparison",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run our stacks and the peers over V2 through the same phases, stored beside "
        "the run's own results (default: yes)",
    )
    p.add_argument(
        "--rows",
        type=Path,
        default=None,
        help="CSV/Parquet rows with a header (columns = the model's feature names) sent by every "
        "phase (default: the model's golden file, else rows generated from the model)",
    )
    p.add_argument("--samples", type=int, default=50, help="samples per stack (seed: 50)")
    p.add_argument("--calls", type=int, default=100, help="sequential calls per sample (seed: 100)")
    p.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="raw: pre-encoded keep-alive socket (small, measured cost); "
        "httpx: the proof of concept's client",
    )
    p.add_argument("--warmup", type=int, default=200, help="untimed calls per stack first")
    p.add_argument("--no-pin", action="store_true", help="do not place client/servers on CPUs")
    p.add_argument(
        "--client-cpus",
        type=_ints,
        default=None,
        metavar="0",
        help="CPUs of the client and load generators (default: the first)",
    )
    p.add_argument(
        "--server-cpus",
        type=_ints,
        default=None,
        metavar="1",
        help="CPUs of every server (default: the others)",
    )
    p.add_argument(
        "--no-floor",
        action="store_true",
        help="no loopback-floor row (trivial C server) in the sequential table",
    )
    p.add_argument(
        "--keep-awake",
        action="store_true",
        help="also time the sequential protocol with SCHED_IDLE spinners keeping the "
        "CPUs out of idle (shown beside the default, never instead)",
    )
    p.add_argument("--out", type=Path, default=None, help="results folder (default: results/)")
    p.add_argument(
        "--tracing-cost",
        action="store_true",
        help="also time each stack with tracing on (a real Jaeger) against tracing off",
    )
    p.add_argument(
        "--observability-cost",
        action="store_true",
        help="also measure metrics on, tracing at 1 %% and at 100 %% against nothing on "
        "(p50, req/s and p99 at 64 connections, interleaved A/B with 95 %% CIs)",
    )
    p.add_argument("--observability-rounds", type=int, default=6,
                   help="closed-loop slices per instance for --observability-cost")  # fmt: skip
    p.add_argument("--observability-slice", type=float, default=2.0,
                   help="seconds per closed-loop slice for --observability-cost")  # fmt: skip
    p.add_argument(
        "--startup",
        action="store_true",
        help="time each stack's start to its first correct answer (default: with the load phase)",
    )
    p.add_argument(
        "--no-startup",
        action="store_true",
        help="skip timing each stack's start to its first correct answer",
    )
    p.add_argument(
        "--soak",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="hold each stack at half its peak this long: errors, p99 over time, RSS drift",
    )
    _add_load_flags(p)
    p.set_defaults(func=_bench)


def _add_load_flags(p: argparse.ArgumentParser) -> None:
    """The load phase's flags (:func:`_load_config` maps them)."""
    g = p.add_argument_group("load (wrk closed loop, oha open loop, batch sweep)")
    g.add_argument(
        "--load",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the load phase (default: yes)",
    )
    g.add_argument(
        "--full",
        action="store_true",
        help="full sweep: 1..256 connections, 9 rates, longer slices, 5 rounds",
    )
    g.add_argument(
        "--load-modes",
        type=lambda s: tuple(s.split(",")),
        default=None,
        metavar="closed,open,batch",
        help="which load modes to run (default: all)",
    )
    g.add_argument(
        "--connections",
        type=_ints,
        default=None,
        metavar="1,16,64,256",
        help="closed-loop connection counts",
    )
    g.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="seconds measured per slice (closed and open loop)",
    )
    g.add_argument(
        "--load-warmup",
        type=float,
        default=None,
        metavar="S",
        help="seconds of discarded warm-up before each slice",
    )
    g.add_argument(
        "--rate",
        type=_floats,
        default=None,
        metavar="R[,R...]",
        help="open-loop rates in requests/s (default: fractions of the closed peak)",
    )
    g.add_argument(
        "--slo-ms",
        type=float,
        default=None,
        metavar="MS",
        help="p99 bound for throughput at SLO (default 10 ms)",
    )
    g.add_argument(
        "--batch-sizes",
        type=_ints,
        default=None,
        metavar="1,10,100,1000",
        help="rows per batch request (shrunk to fit the 1 MiB body limit)",
    )
    g.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="slices per step and stack, interleaved, order rotated each round",
    )
    g.add_argument(
        "--no-ceiling",
        action="store_true",
        help="skip measuring the generators' ceiling (and the run's drift)",
    )
