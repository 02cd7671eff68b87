"""Where the client and the servers run: one planner for ``bench``, the load lab and ``trace``.

Servers are placed from exec (``cpus.pin_on_exec``), never moved afterwards: moving a running
server is what made LightGBM's OpenMP pool 30x slower on this kind of machine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fiber_endpoints import cpus


@dataclass(frozen=True)
class Placement:
    client_cpus: list[int]  # the bench's own client, the load generators, Jaeger
    server_cpus: list[int]  # every stack (one at a time under load)
    note: str

    def to_json(self) -> dict[str, Any]:
        return {"client_cpus": self.client_cpus, "server_cpus": self.server_cpus, "note": self.note}

    def pin_client(self) -> None:
        """Place this process (the client) on its CPUs."""
        if sorted(os.sched_getaffinity(0)) != self.client_cpus:
            os.sched_setaffinity(0, set(self.client_cpus))


def plan(
    pin: bool = True,
    client_cpus: Sequence[int] | None = None,
    server_cpus: Sequence[int] | None = None,
    available: Sequence[int] | None = None,
) -> Placement:
    """Client on the first usable CPU, servers on the others; both on one CPU when there is only
    one. ``client_cpus`` / ``server_cpus`` override either side (``--client-cpus`` ...)."""
    usable = sorted(available if available is not None else cpus.affinity())
    if not pin:
        return Placement(usable, usable, "not pinned (--no-pin)")
    for given in (client_cpus, server_cpus):
        unknown = sorted(set(given or ()) - set(usable))
        if unknown:
            raise ValueError(f"CPUs {unknown} are not usable here (usable: {usable})")
    if client_cpus or server_cpus:
        client = sorted(client_cpus or [c for c in usable if c not in (server_cpus or ())][:1])
        server = sorted(server_cpus or [c for c in usable if c not in client] or client)
        shared = bool(set(client) & set(server))
        return Placement(
            client or server,
            server,
            "as given" + ("; client and servers share CPUs" if shared else ""),
        )
    if len(usable) < 2:
        return Placement(usable, usable, "one CPU: client and servers share it")
    return Placement(
        usable[:1],
        usable[1:],
        "client and servers on separate CPUs; servers pinned from exec, before their thread "
        "pools start",
    )
