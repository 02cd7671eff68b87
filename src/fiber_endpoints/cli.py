"""The ``fiber-endpoints`` command: flags only; the work is done by the library modules."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from fiber_endpoints import model, stacks


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
        model=args.model.resolve(), host=args.host, port=args.port or stack.default_port,
        workers=args.workers,
    )
    stack.run(opts)
    return 0


def default_model() -> Path:
    return Path(os.environ.get("FIBER_ENDPOINTS_MODEL", model.DEFAULT_MODEL))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fiber-endpoints", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train the proof of concept's model; write model + golden")
    p.add_argument("--output", type=Path, default=model.DEFAULT_MODEL)
    p.add_argument("--objective", choices=["regression", "binary", "multiclass"],
                   default="regression")
    p.add_argument("--samples", type=int, default=model.SEED_TRAIN_SAMPLES)
    p.add_argument("--trees", type=int, default=model.SEED_TREES)
    p.add_argument("--features", type=int, default=model.SEED_FEATURES)
    p.add_argument("--seed", type=int, default=model.SEED_RANDOM_STATE)
    p.add_argument("--threads", type=int, default=0, help="LightGBM threads (0 = all cores)")
    p.set_defaults(func=_train)

    p = sub.add_parser("serve", help="run one stack in the foreground until SIGTERM/SIGINT")
    p.add_argument("stack", choices=sorted(stacks.STACKS))
    p.add_argument("--model", type=Path, default=default_model(),
                   help="LightGBM text model (env FIBER_ENDPOINTS_MODEL)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = the stack's default port")
    p.add_argument("--workers", type=int, default=1, help="worker processes (Python stacks)")
    p.set_defaults(func=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
