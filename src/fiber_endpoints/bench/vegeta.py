"""Open-loop load at a constant rate with vegeta (``github.com/tsenart/vegeta/v12``).

vegeta sends request k at ``start + k / rate`` whatever the server does, keeps every result
(timestamp, sequence number, status, latency) and we read them all back. Latency here is measured
from each request's INTENDED send time, ``start + seq / rate``, not from when vegeta managed to
send it: if the server (or vegeta itself) stalls, every request that should have gone out during
the stall is charged the wait, as a user would feel it (no coordinated omission). vegeta's own
"service time" (from the actual send) is kept beside it.

The first ``warmup_s`` seconds of intended send times are dropped from the statistics.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec

import numpy as np

from fiber_endpoints import stats
from fiber_endpoints.bench import tools
from fiber_endpoints.cpus import pin_on_exec

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


@dataclass
class OpenResult:
    rate: float
    duration_s: float  # measured window (after warm-up)
    scheduled: int  # rate x duration: requests due in the measured window
    sent: int  # of those, requests vegeta sent (the rest it never got to: flagged, not timed)
    total: int  # all requests of the attack, warm-up included (what the server's CPU served)
    ok: int
    completed_in_window: int  # 2xx answers that arrived inside the measured window
    errors: int
    non2xx: int
    histogram: Any  # from intended send time, µs
    service_histogram: Any  # from actual send time (vegeta's own latency), µs
    max_send_lag_us: float  # how far behind schedule vegeta sent its latest request
    client_cpu_s: float

    @property
    def achieved_rps(self) -> float:
        """2xx answers per second that arrived in the window (falls short when either side lags)."""
        return self.completed_in_window / self.duration_s if self.duration_s else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "duration_s": round(self.duration_s, 4),
            "scheduled": self.scheduled,
            "unsent": max(0, self.scheduled - self.sent),
            "requests": self.sent,
            "requests_total": self.total,
            "ok": self.ok,
            "achieved_rps": round(self.achieved_rps, 2),
            "errors": self.errors,
            "non2xx": self.non2xx,
            "latency_us": stats.histogram_summary(self.histogram),
            "hdr": stats.encode_histogram(self.histogram),
            "service_latency_us": stats.histogram_summary(self.service_histogram),
            "service_hdr": stats.encode_histogram(self.service_histogram),
            "max_send_lag_us": round(self.max_send_lag_us, 1),
            "client_cpu_s": round(self.client_cpu_s, 4),
        }


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
    t = np.asarray(ts, dtype=np.int64)
    s = np.asarray(seq, dtype=np.int64)
    latency = np.asarray(lat, dtype=np.int64)
    codes = np.asarray(code)
    errors = np.asarray(err)
    period_ns = 1e9 / rate
    # The schedule's origin: request 0 was due when the attack began. Take the earliest origin
    # any request implies, so no request's intended time lies after its actual send.
    start = float(np.min(t - s * period_ns))
    intended = start + s * period_ns
    send_lag = t - intended
    corrected_us = (send_lag + latency) / 1e3
    window_start = start + warmup_s * 1e9
    window_end = window_start + duration_s * 1e9
    keep = (intended >= window_start) & (intended < window_end)
    done = t + latency
    failed = errors | (codes == 0)
    non2xx = (~failed) & ((codes < 200) | (codes >= 300))
    ok = keep & ~failed & ~non2xx
    arrived = ~failed & ~non2xx & (done >= window_start) & (done < window_end)
    return OpenResult(
        rate=rate,
        duration_s=duration_s,
        scheduled=round(rate * duration_s),
        sent=int(keep.sum()),
        total=int(t.size),
        ok=int(ok.sum()),
        completed_in_window=int(arrived.sum()),
        errors=int((keep & failed).sum()),
        non2xx=int((keep & non2xx).sum()),
        # Failed requests count too: a timeout is a latency a user felt.
        histogram=stats.histogram_from_values(corrected_us[keep]),
        service_histogram=stats.histogram_from_values(latency[keep] / 1e3),
        max_send_lag_us=float(send_lag[keep].max() / 1e3) if keep.any() else 0.0,
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
    pin = set(cpus) if cpus else None

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
        before = os.times()
        proc = subprocess.run(
            cmd,
            capture_output=True,
            preexec_fn=pin_on_exec(pin),
            timeout=total + timeout_s + 60,
            check=False,
        )
        after = os.times()
        if proc.returncode != 0:
            raise RuntimeError(f"vegeta failed: {proc.stderr.decode(errors='replace')}")
        results = out.read_bytes()
    client_cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
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
