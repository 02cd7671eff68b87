"""Interleaved rounds over candidate servers: each started already pinned to core 1, the raw
keep-alive client and wrk on core 0. Sequential p50/p99 (rotating the 100 seed rows), then
``wrk -t1 -c16`` rotating the same bodies; Server-Timing medians. Prints per round and medians.

    python measure.py NAMES [ROUNDS] [CALLS] [WRK_SECONDS]

NAMES from ``COMMANDS`` (comma-separated). ``CANDIDATE_PYTHON`` is the scratch virtualenv's
python for the candidates (``servers.py``); the project's stacks run with this interpreter.
``*-traced`` names set an OTLP endpoint (``OTLP_SINK``, default http://127.0.0.1:4399: any
HTTP server answering 200). Keep wrk runs short on a shared machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fiber_endpoints import model
from fiber_endpoints.bench.client import RawClient

HERE = Path(__file__).resolve().parent
ROOT = model.PROJECT_ROOT
MODEL = str(model.DEFAULT_MODEL)
PORT = int(os.environ.get("CANDIDATE_PORT", "8130"))
GOLDEN = json.loads(model.golden_path(model.DEFAULT_MODEL).read_text())
BODIES = [json.dumps({"data": r}).encode() for r in GOLDEN["rows"][:100]]
CANDIDATE = os.environ.get("CANDIDATE_PYTHON", sys.executable)
SERVE = [sys.executable, "-m", "fiber_endpoints", "serve"]
STACK = [*SERVE, "asgi-msgspec", "--port", str(PORT), "--model", MODEL]
COMMANDS = {
    "uvicorn-asgi": [CANDIDATE, str(HERE / "servers.py"), "uvicorn", str(PORT)],
    "granian-rsgi": [CANDIDATE, str(HERE / "servers.py"), "granian", str(PORT)],
    "granian-rsgi-st": [CANDIDATE, str(HERE / "servers.py"), "granian-st", str(PORT)],
    "blacksheep": [CANDIDATE, str(HERE / "servers.py"), "blacksheep", str(PORT)],
    "socketify": [CANDIDATE, str(HERE / "servers.py"), "socketify", str(PORT)],
    "asgi": STACK,
    "asgi-capi": STACK,
    "asgi-traced": STACK,
    "fiber": [str(ROOT / "fiber/bin/fiber-endpoint"), "-model", MODEL, "-host", "127.0.0.1",
              "-port", str(PORT)],
    "fastapi": [*SERVE, "fastapi", "--port", str(PORT), "--model", MODEL],
}  # fmt: skip
WRK_LUA = Path(tempfile.gettempdir()) / "fast_python_rows.lua"


def write_wrk_script() -> None:
    bodies = ",\n".join("[==[" + b.decode() + "]==]" for b in BODIES)
    WRK_LUA.write_text(
        f'local bodies = {{\n{bodies}\n}}\nlocal i = 0\nwrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n  i = (i % #bodies) + 1\n"
        '  return wrk.format(nil, "/inference", nil, bodies[i])\nend\n'
    )


def environment(name: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{HERE}"}
    if name.endswith("-traced"):
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = os.environ.get("OTLP_SINK", "http://127.0.0.1:4399")
    if name.endswith("-capi"):
        env["FIBER_ENDPOINTS_PREDICTOR"] = "capi"
    return env


def port_in_use() -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", PORT)) == 0


def connect() -> RawClient:
    for _ in range(1200):  # a first lleaves compile can take a minute
        try:
            client = RawClient(f"http://127.0.0.1:{PORT}")
            client.send(client.prepare("GET", "/health"))
            return client
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not come up")


def main() -> None:
    names = sys.argv[1].split(",")
    rounds, calls, wrk_s = (
        int(a) for a in (sys.argv[2:] + ["3", "3000", "4"][len(sys.argv) - 2 :])
    )
    os.sched_setaffinity(0, {0})
    write_wrk_script()
    keys = ("p50", "p99", "rps", "app", "inference")
    res: dict[str, dict[str, list[float]]] = {n: {k: [] for k in keys} for n in names}
    for r in range(rounds):
        for n in names:
            if port_in_use():  # a stray server would be measured in place of this one
                raise SystemExit(f"port {PORT} is already in use")
            proc = subprocess.Popen(COMMANDS[n], env=environment(n), stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True,
                                    preexec_fn=lambda: os.sched_setaffinity(0, {1}))  # fmt: skip
            client = connect()
            headers = {"Content-Type": "application/json"}
            prepared = [client.prepare("POST", "/inference", b, headers) for b in BODIES]
            for i in range(500):
                client.send(prepared[i % 100])
            lat, app, inf = [], [], []
            for i in range(calls):
                t = time.perf_counter_ns()
                resp = client.send(prepared[i % 100])
                lat.append(time.perf_counter_ns() - t)
                durs = re.findall(r"dur=([0-9.]+)", resp.headers.get("server-timing", ""))
                inf.append(float(durs[0]) * 1e3)
                app.append(float(durs[1]) * 1e3)
            client.close()
            lat.sort()
            res[n]["p50"].append(lat[len(lat) // 2] / 1e3)
            res[n]["p99"].append(lat[int(len(lat) * 0.99)] / 1e3)
            res[n]["app"].append(statistics.median(app))
            res[n]["inference"].append(statistics.median(inf))
            out = subprocess.run(["wrk", "-t1", "-c16", f"-d{wrk_s}s", "-s", str(WRK_LUA),
                                  f"http://127.0.0.1:{PORT}"], capture_output=True,
                                 text=True).stdout  # fmt: skip
            rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
            res[n]["rps"].append(float(rps.group(1)) if rps else 0.0)
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
            print(f"round {r} {n}: " + "  ".join(f"{k} {res[n][k][-1]:.1f}" for k in keys),
                  flush=True)  # fmt: skip
    print("\nmedians over rounds (µs, req/s):")
    for n in names:
        print(f"{n:14s} " + "  ".join(f"{k} {statistics.median(res[n][k]):8.1f}" for k in keys))


if __name__ == "__main__":
    main()
