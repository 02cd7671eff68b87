"""Closed-loop load with wrk (Debian's ``wrk`` 4.x): N keep-alive connections, each sending its
next request as soon as the previous answer arrives, for a fixed duration.

The requests are pre-encoded once (:func:`lua_script`) and wrk rotates through them, the same
bytes for every stack. wrk's ``done()`` hook dumps its whole latency record (1 µs resolution, one
``value count`` pair per distinct value) to a file, which becomes an HDR histogram here: nothing is
summarised by wrk itself. Closed loop hides stalls (a stalled connection sends nothing, so it
records one slow request instead of the many that would have queued): its ``max`` is kept and the
report flags steps whose max dwarfs their p99; the open-loop mode (``open_loop.py``) measures
what a stall costs. Note that wrk 4 itself corrects its record at the end of a run
(``stats_correct``): for every latency over twice a connection's mean interval it adds synthetic
samples at that interval, so the histogram's count can exceed the requests
(``latency_samples_added_by_wrk``), and a long stall does reach the closed-loop p99.
"""

from __future__ import annotations

import math
import os
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fiber_endpoints import stats
from fiber_endpoints.bench import tools
from fiber_endpoints.cpus import pin_on_exec

# done() writes the summary and the full latency record; `#latency` is the number of distinct
# values and `latency(i)` returns (value µs, count) of the i-th.
_DONE = r"""
done = function(summary, latency, requests)
  local f = assert(io.open(os.getenv("WRK_RESULT"), "w"))
  local e = summary.errors
  f:write(string.format("requests %d\nduration_us %d\nbytes %d\n", summary.requests,
    summary.duration, summary.bytes))
  f:write(string.format("connect %d\nread %d\nwrite %d\nstatus %d\ntimeout %d\n",
    e.connect, e.read, e.write, e.status, e.timeout))
  for i = 1, #latency do
    local v, c = latency(i)
    f:write(string.format("h %d %d\n", v, c))
  end
  f:close()
end
"""


def _lua_long_string(body: bytes) -> str:
    text = body.decode("utf-8")
    level = 1
    while "]" + "=" * level + "]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def _lua_headers(headers: Mapping[str, str] | None) -> str:
    """A Lua table of request headers: JSON's content type plus ``headers`` (``--header``)."""
    every = {"Content-Type": "application/json", **(headers or {})}
    return "{" + ", ".join(f"[ {_lua_long_string(k.encode())} ] = {_lua_long_string(v.encode())}"
                           for k, v in every.items()) + "}"  # fmt: skip


def lua_script(path: str, bodies: Sequence[bytes], headers: Mapping[str, str] | None = None) -> str:
    """A wrk script POSTing ``bodies`` (JSON) to ``path`` in turn, with ``headers`` on every
    request (a ``Host`` among them replaces wrk's own), plus the result dump."""
    if not bodies:
        raise ValueError("no request bodies")
    items = ",\n".join(_lua_long_string(b) for b in bodies)
    return f"""
local bodies = {{
{items}
}}
local reqs = {{}}
local i = 0
init = function(args)
  for k, b in ipairs(bodies) do
    reqs[k] = wrk.format("POST", "{path}", {_lua_headers(headers)}, b)
  end
end
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
{_DONE}
"""


@dataclass
class WrkResult:
    connections: int
    duration_s: float
    requests: int
    bytes: int
    errors: dict[str, int]
    histogram: Any  # HdrHistogram, µs
    client_cpu_s: float

    @property
    def ok(self) -> int:
        """Answers below 400: wrk counts a status > 399 as a ``status`` error (its own rule; a
        3xx counts as answered here, where vegeta would call it non-2xx: the stacks never
        redirect, a gateway in front of a ``--target`` might)."""
        return max(0, self.requests - self.errors.get("status", 0))

    @property
    def rps(self) -> float:
        """Answers per second, errors excluded: an error is never throughput."""
        return self.ok / self.duration_s if self.duration_s else 0.0

    def to_json(self) -> dict[str, Any]:
        socket_errors = sum(v for k, v in self.errors.items() if k != "status")
        return {
            "connections": self.connections,
            "duration_s": round(self.duration_s, 4),
            "requests": self.requests,
            "ok": self.ok,
            "rps": round(self.rps, 2),
            "rps_all_answers": round(self.requests / self.duration_s, 2)
            if self.duration_s
            else 0.0,
            "errors": socket_errors,
            "non2xx": self.errors.get("status", 0),
            "error_kinds": self.errors,
            "latency_us": stats.histogram_summary(self.histogram),
            # wrk's own coordinated-omission correction (stats_correct): synthetic samples it
            # adds for requests a connection would have sent while waiting on a slow answer.
            "latency_samples_added_by_wrk": max(
                0, int(self.histogram.get_total_count()) - self.requests
            ),
            "hdr": stats.encode_histogram(self.histogram),
            "client_cpu_s": round(self.client_cpu_s, 4),
            "client_cpu_util": round(self.client_cpu_s / self.duration_s, 4)
            if self.duration_s
            else None,
        }


def parse_result(text: str, connections: int, client_cpu_s: float) -> WrkResult:
    fields: dict[str, int] = {}
    pairs: list[tuple[float, int]] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "h":
            pairs.append((float(parts[1]), int(parts[2])))
        else:
            fields[parts[0]] = int(parts[1])
    if "requests" not in fields:
        raise RuntimeError("wrk wrote no result (did its script fail?)")
    return WrkResult(
        connections=connections,
        duration_s=fields["duration_us"] / 1e6,
        requests=fields["requests"],
        bytes=fields["bytes"],
        errors={k: fields.get(k, 0) for k in ("connect", "read", "write", "status", "timeout")},
        histogram=stats.histogram_from_counts(pairs),
        client_cpu_s=client_cpu_s,
    )


STARTED = b"Running "  # wrk's first line, printed once its SIGINT handler is in place


def _run(
    cmd: list[str], env: dict[str, str], cpus: Sequence[int] | None, seconds: float, timeout: float
) -> str:
    """Run wrk for ``seconds`` (wrk takes whole seconds only: it is given more, then stopped by
    SIGINT, on which it prints its results and runs ``done()`` as at the end of ``-d``).

    The clock starts when wrk says it is running (line-buffered through ``stdbuf``): a SIGINT
    that came before its handler was set (a short warm-up on a loaded machine) killed it with
    no results."""
    pin = set(cpus) if cpus else None
    full = ["stdbuf", "-oL", *cmd[:3], f"-d{math.ceil(seconds) + 2}s", *cmd[3:]]
    proc = subprocess.Popen(
        full,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=pin_on_exec(pin),
    )
    assert proc.stdout is not None
    head = b""
    deadline = time.monotonic() + timeout
    try:
        while STARTED not in head and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.1)
            if ready:
                line = proc.stdout.readline()
                if not line:  # wrk exited before running: its output says why
                    break
                head += line
        if STARTED in head:
            try:
                proc.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    text = (head + out).decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {text}")
    return text


def run(
    url: str,
    path: str,
    bodies: Sequence[bytes],
    *,
    connections: int,
    duration_s: float,
    cpus: Sequence[int] | None = None,
    timeout_s: float = 10.0,
    threads: int = 1,
    script_dir: Path | None = None,
    headers: Mapping[str, str] | None = None,
) -> WrkResult:
    """One measured closed-loop run of ``duration_s`` (the caller warms up with a run of its own,
    outside its CPU accounting); ``headers`` on every request; ``https://`` URLs over TLS (wrk
    does not verify the certificate)."""
    wrk = str(tools.wrk())
    with tempfile.TemporaryDirectory(dir=script_dir) as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(lua_script(path, bodies, headers))
        result_file = Path(tmp) / "result.txt"
        env = {**os.environ, "WRK_RESULT": str(result_file)}
        threads = max(1, min(threads, connections))

        cmd = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"--timeout={timeout_s:g}s",
            "-s",
            str(script),
            url,
        ]
        before = os.times()
        _run(cmd, env, cpus, duration_s, timeout_s + 30)
        client_cpu = tools.children_cpu_since(before)  # wrk's own CPU over the run
        return parse_result(result_file.read_text(), connections, client_cpu)
