"""Shutdown and restarts under load (issue 13), every stack as a real process on loopback.

- SIGTERM during 64-connection load: every request sent before the signal is answered 200, the
  process exits 0 within its grace period (limits.SHUTDOWN_TIMEOUT_S, plus start-up slack), and
  the next start on the same port serves correctly.
- ``serve --workers 2`` (the Python stacks; Go has no worker processes): a worker killed with
  SIGKILL is replaced, and the other keeps answering meanwhile.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from fiber_endpoints import limits, model, stacks
from fiber_endpoints.bench import hostile, reliability, servers
from fiber_endpoints.bench.client import ClientError, RawClient

pytestmark = pytest.mark.slow

REGRESSION = model.MODELS_DIR / "regression" / "model.txt"
CONNECTIONS = 64
LOAD_BEFORE_S = 1.5  # load runs this long before the signal
MAX_LOAD_S = 20.0  # every load loop is bounded in time
# The control as uvicorn ships it: on SIGTERM uvicorn closes every connection between requests at
# once, dropping requests the client already sent that it has not read yet (measured on the busy
# 2-core VM: 59 of 138, a backlog of 1.5 s). Its remedy is in front of it (docs/contract.md,
# "Graceful stop"); asgi-msgspec does it in its own protocol (guarded_protocol.py).
DROPS_UNREAD = {"fastapi": "uvicorn closes connections with unread requests on SIGTERM"}
# fasthttp closes idle connections on shutdown too: a request that reached the socket in the
# instant before is lost (measured: 0 of 13,634 and 23,510, 2 of 15,697 in three runs). It has
# no hook to drain them (uvicorn neither: asgi-msgspec does it in its own protocol); allowed up
# to this share, and said so in docs/contract.md.
RACE_SHARE = {"fiber": 0.001}


class Load:
    """``CONNECTIONS`` threads, each one keep-alive connection sending /inference in a loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        # (time the request was sent, answered with this status or None if it failed)
        self.records: list[tuple[float, int | None]] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CONNECTIONS)]

    def _run(self) -> None:
        client = RawClient(self.url, timeout=15)
        raw = client.prepare("POST", "/inference", hostile.GOOD_BODY)
        deadline = time.monotonic() + MAX_LOAD_S
        while not self.stop.is_set() and time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                status: int | None = client.send(raw).status
            except (OSError, ClientError):
                status = None
                client.close()
                time.sleep(0.01)  # the server is going away: do not spin on refused connects
            with self.lock:
                self.records.append((sent, status))
        client.close()

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=20)


@pytest.mark.parametrize("stack", sorted(stacks.STACKS))
def test_sigterm_under_load_loses_nothing(stack: str, tmp_path: Path) -> None:
    srv = servers.start(stack, REGRESSION, log_dir=tmp_path, timeout=120)
    proc = srv.process
    assert proc is not None
    try:
        with Load(srv.url) as load:
            time.sleep(LOAD_BEFORE_S)
            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=limits.SHUTDOWN_TIMEOUT_S + 5)
            stopped = time.monotonic() - signalled
        before = [status for sent, status in load.records if sent < signalled]
        failed = [s for s in before if s != 200]
        lead_ms = [round((signalled - sent) * 1e3, 1) for sent, s in load.records if s != 200]
        print(f"{stack}: failures sent this many ms before the signal: {sorted(lead_ms)[-8:]}")
        print(
            f"{stack}: {len(before)} requests sent before SIGTERM, {len(failed)} failed; "
            f"exit {code} after {stopped:.2f} s"
        )
        reliability.record(
            "shutdown",
            stack,
            {"before": len(before), "failed": len(failed), "exit": code, "seconds": stopped},
        )
        assert len(before) > CONNECTIONS
        if stack in DROPS_UNREAD:
            print(
                f"{stack}: known miss, {len(failed)} of {len(before)} lost: {DROPS_UNREAD[stack]}"
            )
        else:
            assert len(failed) <= RACE_SHARE.get(stack, 0.0) * len(before), failed
        assert code == 0
        assert stopped <= limits.SHUTDOWN_TIMEOUT_S + 2
    finally:
        servers.stop(srv)
    # The next start on the same port serves correctly.
    _host, port = srv.host_port
    again = servers.start(stack, REGRESSION, port=port, log_dir=tmp_path, timeout=120)
    try:
        client = RawClient(again.url, timeout=15)
        resp = client.send(client.prepare("POST", "/inference", hostile.GOOD_BODY))
        client.close()
        assert resp.status == 200 and "prediction" in resp.json()
    finally:
        assert servers.stop(again) == 0


def _workers(pid: int) -> list[psutil.Process]:
    """uvicorn's worker processes under the supervisor ``pid`` (its multiprocessing children)."""
    children = psutil.Process(pid).children()
    return [p for p in children if not any("resource_tracker" in a for a in p.cmdline())]


@pytest.mark.parametrize("stack", [s for s in sorted(stacks.STACKS) if s != "fiber"])
def test_killed_worker_is_replaced(stack: str, tmp_path: Path) -> None:
    srv = servers.start(stack, REGRESSION, extra_args=["--workers", "2"], log_dir=tmp_path)
    assert srv.process is not None
    try:
        deadline = time.monotonic() + 30
        while len(_workers(srv.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = _workers(srv.process.pid)
        assert len(workers) == 2, workers
        victim = workers[0]
        os.kill(victim.pid, signal.SIGKILL)
        # Meanwhile the other worker answers: new connections, for 2 s.
        answered = failed = 0
        until = time.monotonic() + 2
        while time.monotonic() < until:
            client = RawClient(srv.url, timeout=10)
            try:
                ok = client.send(client.prepare("POST", "/inference", hostile.GOOD_BODY)).status
                answered += ok == 200
                failed += ok != 200
            except (OSError, ClientError):
                failed += 1
            finally:
                client.close()
        # And the killed one is replaced.
        replaced: list[psutil.Process] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            replaced = [w for w in _workers(srv.process.pid) if w.pid != victim.pid]
            if len(replaced) == 2:
                break
            time.sleep(0.5)
        print(f"{stack}: {answered} answered, {failed} failed after the kill; workers {replaced}")
        assert failed == 0 and answered > 0
        assert len(replaced) == 2
        assert hostile.healthy(srv.url)
    finally:
        assert servers.stop(srv) == 0
