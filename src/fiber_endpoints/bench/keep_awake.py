"""``bench --keep-awake``: keep every CPU out of idle while timing, so a stack's own cost can be
read against the loopback floor.

On this kind of VM a cross-core round trip on idle vCPUs costs 70-80 µs more than on busy ones
(the floor server's p50 roughly halves with spinners on): more than a fast stack's whole server
time. A spinner runs at ``SCHED_IDLE``: it gets a CPU only when nothing else wants it, so it
keeps the vCPU awake without taking time from the client or the server. It favours runtimes whose
threads spin before sleeping (Go's scheduler does): ``bench`` always shows both modes.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

from fiber_endpoints.bench import servers

SPIN = ["sh", "-c", "while :; do :; done"]


def _idle_on(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


@contextmanager
def spinners(cpus: Sequence[int]) -> Iterator[list[int]]:
    """One ``SCHED_IDLE`` busy loop per CPU while the block runs; yields their pids."""
    with ExitStack() as stack:
        pids = []
        for cpu in cpus:
            proc = subprocess.Popen(
                SPIN,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=lambda c=cpu: _idle_on(c),  # type: ignore[misc]
                start_new_session=True,
            )
            stack.callback(servers.stop_process, proc, 2.0)
            pids.append(proc.pid)
        yield pids
