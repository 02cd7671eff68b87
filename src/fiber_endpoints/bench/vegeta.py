"""Open-loop load at a constant rate with vegeta (``github.com/tsenart/vegeta/v12``): the
overload test's generator (``reliability.py``), which bounds its in-flight requests and opens
connections as it needs them. The load phase's open loop is oha (``oha.py``): vegeta's own p99
against a server that answers at once reached 84 ms at 20,000 req/s and 236 ms at 24,500 on one
core, where oha's was 11 and 5.4 ms (2026-11-30, docs/methodology.md).

vegeta sends request k at ``start + k / rate`` whatever the server does, keeps every result
(timestamp, sequence number, status, latency) and we read them all back; the intended send time
of request k is ``start + seq / rate`` (``open_loop.window`` measures from it).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ParamSpec

import numpy as np

from fiber_endpoints.bench import open_loop, tools
from fiber_endpoints.bench.open_loop import OpenResult

P = ParamSpec("P")
MAX_WORKERS = 512  # bounded concurrency; a full pool is still charged via intended times


def targets(
    url: str, path: str, bodies: Sequence[bytes], headers: Mapping[str, str] | None = None
) -> str:
    """vegeta's JSON targets, one line per pre-encoded body (sent in turn), with ``headers`` on
    every request (vegeta sends a ``Host`` header as the request's host)."""
    header = {"Content-Type": ["application/json"], **{k: [v] for k, v in (headers or {}).items()}}
    lines = []
    for b in bodies:
        lines.append(
            json.dumps(
                {
                    "method": "POST",
                    "url": url.rstrip("/") + path,
                    "body": base64.b64encode(b).decode("ascii"),
                    "header": header,
                }
            )
        )
    return "\n".join(lines) + "\n"


def parse_csv(
    text: str, rate: float, warmup_s: float, client_cpu_s: float, duration_s: float
) -> OpenResult:
    """vegeta ``encode --to csv`` rows: timestamp ns, code, latency ns, bytes out, bytes in,
    error, body, attack, seq, method, url, headers."""
    ts: list[int] = []
    lat: list[int] = []
    seq: list[int] = []
    code: list[int] = []
    err: list[bool] = []
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        ts.append(int(row[0]))
        code.append(int(row[1]))
        lat.append(int(row[2]))
        err.append(bool(row[5]))
        seq.append(int(row[8]))
    if not ts:
        raise RuntimeError("vegeta recorded no results")
    t = np.asarray(ts, dtype=np.float64)
    s = np.asarray(seq, dtype=np.int64)
    latency = np.asarray(lat, dtype=np.float64)
    codes = np.asarray(code, dtype=np.int64)
    period_ns = 1e9 / rate
    # The schedule's origin: request 0 was due when the attack began. Take the earliest origin
    # any request implies, so no request's intended time lies after its actual send.
    origin = float(np.min(t - s * period_ns))
    return open_loop.window(
        origin_ns=origin,
        intended_ns=(origin + s * period_ns).astype(np.float64),
        sent_ns=t,
        done_ns=t + latency,
        codes=codes,
        failed=np.asarray(err) | (codes == 0),
        rate=rate,
        warmup_s=warmup_s,
        duration_s=duration_s,
        client_cpu_s=client_cpu_s,
    )


@dataclass(frozen=True)
class Attack:
    """A finished attack's raw results (vegeta's binary format), not yet read."""

    results: bytes
    rate: float
    warmup_s: float
    duration_s: float
    client_cpu_s: float


def attack(
    url: str,
    path: str,
    bodies: Sequence[bytes],
    *,
    rate: float,
    duration_s: float,
    warmup_s: float = 0.0,
    cpus: Sequence[int] | None = None,
    timeout_s: float = 10.0,
    max_workers: int = MAX_WORKERS,
    headers: Mapping[str, str] | None = None,
) -> Attack:
    """One constant-rate attack of ``warmup_s + duration_s`` (the warm-up part is dropped by
    :func:`read`). ``https://`` URLs over TLS (``-insecure``: a test's self-signed terminator, or
    a cluster's ingress whose CA the client machine does not hold; nothing here trusts the
    answer but parity, checked before). Its results are left unread: a caller that measures
    something else in this process meanwhile (``reliability.overload``'s recovery probes) reads
    them after -- decoding ~200k results holds the GIL for tens of ms, which the probes had
    measured as a 71 ms stall of the server 11 s after an overload. :func:`run` reads at once."""
    vegeta = str(tools.vegeta())
    total = warmup_s + duration_s
    with tempfile.TemporaryDirectory() as tmp:
        tfile = Path(tmp) / "targets.json"
        tfile.write_text(targets(url, path, bodies, headers))
        out = Path(tmp) / "results.bin"
        cmd = [
            vegeta,
            "attack",
            "-format=json",
            f"-targets={tfile}",
            f"-rate={rate:g}/1s",
            f"-duration={total:g}s",
            f"-timeout={timeout_s:g}s",
            "-workers=8",
            f"-max-workers={max_workers}",
            *(["-insecure"] if url.startswith("https://") else []),
            f"-output={out}",
        ]
        proc, client_cpu = tools.run_pinned(cmd, cpus, total + timeout_s + 60)
        if proc.returncode != 0:
            raise RuntimeError(f"vegeta failed: {proc.stderr.decode(errors='replace')}")
        results = out.read_bytes()
    return Attack(results, rate, warmup_s, duration_s, client_cpu)


def read(attack: Attack) -> OpenResult:
    """An attack's results, decoded (``vegeta encode``) and parsed."""
    encoded = subprocess.run(
        [str(tools.vegeta()), "encode", "--to", "csv"],
        input=attack.results,
        capture_output=True,
        check=True,
        timeout=120,
    )
    return parse_csv(
        encoded.stdout.decode(),
        attack.rate,
        attack.warmup_s,
        attack.client_cpu_s,
        attack.duration_s,
    )


def _read_after(attack: Callable[P, Attack]) -> Callable[P, OpenResult]:
    def run(*args: P.args, **kwargs: P.kwargs) -> OpenResult:
        """:func:`attack` with the same arguments, its results read at once (:func:`read`)."""
        return read(attack(*args, **kwargs))

    return run


run = _read_after(attack)
