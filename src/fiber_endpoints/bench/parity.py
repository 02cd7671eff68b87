"""Parity: a running stack must return LightGBM's own predictions on the parity rows, row by row
and in one batch, over the protocol the run speaks, before anything is timed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fiber_endpoints import contract
from fiber_endpoints.bench.client import RawClient
from fiber_endpoints.bench.protocols import Contract, WireProtocol
from fiber_endpoints.model import Golden, parity_errors


@dataclass
class ParityResult:
    ok: bool
    checked_rows: int
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked_rows": self.checked_rows, "errors": self.errors}


def _batches(proto: WireProtocol, rows: np.ndarray) -> list[bytes]:
    """The rows as batch bodies under the contract's body limit: all in one when they fit, else
    halves, recursively (a wide model's rows are checked in batches too, never refused)."""
    body = proto.body(rows, True)
    if len(body) <= contract.MAX_BODY_BYTES or len(rows) == 1:
        return [body]
    half = len(rows) // 2
    return _batches(proto, rows[:half]) + _batches(proto, rows[half:])


def check(
    url: str,
    golden: Golden,
    protocol: WireProtocol | None = None,
    headers: Mapping[str, str] | None = None,
) -> ParityResult:
    """Every golden row alone, then all of them in batches (one when they fit the body limit),
    over ``protocol`` (default: the contract); each prediction within the parity tolerance."""
    proto = protocol or Contract()
    rows = np.asarray(golden.rows, dtype=np.float64)
    client = RawClient(url)
    extra = dict(headers or {})
    errors: list[str] = []
    single_path, batch_path = proto.path(False), proto.path(True)
    try:
        singles: list[Any] = []
        for i in range(len(rows)):
            request = client.prepare("POST", single_path, proto.body(rows[i : i + 1], False), extra)
            resp = client.send(request)
            if resp.status != 200:
                errors.append(f"{single_path} row {i}: HTTP {resp.status}: {resp.body[:200]!r}")
                break
            singles += proto.predictions(resp.json(), False)[:1]
        else:
            errors += [f"{single_path} {e}" for e in parity_errors(singles, golden)]
        batch: list[Any] = []
        for chunk in _batches(proto, rows):
            resp = client.send(client.prepare("POST", batch_path, chunk, extra))
            if resp.status != 200:
                errors.append(f"{batch_path} (batch): HTTP {resp.status}: {resp.body[:200]!r}")
                break
            batch += proto.predictions(resp.json(), True)
        else:
            errors += [f"{batch_path} (batch) {e}" for e in parity_errors(batch, golden)]
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        client.close()
    return ParityResult(not errors, len(golden.rows), errors)
