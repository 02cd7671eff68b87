"""BentoML 1.4: a service written as BentoML's docs show for a LightGBM model
(``peers/bentoml/service.py``), over BentoML's own JSON API, which ``bench`` speaks through the
``bentoml`` wire protocol (``bench/protocols.py``). Not V2: BentoML has no V2 endpoint.

Laid out in a folder of its own: ``BENTOML_HOME`` there, the model saved into that store with
``bentoml.lightgbm.save_model`` (a short child process in the peer's virtualenv), then
``bentoml serve service:LightGBMService``. Defaults kept: one worker, one thread per API, Prometheus
metrics on (``/metrics``), tracing off.
"""

from __future__ import annotations

import shutil
import subprocess

from fiber_endpoints.peers import Launch, Layout, Peer, folder


def _prepare(at: Layout) -> Launch:
    shutil.copyfile(folder(PEER) / "service.py", at.workdir / "service.py")
    env = {"BENTOML_HOME": str(at.workdir / "bentoml-home"), "BENTOML_DO_NOT_TRACK": "True"}
    subprocess.run(
        [str(at.python), "-c", f"import service; service.save({str(at.model)!r})"],
        cwd=at.workdir,
        env={**_base_env(), **env},
        check=True,
        capture_output=True,
        timeout=120,
    )
    bentoml = at.python.parent / "bentoml"
    cmd = [str(bentoml), "serve", "service:LightGBMService", "--host", at.host,
           "--port", str(at.port)]  # fmt: skip
    return Launch(cmd, env=env, cwd=at.workdir)


def _base_env() -> dict[str, str]:
    import os

    return dict(os.environ)


PEER = Peer(
    "bentoml",
    "bentoml",
    "BentoML 1.4 service (its docs' LightGBM way), own JSON API",
    "bentoml",
    "/readyz",
    "Prometheus metrics on (its default, /metrics), tracing off",
    _prepare,
)
