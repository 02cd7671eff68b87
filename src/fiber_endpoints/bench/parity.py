"""Parity: a running stack must return LightGBM's own predictions on the golden rows, through
both ``/inference`` (row by row) and ``/inference/batch``, before anything is timed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fiber_endpoints import contract
from fiber_endpoints.bench.client import RawClient
from fiber_endpoints.bench.workload import encode_body
from fiber_endpoints.model import Golden, parity_errors


@dataclass
class ParityResult:
    ok: bool
    checked_rows: int
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked_rows": self.checked_rows, "errors": self.errors}


def check(url: str, golden: Golden) -> ParityResult:
    client = RawClient(url)
    errors: list[str] = []
    try:
        singles: list[Any] = []
        for i, row in enumerate(golden.rows):
            resp = client.send(client.prepare("POST", contract.INFERENCE_PATH, encode_body(row)))
            if resp.status != 200:
                errors.append(f"/inference row {i}: HTTP {resp.status}: {resp.body[:200]!r}")
                break
            singles.append(resp.json().get("prediction"))
        else:
            errors += [f"/inference {e}" for e in parity_errors(singles, golden)]
        resp = client.send(client.prepare("POST", contract.BATCH_PATH, encode_body(golden.rows)))
        if resp.status != 200:
            errors.append(f"/inference/batch: HTTP {resp.status}: {resp.body[:200]!r}")
        else:
            batch = resp.json().get("predictions")
            errors += [f"/inference/batch {e}" for e in parity_errors(batch or [], golden)]
    except (OSError, ValueError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        client.close()
    return ParityResult(not errors, len(golden.rows), errors)
