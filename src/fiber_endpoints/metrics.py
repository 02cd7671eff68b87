"""Prometheus metrics, the same names, labels and buckets on every stack (``docs/contract.md``,
Metrics; the Go mirror is ``fiber/metrics.go``, and a unit test compares the two).

Names and labels follow the OpenTelemetry HTTP semantic conventions as exported to Prometheus
(dots become underscores, the unit a suffix): ``http_server_request_duration_seconds`` by
``http_request_method``, ``http_route`` and ``http_response_status_code``;
``http_server_active_requests``; the model's own ``model_inference_duration_seconds`` by
``http_route``; ``fiber_endpoints_build_info`` (stack, version, predictor, model name and the
model file's SHA-256); ``process_resident_memory_bytes`` (per worker: a ``pid`` label in Python).
``GET /metrics`` is never traced and not counted in the request histogram.

The hot path does not call ``prometheus_client``: in multiprocess mode (what ``--workers N``
needs) one ``Histogram.observe`` writes a memory-mapped file under a lock, measured here at
5.5 µs per call (9.8 µs with ``labels()``, 10 µs for a ``livesum`` gauge's ``inc``; the goal is
3 µs for all of it). A request is recorded instead into this worker's plain Python lists
(:meth:`Recorder.request`: one dict lookup, one ``bisect``, two adds; 1.5 µs measured on the same
busy machine as the 5.5 µs above, load ~8 on 2 cores), and the counts
are added to ``prometheus_client``'s metrics in one pass every :data:`FLUSH_INTERVAL_S` on the
event loop (:meth:`Recorder.flush`, a few µs per label set that changed) and right before this
worker answers a scrape. Another worker's last second may therefore be missing from a scrape;
Prometheus scrapes every 15 s by default, so a sample is at most one flush behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path
from time import perf_counter
from typing import Any

from fiber_endpoints import contract, v2

# The one definition of the duration buckets (seconds). Requests here take tens of µs (one row
# on a fast stack) to seconds (a 10,000-row batch on the control); the conventions' advised
# buckets start at 5 ms, where every single-row request would land in the first. Pinned equal to
# fiber/metrics.go's durationBuckets by tests/unit/test_metrics.py.
BUCKETS: tuple[float, ...] = (
    0.00001,
    0.000025,
    0.00005,
    0.000075,
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)

METRICS_PATH = "/metrics"
METRICS_ENV = "FIBER_ENDPOINTS_METRICS"  # "0" turns metrics off (the route answers 404)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
FLUSH_INTERVAL_S = 1.0
VERSION = "0.1.0"

REQUEST_DURATION = "http_server_request_duration_seconds"
INFERENCE_DURATION = "model_inference_duration_seconds"
ACTIVE_REQUESTS = "http_server_active_requests"
BUILD_INFO = "fiber_endpoints_build_info"
RESIDENT_MEMORY = "process_resident_memory_bytes"
REQUEST_LABELS = ("http_request_method", "http_route", "http_response_status_code")
BUILD_LABELS = ("stack", "version", "predictor", "model_name", "model_sha256")

# http_route: the matched route's template, as in the conventions; "" for a path that matched
# no route (the conventions leave the attribute out; Prometheus reads "" as absent).
_ROUTES = {contract.INFERENCE_PATH, contract.BATCH_PATH, contract.HEALTH_PATH}
_V2_FIXED = {"/v2", "/v2/health/live", "/v2/health/ready"}
_V2_MODEL = "/v2/models/{model_name}"
_V2_TAILS = {"", "/ready", "/infer"}


def enabled(environ: Any = os.environ) -> bool:
    return str(environ.get(METRICS_ENV, "1")) != "0"


# http_request_method: one of these, else "_OTHER" (the conventions' rule; bounds the label).
KNOWN_METHODS = frozenset(
    ("GET", "POST", "HEAD", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
)


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "_OTHER"


def route_label(path: str, model_name: str) -> str:
    """The ``http_route`` label of a request path (the same rule as ``routeLabel`` in Go)."""
    if path in _ROUTES or path in _V2_FIXED:
        return path
    prefix = "/v2/models/" + model_name
    if not path.startswith(prefix):
        return ""
    rest = path[len(prefix) :]
    template = _V2_MODEL
    version = "/versions/" + v2.MODEL_VERSION
    if rest.startswith(version):
        rest, template = rest[len(version) :], _V2_MODEL + "/versions/{model_version}"
    return template + rest if rest in _V2_TAILS else ""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_multiprocess_dir() -> str:
    """Before the workers start (and before ``prometheus_client`` is imported): the folder the
    workers share their metrics through, emptied of a previous run's files. ``$PROMETHEUS_
    MULTIPROC_DIR`` when set (its ``*.db`` files are removed), else a new temporary folder,
    removed when this (the serving) process exits."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        for stale in Path(folder).glob("*.db"):
            stale.unlink()
    else:
        folder = tempfile.mkdtemp(prefix="fiber-endpoints-metrics-")
        os.environ[MULTIPROC_ENV] = folder
        import atexit

        atexit.register(remove_multiprocess_dir, folder)
    return folder


def remove_multiprocess_dir(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak instead
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak if sys.platform == "darwin" else peak * 1024)


_NBUCKETS = len(BUCKETS) + 1  # +Inf


class Recorder:
    """This worker's metrics: plain counts on the request path, ``prometheus_client`` in
    :meth:`flush`. Not thread-safe: one per event loop, as the handler."""

    def __init__(
        self, stack: str, predictor: str, model_name: str, model_path: Path | None
    ) -> None:
        # Imported here, after MULTIPROC_ENV is decided (prometheus_client reads it on import).
        from prometheus_client import CollectorRegistry, Gauge, Histogram

        self.registry = registry = CollectorRegistry()  # one per recorder: tests make several
        self.model_name = model_name
        self.active = 0  # requests in flight on the ASGI path (the fast path never yields)
        # (method, route, status) -> bucket counts + [sum]; route -> bucket counts + [sum]
        self._requests: dict[tuple[str, str, int], list[float]] = {}
        self._inference: dict[str, list[float]] = {}
        self._route_cache: dict[str, str] = {}
        self._request_hist = Histogram(
            REQUEST_DURATION,
            "Duration of HTTP server requests.",
            REQUEST_LABELS,
            buckets=BUCKETS,
            registry=registry,
        )
        self._inference_hist = Histogram(
            INFERENCE_DURATION,
            "Duration of the model's predict call alone.",
            ("http_route",),
            buckets=BUCKETS,
            registry=registry,
        )
        self._active = Gauge(
            ACTIVE_REQUESTS,
            "Number of active HTTP server requests.",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self._rss = Gauge(
            RESIDENT_MEMORY,
            "Resident memory size in bytes.",
            multiprocess_mode="liveall",
            registry=registry,
        )
        info = Gauge(
            BUILD_INFO,
            "Build and model of this stack.",
            BUILD_LABELS,
            multiprocess_mode="max",
            registry=registry,
        )
        digest = file_sha256(model_path) if model_path is not None else ""
        info.labels(stack, VERSION, predictor, model_name, digest).set(1)
        self._timer: Any = None
        self.flush()

    def route(self, path: str) -> str:
        label = self._route_cache.get(path)
        if label is None:
            label = route_label(path, self.model_name)
            if len(self._route_cache) < 1024:  # unmatched paths are unbounded: cache a few
                self._route_cache[path] = label
        return label

    def request(
        self, method: str, route: str, status: int, seconds: float, inference_s: float | None
    ) -> None:
        """One finished request (see the module's docstring for its cost)."""
        key = (method, route, status)
        counts = self._requests.get(key)
        if counts is None:
            counts = self._requests[key] = [0.0] * (_NBUCKETS + 1)
        counts[bisect_left(BUCKETS, seconds)] += 1
        counts[_NBUCKETS] += seconds
        if inference_s is not None:
            counts = self._inference.get(route)
            if counts is None:
                counts = self._inference[route] = [0.0] * (_NBUCKETS + 1)
            counts[bisect_left(BUCKETS, inference_s)] += 1
            counts[_NBUCKETS] += inference_s

    def flush(self) -> None:
        """Add the counts since the last flush to ``prometheus_client``'s metrics. The increments
        go to a histogram child's per-bucket values (``_buckets``, ``_sum``: what its
        ``observe`` increments), which in multiprocess mode are the shared files."""
        for (method, route, status), counts in self._requests.items():
            if any(counts):
                _add(self._request_hist.labels(method, route, str(status)), counts)
        for route, counts in self._inference.items():
            if any(counts):
                _add(self._inference_hist.labels(route), counts)
        self._active.set(self.active)
        self._rss.set(_resident_bytes())

    def start(self, loop: Any) -> None:
        """Flush every :data:`FLUSH_INTERVAL_S` on ``loop`` until :meth:`stop`."""

        def tick() -> None:
            self.flush()
            self._timer = loop.call_later(FLUSH_INTERVAL_S, tick)

        self._timer = loop.call_later(FLUSH_INTERVAL_S, tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush()
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def exposition(self) -> bytes:
        """The scrape: this worker flushed, then every worker's metrics (multiprocess mode)."""
        self.flush()
        from prometheus_client import CollectorRegistry, generate_latest

        folder = os.environ.get(MULTIPROC_ENV)
        if not folder:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


def _add(child: Any, counts: list[float]) -> None:
    for i in range(_NBUCKETS):
        n = counts[i]
        if n:
            child._buckets[i].inc(n)
            counts[i] = 0.0
    child._sum.inc(counts[_NBUCKETS])
    counts[_NBUCKETS] = 0.0


class ASGIMiddleware:
    """``GET /metrics`` and every other request's duration around any ASGI app (the FastAPI
    control). ``inference_s`` reads the predictor's time of the request being answered (a
    ``ContextVar`` the app sets; read when the response starts, inside the app's context),
    ``None`` when it did not predict."""

    def __init__(
        self, app: Any, recorder: Recorder, inference_s: Callable[[], float | None]
    ) -> None:
        self.app = app
        self.recorder = recorder
        self.inference_s = inference_s
        self._started = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        recorder = self.recorder
        if not self._started:  # the flush timer, on the serving loop
            import asyncio

            recorder.start(asyncio.get_running_loop())
            self._started = True
        method, path = scope["method"], scope["path"]
        if path == METRICS_PATH:
            if method == "GET":
                status, body, headers = (
                    200,
                    recorder.exposition(),
                    [(b"content-type", CONTENT_TYPE)],
                )
            else:
                error = contract.method_not_allowed(method, path)
                body = json.dumps(error.body()).encode()
                status, headers = (
                    error.status,
                    [(b"content-type", b"application/json"), (b"allow", b"GET")],
                )
            headers.append((b"content-length", str(len(body)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        started = perf_counter()
        status_code = 500
        inference: float | None = None
        recorder.active += 1

        async def sent(message: Any) -> None:
            nonlocal status_code, inference
            if message["type"] == "http.response.start":
                status_code = message["status"]
                inference = self.inference_s()  # in the app's context, where it was set
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            recorder.active -= 1
            elapsed = perf_counter() - started
            recorder.request(
                method_label(method), recorder.route(path), status_code, elapsed, inference
            )
