"""The ``fiber-endpoints`` command: flags only; the work is done by the library modules."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fiber_endpoints import model, stacks, v2
from fiber_endpoints.bench.load import add_arguments as load_arguments
from fiber_endpoints.report import command as report_command
from fiber_endpoints.trace import command as trace_command


def _train(args: argparse.Namespace) -> int:
    golden = model.train(
        output=args.output,
        objective=args.objective,
        samples=args.samples,
        trees=args.trees,
        n_features=args.features,
        seed=args.seed,
        threads=args.threads,
    )
    print(
        f"wrote {args.output} and {model.golden_path(args.output)} "
        f"({len(golden.rows)} golden rows, {golden.num_features} features)"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    stack = stacks.get(args.stack)
    opts = stacks.ServeOptions(
        model=args.model.resolve(),
        host=args.host,
        port=args.port or stack.default_port,
        workers=args.workers,
        model_name=args.model_name,
    )
    stack.run(opts)
    return 0


def _model_name(text: str) -> str:
    try:
        return v2.check_model_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parse_targets(values: list[str]) -> dict[str, str]:
    targets = {}
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            raise SystemExit(f"--target wants NAME=URL (http://host:port), got {value!r}")
        targets[name] = url
    return targets


def _bench(args: argparse.Namespace) -> int:
    from fiber_endpoints.bench import results, runner

    targets = _parse_targets(args.target)
    # Default: every registered stack; with --target only, just the given endpoints.
    names = args.stacks.split(",") if args.stacks else (list(targets) or list(stacks.STACKS))
    for name in names:
        if name not in targets:
            stacks.get(name)
    config = runner.BenchConfig(
        stacks=names,
        model_path=args.model.resolve(),
        targets=targets,
        samples=args.samples,
        calls=args.calls,
        client=args.client,
        out_base=args.out or results.RESULTS_DIR,
        warmup_calls=args.warmup,
        pin=not args.no_pin,
    )
    if args.tracing_cost:
        from fiber_endpoints.trace import cost

        config.phases.append(runner.Phase("tracing_cost", cost.phase))
    if args.load:
        from fiber_endpoints.bench import load

        # The load lab starts a fresh server per stack and round.
        config.phases.append(runner.Phase("load", load.phase(args), needs_servers=False))
    path, doc = runner.run(config)
    runner.print_summary(doc)
    if "tracing_cost" in doc:
        from fiber_endpoints.trace import cost

        print("\ntracing cost (same stack, tracing off vs on, interleaved):")
        print(cost.markdown(doc["tracing_cost"]))
    failed = [n for n, s in doc["stacks"].items() if not s["parity"]["ok"]]
    print(f"\nraw results: {path}")
    if "load" in doc:
        from fiber_endpoints.bench import load

        print(load.summary_markdown(doc["load"]))
    print(f"report: {report_command.report(path)[0]}")
    if failed:
        print(f"parity FAILED for {', '.join(failed)}: not timed")
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fiber-endpoints", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train the proof of concept's model; write model + golden")
    p.add_argument("--output", type=Path, default=model.DEFAULT_MODEL)
    p.add_argument(
        "--objective", choices=["regression", "binary", "multiclass"], default="regression"
    )
    p.add_argument("--samples", type=int, default=model.SEED_TRAIN_SAMPLES)
    p.add_argument("--trees", type=int, default=model.SEED_TREES)
    p.add_argument("--features", type=int, default=model.SEED_FEATURES)
    p.add_argument("--seed", type=int, default=model.SEED_RANDOM_STATE)
    p.add_argument("--threads", type=int, default=0, help="LightGBM threads (0 = all cores)")
    p.set_defaults(func=_train)

    p = sub.add_parser("serve", help="run one stack in the foreground until SIGTERM/SIGINT")
    p.add_argument("stack", choices=sorted(stacks.STACKS))
    p.add_argument(
        "--model",
        type=Path,
        default=model.default_model(),
        help=f"LightGBM text model (env {model.MODEL_ENV})",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = the stack's default port")
    p.add_argument("--workers", type=int, default=1, help="worker processes (Python stacks)")
    p.add_argument(
        "--model-name",
        type=_model_name,
        default=os.environ.get(v2.MODEL_NAME_ENV, v2.DEFAULT_MODEL_NAME),
        help=f"the model's name in the V2 routes, /v2/models/NAME (env {v2.MODEL_NAME_ENV})",
    )
    p.set_defaults(func=_serve)

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
    p.add_argument("--out", type=Path, default=None, help="results folder (default: results/)")
    p.add_argument(
        "--tracing-cost",
        action="store_true",
        help="also time each stack with tracing on (a real Jaeger) against tracing off",
    )
    load_arguments(p)
    p.set_defaults(func=_bench)

    trace_command.add_parser(sub)
    report_command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
