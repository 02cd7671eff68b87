"""MLServer 1.7.1 + mlserver-lightgbm, two rows: its defaults, and the setting its docs give for
latency.

- ``mlserver``: ``mlserver start`` on a folder with ``settings.json`` (ports only: HTTP, and the
  gRPC and metrics ports moved to free ones so runs do not collide) and ``model-settings.json``
  (``implementation: mlserver_lightgbm.LightGBMModel``, the model's URI), as MLServer's LightGBM
  example lays it out. Defaults kept: one inference worker process behind the HTTP process
  (``parallel_workers: 1``), gRPC on, Prometheus metrics on (``/metrics`` on its metrics port).
- ``mlserver-tuned``: the same plus ``parallel_workers: 0``: inference in the HTTP process,
  without the inter-process hop MLServer's "Parallel Inference" page names as the pool's
  overhead (https://mlserver.readthedocs.io/en/latest/user-guide/parallel-inference.html,
  sections "Overhead" and "Usage": ``parallel_workers`` set to 0 disables the pool).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable

from fiber_endpoints.peers import Launch, Layout, Peer

IMPLEMENTATION = "mlserver_lightgbm.LightGBMModel"


def _prepare(parallel_workers: int | None) -> Callable[[Layout], Launch]:
    def prepare(at: Layout) -> Launch:
        model_dir = at.workdir / at.model_name
        model_dir.mkdir(parents=True)
        shutil.copyfile(at.model, model_dir / "model.bst")
        settings: dict[str, object] = {
            "host": at.host,
            "http_port": at.port,
            "grpc_port": at.free_port(),
            "metrics_port": at.free_port(),
        }
        if parallel_workers is not None:
            settings["parallel_workers"] = parallel_workers
        (at.workdir / "settings.json").write_text(json.dumps(settings, indent=1))
        model_settings = {
            "name": at.model_name,
            "implementation": IMPLEMENTATION,
            "parameters": {"uri": "./model.bst"},
        }
        (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=1))
        mlserver = at.python.parent / "mlserver"
        return Launch([str(mlserver), "start", str(at.workdir)], cwd=at.workdir)

    return prepare


_ON = "Prometheus metrics on (its default, own port), gRPC on, tracing off"

PEERS = [
    Peer(
        "mlserver",
        "mlserver",
        "MLServer 1.7.1 + mlserver-lightgbm, defaults (1 inference worker process)",
        "v2",
        "/v2/health/ready",
        _ON,
        _prepare(None),
    ),
    Peer(
        "mlserver-tuned",
        "mlserver",
        "MLServer 1.7.1 + mlserver-lightgbm, parallel_workers: 0 (its docs' latency setting)",
        "v2",
        "/v2/health/ready",
        _ON,
        _prepare(0),
    ),
]
