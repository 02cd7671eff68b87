"""Reliability under abuse and faults (issue 13): typed raw results, the CPU cap, overload, soak.

``reliability.json`` (schema :data:`SCHEMA`) sits in a run folder beside ``results.json``;
``report/markdown.py`` renders its table. Per stack it holds the fuzz counts, every hostile case
(``bench/hostile.py``), the overload run, the SIGTERM result and the soak, each raw enough to
redraw the table without rerunning. ``python -m fiber_endpoints.bench.reliability`` fills it:
hostile cases and overload here, fuzz and shutdown figures from the tests' own records
(``FIBER_ENDPOINTS_RELIABILITY_DIR``), the soak from ``bench --soak MINUTES`` (:class:`SoakPhase`).

Overload: one generator core cannot send twice a fast stack's peak here, so the server runs under
a CPU quota (:class:`CpuCap`, a cgroup made and removed here; 0.25 CPU by default), its closed-loop
peak is measured under that cap, then vegeta sends 2x that peak, open loop, for 30 s. Recovery
is the time from the end of the load until every probe request (sequential, one connection) is
back under ``max(3 x baseline p99, baseline p99 + 5 ms)``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import psutil

from fiber_endpoints import contract, stacks
from fiber_endpoints.bench import hostile, servers, vegeta, wrk
from fiber_endpoints.bench.client import ClientError, RawClient

SCHEMA = "fiber-endpoints/reliability/1"
FILE = "reliability.json"
RECORDS_ENV = "FIBER_ENDPOINTS_RELIABILITY_DIR"  # where tests write their per-stack figures
OVERLOAD_FACTOR = 2.0
OVERLOAD_S = 30.0
RECOVERY_GOAL_S = 5.0
PROBE_S = 15.0  # probing after the load, bounded
CPU_QUOTA = 0.25


class HostileCase(TypedDict):
    case: str
    held: bool
    ok: bool
    detail: str
    statuses: dict[str, int]
    bystander_requests: int
    bystander_errors: int
    bystander_p99_ms: float
    alone_p99_ms: float
    attack_cpu_s: float
    wall_s: float


class Overload(TypedDict):
    cpu_quota: float
    peak_rps: float  # closed loop (wrk, 64 connections) under the cap
    rate: float  # what vegeta was asked for: OVERLOAD_FACTOR x peak
    sent: int
    ok: int
    shed_503: int
    other_errors: int
    achieved_rps: float
    baseline_p99_ms: float
    recovery_s: float | None  # None: not back within PROBE_S
    rss_before_mib: float
    rss_max_mib: float
    up_after: bool
    client_cpu_s: float


class SoakSlice(TypedDict):
    t_s: float
    requests: int
    errors: int  # transport errors and non-2xx answers
    unsent: int  # due but never sent: the generator (or a stalled server) fell behind
    p99_ms: float
    rss_mib: float


class Soak(TypedDict):
    minutes: float
    rate: float
    peak_rps: float
    cpu_quota: float | None  # the server's CPU cap, if it ran under one
    requests: int
    errors: int
    unsent: int
    slices: list[SoakSlice]
    rss_drift_pct: float


class StackReliability(TypedDict, total=False):
    fuzz_requests: int
    fuzz_failures: int
    hostile: list[HostileCase]
    overload: Overload
    shutdown: dict[str, Any]  # requests before SIGTERM, failed, exit code, seconds
    soak: Soak


class ReliabilityDoc(TypedDict):
    schema: str
    machine: dict[str, Any]
    stacks: dict[str, StackReliability]


def machine() -> dict[str, Any]:
    """How busy the machine was: the figures of a shared VM are read with this beside them."""
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def validate(doc: Any) -> ReliabilityDoc:
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ValueError(f"{FILE}: expected schema {SCHEMA!r}")
    if not isinstance(doc.get("stacks"), dict) or not isinstance(doc.get("machine"), dict):
        raise ValueError(f"{FILE}: stacks and machine must be objects")
    for name, part in doc["stacks"].items():
        if not isinstance(part, dict):
            raise ValueError(f"{FILE}: stacks.{name} must be an object")
        for case in part.get("hostile", []):
            missing = set(HostileCase.__annotations__) - set(case)
            if missing:
                raise ValueError(f"{FILE}: {name} hostile case lacks {sorted(missing)}")
    result: ReliabilityDoc = doc  # type: ignore[assignment]
    return result


def read(run_dir: Path) -> ReliabilityDoc | None:
    path = run_dir / FILE
    if not path.exists():
        return None
    return validate(json.loads(path.read_text()))


def merge(run_dir: Path, name: str, part: StackReliability) -> None:
    """Add ``part`` to stack ``name`` in ``run_dir/reliability.json`` (created if absent)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    doc = read(run_dir) or {"schema": SCHEMA, "machine": machine(), "stacks": {}}
    doc["stacks"].setdefault(name, {}).update(part)
    doc["machine"] = machine()
    (run_dir / FILE).write_text(json.dumps(doc, indent=1) + "\n")


def record(kind: str, name: str, part: Mapping[str, Any]) -> None:
    """A test's per-stack figures, written when ``FIBER_ENDPOINTS_RELIABILITY_DIR`` is set."""
    where = os.environ.get(RECORDS_ENV)
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        (Path(where) / f"{kind}-{name}.json").write_text(json.dumps(dict(part)))


# The CPU cap --------------------------------------------------------------------------------


class CpuCap:
    """A cgroup with a CPU quota (v2 ``cpu.max``, or v1 ``cpu.cfs_quota_us``), made here and
    removed on exit (its processes moved back to the root first)."""

    def __init__(self, quota: float) -> None:
        self.quota = quota
        v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
        root = Path("/sys/fs/cgroup") if v2 else Path("/sys/fs/cgroup/cpu")
        self.root = root
        self.path = root / f"fiber-endpoints-cap-{os.getpid()}"
        self.path.mkdir()
        period = 100_000
        if v2:
            (self.path / "cpu.max").write_text(f"{int(quota * period)} {period}")
        else:
            (self.path / "cpu.cfs_period_us").write_text(str(period))
            (self.path / "cpu.cfs_quota_us").write_text(str(int(quota * period)))

    def add(self, pid: int) -> None:
        for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
            (self.path / "cgroup.procs").write_text(str(proc.pid))

    @contextmanager
    def spawning(self) -> Iterator[None]:
        """Processes started inside the block start in the group (a child is born in its
        parent's cgroup), as in a container with this quota: a stack sizes its threads from
        the quota it sees at start (``cpus.py``). This process leaves the group after."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))
        try:
            yield
        finally:
            (self.root / "cgroup.procs").write_text(str(os.getpid()))

    def close(self) -> None:
        for pid in (self.path / "cgroup.procs").read_text().split():
            try:
                (self.root / "cgroup.procs").write_text(pid)
            except OSError:
                pass  # it exited meanwhile
        for _ in range(50):  # the kernel frees the group once its last task has left
            try:
                self.path.rmdir()
                break
            except OSError:
                time.sleep(0.1)


@contextmanager
def capped_server(
    name: str, model: Path, log_dir: Path, quota: float = CPU_QUOTA
) -> Iterator[servers.Server]:
    """Stack ``name`` started inside a fresh CPU cap; stopped, and the cap removed, after."""
    cap = CpuCap(quota)
    try:
        with cap.spawning():
            server = servers.start(name, model, log_dir=log_dir, timeout=300)
        try:
            yield server
        finally:
            servers.stop(server)
    finally:
        cap.close()


# Probing ------------------------------------------------------------------------------------


def probe(url: str, seconds: float, pause_s: float = 0.01) -> list[tuple[float, float, bool]]:
    """Sequential plain requests for ``seconds``: (send time, latency ms, answered 200)."""
    out: list[tuple[float, float, bool]] = []
    client = RawClient(url, timeout=10)
    raw = client.prepare("POST", contract.INFERENCE_PATH, hostile.GOOD_BODY)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            ok = client.send(raw).status == 200
        except (OSError, ClientError):
            ok = False
            client.close()
        out.append((t0, (time.monotonic() - t0) * 1e3, ok))
        time.sleep(pause_s)
    client.close()
    return out


# Recovery is judged per second of probes: a second is slow when a probe failed, or when two or
# more, and more than a tenth, were over the threshold. One slow probe alone is not "not
# recovered" (in a full second nor in the last, partial one): under the 0.25-CPU cap a lone probe
# can wait for the quota's next period (Fiber: one 7 ms probe 10 s after an overload it had left
# within 0.1 s, which made its "recovery" 10 s).
RECOVERY_WINDOW_S = 1.0
RECOVERY_SLOW_SHARE = 0.1


def recovery_time(
    probes: Sequence[tuple[float, float, bool]], load_end: float, threshold_ms: float
) -> float | None:
    """Seconds from ``load_end`` to the end of the last slow probe of the last slow second (see
    above); None when the probing ended in a slow second, or there were no probes."""
    if not probes:
        return None
    windows: dict[int, list[tuple[float, float, bool]]] = {}
    for t, ms, ok in probes:
        windows.setdefault(int(max(0.0, t - load_end) // RECOVERY_WINDOW_S), []).append((t, ms, ok))
    last_slow = None
    for index in sorted(windows):
        window = windows[index]
        bad = [t + ms / 1e3 for t, ms, ok in window if not ok or ms > threshold_ms]
        slow = len(bad) >= 2 and len(bad) > RECOVERY_SLOW_SHARE * len(window)
        if slow or any(not ok for _, _, ok in window):
            last_slow = (index, max(bad))
    if last_slow is None:
        return 0.0
    if last_slow[0] == max(windows):
        return None
    return max(0.0, last_slow[1] - load_end)


def _rss_mib(pid: int) -> float:
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return sum(p.memory_info().rss for p in procs) / 2**20


def overload(
    name: str, model: Path, log_dir: Path, client_cpus: Sequence[int] | None = None
) -> Overload:
    """Stack ``name`` started under the cap: its peak, then 2x it for 30 s, RSS sampled,
    recovery probed."""
    bodies = [hostile.GOOD_BODY]
    with capped_server(name, model, log_dir) as server:
        assert server.process is not None
        pid = server.process.pid
        wrk.run(server.url, contract.INFERENCE_PATH, bodies, connections=64, duration_s=2)
        peak = wrk.run(
            server.url, contract.INFERENCE_PATH, bodies, connections=64, duration_s=8,
            cpus=client_cpus,
        ).rps  # fmt: skip
        time.sleep(1)
        baseline = [ms for _, ms, ok in probe(server.url, 2.0) if ok]
        base_p99 = statistics.quantiles(baseline, n=100)[98] if len(baseline) > 10 else 1.0
        rss_before = _rss_mib(pid)
        rate = float(max(1, round(OVERLOAD_FACTOR * peak)))  # vegeta takes whole rates
        result: dict[str, vegeta.Attack] = {}

        def attack() -> None:  # its results are read after the probes (vegeta.attack says why)
            result["a"] = vegeta.attack(
                server.url, contract.INFERENCE_PATH, bodies, rate=rate, duration_s=OVERLOAD_S,
                cpus=client_cpus, timeout_s=10,
            )  # fmt: skip

        t = threading.Thread(target=attack)
        start = time.monotonic()
        t.start()
        rss_max = rss_before
        while time.monotonic() - start < OVERLOAD_S:
            rss_max = max(rss_max, _rss_mib(pid))
            time.sleep(0.5)
        load_end = time.monotonic()
        probes = probe(server.url, PROBE_S)
        t.join(timeout=60)
        rss_max = max(rss_max, _rss_mib(pid))
        up = server.process.poll() is None and hostile.healthy(server.url)
    r = None
    if "a" in result:
        try:
            r = vegeta.read(result["a"])
        except subprocess.SubprocessError as exc:  # as a failed attack: reported, not raised
            print(f"overload: vegeta's results unreadable: {exc}", file=sys.stderr)
    threshold = max(3 * base_p99, base_p99 + 5.0)
    return Overload(
        cpu_quota=CPU_QUOTA,
        peak_rps=round(peak, 1),
        rate=round(rate, 1),
        sent=r.sent if r else 0,
        ok=r.ok if r else 0,
        shed_503=r.non2xx if r else 0,
        other_errors=r.errors if r else 0,
        achieved_rps=round(r.achieved_rps, 1) if r else 0.0,
        baseline_p99_ms=round(base_p99, 3),
        recovery_s=recovery_time(probes, load_end, threshold),
        rss_before_mib=round(rss_before, 1),
        rss_max_mib=round(rss_max, 1),
        up_after=up,
        client_cpu_s=round(r.client_cpu_s, 2) if r else 0.0,
    )


# Soak ---------------------------------------------------------------------------------------

SOAK_SLICE_S = 30.0


def soak(
    server: servers.Server,
    minutes: float,
    client_cpus: Sequence[int] | None = None,
    peak_rps: float | None = None,
    slice_s: float = SOAK_SLICE_S,
    cpu_quota: float | None = None,
    bodies: Sequence[bytes] = (hostile.GOOD_BODY,),
) -> Soak:
    """Half the stack's closed-loop peak (measured here unless given), open loop, for
    ``minutes``, in slices: errors, p99 and RSS per slice; RSS drift from the first slice's end
    to the last's. ``bodies``: the run's workload (the seed model's row by default)."""
    assert server.process is not None
    pid = server.process.pid
    if peak_rps is None:
        wrk.run(server.url, contract.INFERENCE_PATH, bodies, connections=64, duration_s=2)
        peak_rps = wrk.run(
            server.url, contract.INFERENCE_PATH, bodies, connections=64, duration_s=5,
            cpus=client_cpus,
        ).rps  # fmt: skip
    rate = float(max(1, round(peak_rps / 2)))  # vegeta takes whole rates
    total_s = minutes * 60
    slices: list[SoakSlice] = []
    t = 0.0
    while t < total_s - 1e-9:
        length = min(slice_s, total_s - t)
        r = vegeta.run(
            server.url, contract.INFERENCE_PATH, bodies, rate=rate, duration_s=length,
            cpus=client_cpus,
        )  # fmt: skip
        t += length
        p99_us = float(r.histogram.get_value_at_percentile(99)) if r.sent else 0.0
        slices.append(
            SoakSlice(
                t_s=round(t, 1),
                requests=r.sent,
                errors=r.errors + r.non2xx,
                unsent=max(0, r.scheduled - r.sent),
                p99_ms=round(p99_us / 1e3, 3),
                rss_mib=round(_rss_mib(pid), 2),
            )
        )
    first, last = slices[0]["rss_mib"], slices[-1]["rss_mib"]
    return Soak(
        minutes=minutes,
        rate=round(rate, 1),
        peak_rps=round(peak_rps, 1),
        cpu_quota=cpu_quota,
        requests=sum(s["requests"] for s in slices),
        errors=sum(s["errors"] for s in slices),
        unsent=sum(s["unsent"] for s in slices),
        slices=slices,
        rss_drift_pct=round(100 * (last - first) / first, 2) if first else 0.0,
    )


@dataclass(frozen=True)
class SoakPhase:
    """``bench --soak MINUTES``: each stack started on its own (pinned as every phase), held at
    half its peak; stored under ``soak`` in results.json and in reliability.json."""

    minutes: float
    name: str = "soak"
    needs_servers: bool = False

    def run(self, ctx: Any, running: Mapping[str, servers.Server]) -> Mapping[str, Any]:
        out: dict[str, Any] = {}
        bodies = ctx.workload.single_bodies()  # the run's rows, as every phase sends them
        # The parity-checked stacks bench started (a --target has no process here to watch).
        for name in [n for n, s in running.items() if s.process is not None]:
            with ctx.start(name) as server:
                part = soak(server, self.minutes, client_cpus=ctx.placement.client_cpus,
                            bodies=bodies)  # fmt: skip
            out[name] = part
            merge(ctx.run_dir, name, {"soak": part})
            print(
                f"soak {name}: {part['requests']} requests at {part['rate']:g}/s, "
                f"{part['errors']} errors, RSS drift {part['rss_drift_pct']:+.2f} %",
                flush=True,
            )
        return out


# The whole table ----------------------------------------------------------------------------


def hostile_case(r: hostile.CaseResult) -> HostileCase:
    return HostileCase(
        case=r.case, held=r.held, ok=r.ok, detail=r.detail, statuses=r.statuses,
        bystander_requests=r.bystander_requests, bystander_errors=r.bystander_errors,
        bystander_p99_ms=round(r.bystander_p99_ms, 3), alone_p99_ms=round(r.alone_p99_ms, 3),
        attack_cpu_s=round(r.attack_cpu_s, 3), wall_s=round(r.wall_s, 2),
    )  # fmt: skip


def run_hostile(server: servers.Server) -> list[HostileCase]:
    alone = hostile.alone_p99(server.url)
    cases: list[HostileCase] = []
    for case in hostile.CASES:
        r = hostile.run_case(server.name, server.url, case, alone)
        cases.append(hostile_case(r))
        print(f"  {server.name} {case}: held={r.held} {r.detail}", flush=True)
    return cases


def collect_records(where: Path) -> dict[str, StackReliability]:
    """The tests' records (``record``): fuzz counts and shutdown figures per stack."""
    out: dict[str, StackReliability] = {}
    for path in sorted(where.glob("*.json")):
        # "<kind>-<stack>": stack names and case names both hold dashes; the stack is a suffix.
        name = next((n for n in stacks.STACKS if path.stem.endswith("-" + n)), None)
        if name is None:
            continue
        kind = path.stem[: -len(name) - 1]
        data = json.loads(path.read_text())
        part = out.setdefault(name, {})
        if kind == "fuzz":
            part["fuzz_requests"] = part.get("fuzz_requests", 0) + int(data["requests"])
            part["fuzz_failures"] = part.get("fuzz_failures", 0) + int(data["failures"])
        elif kind == "shutdown":
            part["shutdown"] = data
        elif kind == "overload":
            part["overload"] = data
        elif kind.startswith("hostile_"):
            part.setdefault("hostile", []).append(data)
    return out


def main(argv: list[str] | None = None) -> int:
    from fiber_endpoints import model

    p = argparse.ArgumentParser(prog="python -m fiber_endpoints.bench.reliability")
    p.add_argument("run_dir", type=Path, help="the run folder for reliability.json")
    p.add_argument("--stacks", default=",".join(stacks.STACKS))
    p.add_argument("--model", type=Path, default=model.MODELS_DIR / "regression" / "model.txt")
    p.add_argument("--no-hostile", action="store_true")
    p.add_argument("--no-overload", action="store_true")
    p.add_argument("--records", type=Path, help="the tests' records to fold in (fuzz, shutdown)")
    p.add_argument("--report-only", action="store_true", help="only redraw reliability.md")
    p.add_argument("--soak", type=float, default=0.0, metavar="MINUTES",
                   help="also soak each stack (as bench --soak does)")  # fmt: skip
    args = p.parse_args(argv)
    if args.report_only:
        print(write_report(args.run_dir))
        return 0
    if args.records:
        for name, part in collect_records(args.records).items():
            merge(args.run_dir, name, part)
    for name in args.stacks.split(","):
        logs = args.run_dir / "logs"
        if not args.no_hostile:
            with servers.running(name, args.model, log_dir=logs) as server:
                merge(args.run_dir, name, {"hostile": run_hostile(server)})
        if not args.no_overload:
            result = overload(name, args.model, logs)
            merge(args.run_dir, name, {"overload": result})
            print(f"  {name} overload: {json.dumps(result)}", flush=True)
        if args.soak > 0:
            # Under the overload's cap: on a shared VM the stack's capacity is then its own,
            # not what the neighbours leave (half an uncapped peak measured in a quiet second
            # is more than a busy minute can serve).
            with capped_server(name, args.model, logs) as server:
                soaked = soak(server, args.soak, cpu_quota=CPU_QUOTA)
            merge(args.run_dir, name, {"soak": soaked})
            print(f"  {name} soak: {soaked['errors']} errors, {soaked['rss_drift_pct']} %")
    write_report(args.run_dir)
    return 0


def write_report(run_dir: Path) -> Path | None:
    """``reliability.md`` beside ``reliability.json`` (the run's report.md shows it too)."""
    from fiber_endpoints.report import reliability_table

    doc = read(run_dir)
    if doc is None:
        return None
    out = run_dir / "reliability.md"
    out.write_text("\n".join(reliability_table.reliability_section(doc)))
    return out


if __name__ == "__main__":
    sys.exit(main())
