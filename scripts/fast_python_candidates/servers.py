"""The candidate HTTP servers for docs/fast-python.md, each driving the same handler and predictor.

Run one: ``python servers.py {uvicorn,granian,granian-st,blacksheep,socketify} PORT``. Needs
granian, blacksheep and socketify, which are not project dependencies: install them in a scratch
virtualenv together with the project (``pip install -e . granian blacksheep socketify``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import lightgbm  # noqa: F401  (socketify 0.0.31 breaks Booster when imported before lightgbm)

from fiber_endpoints import contract, model
from fiber_endpoints.stacks.lgbm_capi import CapiPredictor
from fiber_endpoints.stacks.msgspec_handler import Handler

MODEL = Path(os.environ.get("CANDIDATE_MODEL", model.DEFAULT_MODEL))
# The C API for every candidate: the comparison is between servers, not predictors.
handler = Handler(CapiPredictor(MODEL, threads=1), "candidate")
routes = {contract.INFERENCE_PATH: handler.single, contract.BATCH_PATH: handler.batch}


class RSGIApp:
    """Granian's RSGI protocol: body with ``await proto()``, answer with ``response_bytes``."""

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        route = routes.get(scope.path)
        if route is None:
            proto.response_bytes(200, [("content-type", "application/json")], handler.health_body)
            return
        reply = route(await proto())
        headers = [("content-type", "application/json")]
        if reply.server_timing:
            headers.append(("server-timing", reply.server_timing.decode()))
        proto.response_bytes(reply.status, headers, reply.body)


rsgi_app = RSGIApp()


def blacksheep_app() -> Any:
    from blacksheep import Application, Content, Response, get, post

    app = Application()

    @post("/inference")
    async def inference(request: Any) -> Any:
        reply = handler.single(await request.read())
        headers = [(b"server-timing", reply.server_timing)] if reply.server_timing else []
        return Response(reply.status, headers, Content(b"application/json", reply.body))

    @get("/health")
    async def health() -> Any:
        return Response(200, [], Content(b"application/json", handler.health_body))

    return app


def run_socketify(port: int) -> None:
    from socketify import App

    app = App()

    def inference(res: Any, req: Any) -> None:
        # on_data callbacks: the `await res.get_data()` path collapsed under load here.
        chunks: list[bytes] = []

        def on_data(res: Any, chunk: bytes | None, is_end: bool) -> None:
            if chunk:
                chunks.append(chunk)
            if not is_end:
                return
            reply = handler.single(b"".join(chunks))

            def write(res: Any) -> None:
                res.write_status(reply.status)
                res.write_header(b"content-type", b"application/json")
                if reply.server_timing:
                    res.write_header(b"server-timing", reply.server_timing)
                res.end(reply.body)

            res.cork(write)

        res.on_data(on_data)

    def health(res: Any, req: Any) -> None:
        res.write_header("content-type", "application/json")
        res.end(handler.health_body)

    app.post("/inference", inference)
    app.get("/health", health)
    app.listen(port, lambda config: None)
    app.run()


def main(kind: str, port: int) -> None:
    if kind == "uvicorn":  # the stack itself, forced to the C API predictor
        os.environ["FIBER_ENDPOINTS_PREDICTOR"] = "capi"
        from fiber_endpoints.stacks import ServeOptions, asgi_msgspec

        asgi_msgspec.serve(ServeOptions(model=MODEL, port=port))
    elif kind in ("granian", "granian-st"):
        from granian.constants import HTTPModes, Interfaces, Loops, RuntimeModes, TaskImpl
        from granian.server import Server

        # granian-st: single-threaded runtime, Rust task implementation, HTTP/1 only.
        tuned: dict[str, Any] = {}
        if kind == "granian-st":
            tuned = {"runtime_mode": RuntimeModes.st, "task_impl": TaskImpl.rust,
                     "http": HTTPModes.http1}  # fmt: skip
        Server("servers:rsgi_app", address="127.0.0.1", port=port, interface=Interfaces.RSGI,
               workers=1, runtime_threads=1, loop=Loops.uvloop, websockets=False,
               log_access=False, **tuned).serve()  # fmt: skip
    elif kind == "blacksheep":
        import uvicorn

        uvicorn.run("servers:blacksheep_app", factory=True, port=port, loop="uvloop",
                    http="httptools", access_log=False, log_level="warning")  # fmt: skip
    elif kind == "socketify":
        run_socketify(port)
    else:
        raise SystemExit(f"unknown candidate {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
