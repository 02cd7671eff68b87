"""The ``fiber-endpoints`` command: flags only; the work is done by the library modules."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from fiber_endpoints import model, stacks, v2


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


def _compare(args: argparse.Namespace) -> int:
    from fiber_endpoints.bench import results, schema
    from fiber_endpoints.report import compare

    try:
        a, b = results.load(args.run_a), results.load(args.run_b)
    except schema.SchemaError as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 2
    changes = compare.compare(a, b)
    lost = compare.lost(a, b)
    if not changes and not lost:
        print("compare: the two runs share no stack and headline number", file=sys.stderr)
        return 2
    threshold = args.max_regression / 100.0
    print(compare.markdown(changes, threshold))
    regressions = [
        f"{c.stack} {compare.METRICS[c.metric][0]} {c.relative:+.1%}"
        for c in changes
        if c.regressed(threshold)
    ]
    for line in regressions + lost:
        print(f"REGRESSION: {line}", file=sys.stderr)
    return 1 if regressions or lost else 0


def _add_train(sub: Any) -> None:
    """``train``: the proof of concept's model and its golden file."""
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


def _add_serve(sub: Any) -> None:
    """``serve``: one stack in the foreground."""
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
        type=stacks.model_name_arg,
        default=os.environ.get(v2.MODEL_NAME_ENV, v2.DEFAULT_MODEL_NAME),
        help=f"the model's name in the V2 routes, /v2/models/NAME (env {v2.MODEL_NAME_ENV})",
    )
    p.set_defaults(func=_serve)


def _compile(args: argparse.Namespace) -> int:
    import time

    from fiber_endpoints.stacks import lleaves_predictor

    started = time.perf_counter()
    errors = lleaves_predictor.compile_and_check(args.model)
    took = time.perf_counter() - started
    if errors:
        print(f"compile: lleaves disagrees with LightGBM ({errors[0]}): not certified; "
              "asgi-msgspec will serve this model with the C API", file=sys.stderr)  # fmt: skip
        return 1
    cert = lleaves_predictor.certificate_path(args.model)
    print(f"compiled and checked in {took:.1f} s: {lleaves_predictor.cache_path(args.model)}")
    print(f"certificate (the model's SHA-256, parity with LightGBM): {cert}")
    if args.ship is not None:
        try:
            so = lleaves_predictor.ship(args.model, args.ship)
        except ValueError as exc:
            print(f"compile: {exc}", file=sys.stderr)
            return 1
        print(f"shipped: {so} (serve with {lleaves_predictor.SHIPPED_ENV}={args.ship})")
    return 0


def _add_compile(sub: Any) -> None:
    """``compile``: the fast stack's compiled model, once, before any start."""
    p = sub.add_parser(
        "compile",
        help="compile the model with lleaves for a portable CPU target, check parity with "
        "LightGBM, and cache both (keyed by the model file's SHA-256)",
    )
    p.add_argument("--model", type=Path, default=model.default_model(),
                   help=f"LightGBM text model (env {model.MODEL_ENV})")  # fmt: skip
    p.add_argument("--ship", type=Path, metavar="DIR",
                   help="also copy the linked, certified artefact into DIR, named by the model's "
                   "SHA-256, for an image to carry (asgi-msgspec finds it there through "
                   "FIBER_ENDPOINTS_COMPILED=DIR, without lleaves or llvmlite)")  # fmt: skip
    p.set_defaults(func=_compile)


def _add_compare(sub: Any) -> None:
    """``compare`` (also ``bench compare``)."""
    p = sub.add_parser(
        "compare",
        help="two results side by side (also `bench compare A B`); exit 1 past a regression",
    )
    p.add_argument("run_a", type=Path, help="results.json or run folder (the baseline)")
    p.add_argument("run_b", type=Path, help="results.json or run folder (the change)")
    p.add_argument("--max-regression", type=float, default=10.0, metavar="PCT",
                   help="fail when a headline number is worse by more than PCT %% and outside "
                   "both runs' spread (default 10)")  # fmt: skip
    p.set_defaults(func=_compare)


def build_parser(serving: bool = False) -> argparse.ArgumentParser:
    """Every command; with ``serving``, ``serve`` alone: a server imports only what serving
    needs, as its image holds only that (the bench's modules import NumPy, which the fast
    stack's image has not)."""
    parser = argparse.ArgumentParser(prog="fiber-endpoints", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    if serving:
        _add_serve(sub)
        return parser
    from fiber_endpoints import bench_cli
    from fiber_endpoints.report import command as report_command
    from fiber_endpoints.trace import command as trace_command

    for add in (_add_train, _add_serve, _add_compile, bench_cli.add_parser, _add_compare):
        add(sub)
    trace_command.add_parser(sub)
    report_command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["bench", "compare"]:  # `bench compare A B` is `compare A B`
        argv = argv[1:]
    args = build_parser(serving=argv[:1] == ["serve"]).parse_args(argv)
    return int(args.func(args))
