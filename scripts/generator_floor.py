"""The open-loop generators' own tail: oha and vegeta against the trivial C server at given rates.

The server answers at once, so what is measured is the generator (and the machine): a stack's
open-loop p99 near these figures is the generator's, not the stack's. Placed as ``bench`` places
a stack (server on the server CPUs, generator on the client CPUs), the seed's rows, each step a
warm-up then the measured part. docs/methodology.md ("Why oha, not vegeta") quotes a run.

    .venv/bin/python scripts/generator_floor.py --rates 5000,9000,15000,20000,24500,30000
"""

from __future__ import annotations

import argparse
import sys

from fiber_endpoints import contract, model
from fiber_endpoints.bench import oha, placement, servers, vegeta, workload


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="5000,9000,15000,20000,24500,30000")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    args = parser.parse_args()
    plan = placement.plan(pin=True)
    bodies = workload.load(model.DEFAULT_MODEL).single_bodies()
    print("generator | offered req/s | answered req/s | p50 ms | p99 ms | max ms | "
          "sent behind schedule, max ms | unsent", flush=True)  # fmt: skip
    with servers.floor_server(plan.server_cpus) as floor:
        for rate in (float(r) for r in args.rates.split(",")):
            for name, generator in (("oha", oha), ("vegeta", vegeta)):
                step = generator.run(
                    floor.url, contract.INFERENCE_PATH, bodies, rate=rate,
                    duration_s=args.duration, warmup_s=args.warmup, cpus=plan.client_cpus,
                ).to_json()  # fmt: skip
                lat = step["latency_us"]
                print(
                    f"{name} | {rate:,.0f} | {step['achieved_rps']:,.0f} | "
                    f"{lat['p50'] / 1e3:.2f} | {lat['p99'] / 1e3:.2f} | {lat['max'] / 1e3:.2f} | "
                    f"{step['max_send_lag_us'] / 1e3:.1f} | {step['unsent']}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
