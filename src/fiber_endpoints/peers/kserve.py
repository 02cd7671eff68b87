"""A KServe model server on the ``kserve`` SDK (0.21): our re-implementation of KServe's LightGBM
server, lgbserver (not on PyPI), in ``peers/kserve/server.py``; labelled as ours in every table.

Started as lgbserver is: ``--model_dir`` with the model as ``model.bst``, ``--model_name``,
``--nthread`` (1 per server CPU), one HTTP worker. SDK defaults kept: gRPC on (moved to a free
port), Prometheus metrics on (``/metrics`` on the HTTP port), latency logging off, tracing off.
"""

from __future__ import annotations

import shutil

from fiber_endpoints.peers import Launch, Layout, Peer, folder


def _prepare(at: Layout) -> Launch:
    shutil.copyfile(at.model, at.workdir / "model.bst")
    server = folder(PEER) / "server.py"
    cmd = [str(at.python), str(server), "--model_dir", str(at.workdir),
           "--model_name", at.model_name, "--nthread", str(at.threads),
           "--http_port", str(at.port), "--grpc_port", str(at.free_port())]  # fmt: skip
    return Launch(cmd, cwd=at.workdir)


PEER = Peer(
    "kserve",
    "kserve",
    "KServe 0.21 SDK ModelServer: our re-implementation of its LightGBM server (lgbserver)",
    "v2",
    "/v2/health/ready",
    "Prometheus metrics on (SDK default, /metrics), gRPC on, tracing off",
    _prepare,
    ours=True,
)
