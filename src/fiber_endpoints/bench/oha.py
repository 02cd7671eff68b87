"""Open-loop load at a constant rate with oha (``crates.io/crates/oha``, Rust, tokio + hyper): the
load phase's open loop and the generators' open ceiling.

Why oha and not vegeta: the generator must keep up with the rates it is asked for. Against the
trivial C server (it answers at once), on one core, vegeta's p99 was 84 ms at 20,000 req/s and
236 ms at 24,500 (sending up to 221 ms behind schedule, 23,371 answered); oha's 11 and 5.4 ms,
and 5.4 ms at 30,000 (2026-11-30, ``scripts/generator_floor.py``, docs/methodology.md). The fast
Python stack's 80 % of peak is ~29,000 req/s.

oha is run with ``-q RATE --latency-correction`` and ``--db-url``, which keeps one row per
answered request: when its tick fired, when it was sent and done, its status. oha's tick is the
time its scheduler *woke* for request k (``Instant::now()`` after sleeping until ``k / rate``,
oha 1.16 ``client.rs``), not when k was due: a late scheduler would not be charged. So the due
times are rebuilt from the order: the k-th tick is request k, due at ``origin + k / rate`` (the
earliest origin any tick implies, as for vegeta's sequence numbers), and ``open_loop.window``
measures from there. The scheduler's own lateness is kept apart (``schedule_lag_us``) from the
wait for a free connection, which is the server's doing. oha keeps no row for a request that
failed (refused, reset, timed out): those are counted from its summary, as errors of the window
even when they fell in the warm-up, and with no latency; the order of the rows then no longer
names every request exactly, but a step with an error is failed anyway. Up to ``connections``
connections, opened as its workers first need them and reused. Each request's body is one of
``bodies`` (one per line of a file, ``-Z``; oha picks a line at random).
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from fiber_endpoints.bench import open_loop, tools
from fiber_endpoints.bench.open_loop import OpenResult

# Connections held open: enough that the pool does not bound the offered load at the rates and
# latencies measured here (Little: 25,000 req/s x 10 ms = 250 in flight); a full pool is still
# charged through the intended send times. Not more: every open connection costs the server a
# little in each turn and the generator too. Measured (2026-11-30, 2 s after 0.5 s, two runs),
# p99 at 24,510 req/s to asgi-msgspec 3.3/5.4 ms with 64, 6.2/4.1 with 256, 10.9/8.6 with 512;
# at 14,253 to fiber 3.3/6.0, 3.7/3.1, 12.0/6.5.
CONNECTIONS = 256
ROWS = "SELECT start_latency_correction, start, end, status FROM oha"
# oha runs this much past the measured window: its ticks fire on a 1 ms timer, so the requests
# due in the window's last moments would otherwise meet its deadline unsent (9 of 8,979 at 30 %
# of a peak, flagged as "never sent"). Requests due after the window are not measured.
TAIL_S = 0.05


def body_lines(bodies: Sequence[bytes]) -> bytes:
    """``bodies`` as oha's ``-Z`` reads them: one per line, so none may hold a newline."""
    if any(b"\n" in b or b"\r" in b for b in bodies):
        raise ValueError("oha sends one body per line: a request body holds a line break")
    return b"\n".join(bodies) + b"\n"


def read(
    db: Path, summary: Mapping[str, object], *, rate: float, warmup_s: float, duration_s: float,
    client_cpu_s: float,
) -> OpenResult:  # fmt: skip
    """The step's result from oha's per-request rows (seconds from its start) and its summary."""
    with sqlite3.connect(db) as conn:
        rows = np.asarray(conn.execute(ROWS).fetchall(), dtype=np.float64).reshape(-1, 4)
    errors = summary.get("errorDistribution") or {}
    assert isinstance(errors, Mapping)
    rows = rows[np.argsort(rows[:, 0], kind="stable")]  # in the order the ticks fired
    tick, sent, done = (rows[:, i] * 1e9 for i in range(3))
    due_offset = np.arange(len(rows), dtype=np.float64) * (1e9 / rate)
    origin = float(np.min(tick - due_offset)) if len(rows) else 0.0
    return open_loop.window(
        origin_ns=origin,
        intended_ns=origin + due_offset,
        tick_ns=tick,
        sent_ns=sent,
        done_ns=done,
        codes=rows[:, 3].astype(np.int64),
        failed=np.zeros(len(rows), dtype=bool),
        rate=rate,
        warmup_s=warmup_s,
        duration_s=duration_s,
        client_cpu_s=client_cpu_s,
        unrecorded_errors=sum(int(n) for n in errors.values()),
    )


def run(
    url: str,
    path: str,
    bodies: Sequence[bytes],
    *,
    rate: float,
    duration_s: float,
    warmup_s: float = 0.0,
    cpus: Sequence[int] | None = None,
    timeout_s: float = 10.0,
    connections: int = CONNECTIONS,
    headers: Mapping[str, str] | None = None,
) -> OpenResult:
    """One constant-rate step of ``warmup_s + duration_s`` (the warm-up part is dropped).
    ``https://`` URLs over TLS without checking the certificate (``--insecure``: a test's
    self-signed terminator, or a cluster's ingress; nothing here trusts the answer but parity,
    checked before)."""
    total = warmup_s + duration_s + TAIL_S
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "bodies.jsonl"
        body_file.write_bytes(body_lines(bodies))
        db = Path(tmp) / "results.db"
        cmd = [
            str(tools.oha()),
            "-z", f"{total:g}s",
            "-q", f"{rate:g}",
            "-c", str(connections),
            "-t", f"{timeout_s:g}s",
            "--latency-correction",
            "-w",  # answers still on their way at the end are waited for, not aborted
            "--no-tui",
            "--output-format", "json",
            "--db-url", str(db),
            "-m", "POST",
            "-T", "application/json",
            *[a for name, value in (headers or {}).items() for a in ("-H", f"{name}: {value}")],
            *(["--insecure"] if url.startswith("https://") else []),
            "-Z", str(body_file),
            url.rstrip("/") + path,
        ]  # fmt: skip
        proc, client_cpu = tools.run_pinned(cmd, cpus, total + timeout_s + 60)
        if proc.returncode != 0 or not db.exists():
            raise RuntimeError(f"oha failed: {proc.stderr.decode(errors='replace')}")
        return read(
            db,
            json.loads(proc.stdout),
            rate=rate,
            warmup_s=warmup_s,
            duration_s=duration_s,
            client_cpu_s=client_cpu,
        )
